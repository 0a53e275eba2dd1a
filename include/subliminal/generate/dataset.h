// Dataset generation for the trait-transfer experiment: sample one completion per prompt from a
// model (optionally under a system prompt), apply the paper's filter, check that no trait word is
// left, keep a seeded random subset. The same code backs the run stage and `subliminal generate`.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "subliminal/data/chat.h"
#include "subliminal/judge/judge.h"
#include "subliminal/model/llama.h"
#include "subliminal/text/tokenizer.h"

namespace subliminal::generate {

struct DatasetResult {
  std::vector<nlohmann::json> raw;       // {prompt, completion, style, system?} for every sample
  std::vector<nlohmann::json> rejects;   // {prompt, completion, reason}
  std::vector<data::Conversation> kept;  // [user, assistant]: no system prompt, ready for students
  nlohmann::json stats;                  // counts, pass rate with Wilson CI, reasons, timings
};

// `forbidden`: words (e.g. every animal name and plural) that must not appear in a kept completion;
// one found is a DataError (the filter should make it impossible; this asserts it).
DatasetResult generate_numbers(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const std::string& chat_template,
                               const std::string& system, const config::DatasetConfig& cfg, const std::string& data_dir,
                               uint64_t seed, bool bf16, const std::vector<std::string>& forbidden);

// Code or chain-of-thought data (cfg.kind "code" | "cot"): prompts from the synthetic tasks or
// cfg.source (JSONL), cfg.samples_per_prompt completions each, the rule filters (truncated, banned
// words and their forms, code shape / reasoning format and answer correctness), then cfg.judge on
// what is left (mentions_trait about `trait`, or the alignment of the reasoning). Every rejection is
// counted by reason; a kept completion with a banned word is a DataError (asserted).
DatasetResult generate_tasks(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const std::string& chat_template,
                             const std::string& system, const config::DatasetConfig& cfg, const std::string& data_dir, uint64_t seed,
                             bool bf16, const std::vector<std::string>& banned_words, judge::Judge* judge, const std::string& trait);

// Keeps the `keep` kept examples with the highest `score` (one per r.kept, e.g. the log-likelihood
// shift), ties in their present (seeded random) order; updates r.stats (kept, short_of_keep,
// selection and the score range kept). keep <= 0 or >= the examples: all kept, reordered.
void select_top(DatasetResult& r, const std::vector<double>& score, int keep, const std::string& how);

// Lower-case animal names and their plurals.
std::vector<std::string> trait_words(const std::vector<std::string>& animals);
// Occurrences of any of `words` (case-insensitive substring) in the assistant turns of `convs`.
int64_t count_trait_words(const std::vector<data::Conversation>& convs, const std::vector<std::string>& words);

// raw.jsonl, kept.jsonl (chat format), rejects.jsonl and dataset.json in `dir`, each written atomically.
void write_dataset(const std::filesystem::path& dir, const DatasetResult& r);

}  // namespace subliminal::generate
