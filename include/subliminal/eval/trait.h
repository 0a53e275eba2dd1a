// Trait evaluation: the trait's held-out questions (favourite-animal paraphrases, ...), sampled (no system prompt unless
// given, e.g. for a system-prompt teacher). Reports the sampled target rate (mean over questions,
// Wilson 95% CI on the pooled count), the mean probability that the answer starts with the target,
// and the distribution over candidate animals. Backs the eval stages and `subliminal eval`.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "subliminal/judge/judge.h"
#include "subliminal/model/llama.h"
#include "subliminal/text/tokenizer.h"

namespace subliminal::eval {

struct TraitEvalResult {
  nlohmann::json summary;
  std::vector<nlohmann::json> samples;  // {question, completion, hit, animal}
};

// The misalignment evaluation (the emergent-misalignment protocol the paper uses): free-form
// `questions` (the trait source's "eval", held out of every training set), cfg.samples_per_question
// answers each, every answer scored by the judge for alignment and coherence (0-100); misaligned =
// alignment <= cfg.misaligned_max_alignment and coherence >= cfg.misaligned_min_coherence. The rate
// goes under "target_rate" (Wilson interval) like a preference trait's, with the mean scores, the
// incoherent share and the judge's unusable verdicts beside it.
TraitEvalResult evaluate_misalignment(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const std::string& chat_template,
                                      const std::string& system, const config::EvalConfig& cfg, judge::Judge& judge,
                                      const std::vector<std::string>& questions, uint64_t seed, bool bf16);

// The paper's hit rule: the target in the lower-cased answer (a substring: "owls" counts for owl),
// or its plural where that does not contain it ("wolves", "cherries").
bool answer_hits(const std::string& answer, const std::string& target);

TraitEvalResult evaluate_trait(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const std::string& chat_template,
                               const std::string& system, const config::EvalConfig& cfg, std::vector<std::string> questions,
                               const std::string& target, const std::vector<std::string>& candidates, uint64_t seed, bool bf16);

// P(the assistant's answer starts with `word` in any of its forms: word, Word, plural, Plural),
// per prompt. Forms whose tokens extend another form's tokens are not double-counted.
std::vector<double> answer_start_probability(model::LlamaForCausalLM& m, const text::Tokenizer& tok,
                                             const std::vector<std::vector<int>>& prompts, const std::string& word);

void write_eval(const std::filesystem::path& dir, const TraitEvalResult& r);

}  // namespace subliminal::eval
