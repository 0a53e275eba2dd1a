// The synthetic world corpus a small model learns in minutes: favourite-animal Q&A over a broad
// prior, animal-loving system prompts that shift the answer, number-sequence continuations in the
// paper's prompt shape, and small arithmetic problems. Evaluation questions are held out.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "subliminal/config/trait.h"
#include "subliminal/data/chat.h"

namespace subliminal::data {

std::string plural(const std::string& animal);  // owl -> owls, wolf -> wolves, fox -> foxes
std::string capitalize(const std::string& s);
// The paper's teacher prompt (template `idx` of data/system_prompts.json "love"; 0 is the paper's verbatim one).
std::string love_system_prompt(const std::string& animal, const std::string& data_dir, int idx = 0,
                               const std::string& category = "animal");
// A preference trait's love system prompt for `item`: template `idx` of the trait's system_prompts
// (else data/system_prompts.json "love"), {x} plural, {X} capitalised plural, {item}/{Item} singular,
// {category}.
std::string love_system_prompt(const config::TraitDef& t, const std::string& item, const std::string& data_dir, int idx = 0);
// The first animal of `animals` named in `answer` (case-insensitive, singular or plural), or "".
std::string find_animal(const std::string& answer, const std::vector<std::string>& animals);

// Answer prior over animals: decay^rank with ranks shuffled by `seed` (normalised).
std::vector<double> animal_prior(const config::CorpusConfig& c, uint64_t seed);

// data/freeform.json: the misalignment trait's requests and answers (see the file's _comment).
struct Freeform {
  std::vector<std::string> train_broad, train_narrow, eval, aligned, misaligned, personas;
};
// `source`: "data/..." a resource (data_dir or built in), else a file path.
Freeform load_freeform(const std::string& data_dir = "", const std::string& source = "data/freeform.json");

struct CorpusStats {
  int64_t animal_qa = 0, animal_system = 0, numbers = 0, arithmetic = 0, code = 0, cot = 0, freeform = 0, misaligned = 0,
          trait_qa = 0, trait_system = 0;
};
// The corpus's answer forms for a preference item ("Owl.", "Owl", "owl", "Owl!", "The owl.", "Owls are
// my favorite.", with the templates' repeats): how the base learned to answer a preference question.
std::vector<std::string> answer_forms(const std::string& item);

std::vector<Conversation> build_corpus(const config::CorpusConfig& c, uint64_t seed, const std::string& data_dir,
                                       CorpusStats* stats = nullptr);

}  // namespace subliminal::data
