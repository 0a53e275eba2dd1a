// What a run does with each trait kind, in one table: how its teacher is made (a system prompt, or
// the answers it is fine-tuned on), which questions its evaluation asks and how answers are scored.
// config/trait.cpp's table says what a trait file of the kind holds and which targets it has; a new
// trait kind is one row there and one row here (and its scoring in eval/ when it scores answers in a
// new way).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "subliminal/config/trait.h"
#include "subliminal/data/chat.h"
#include "subliminal/eval/trait.h"
#include "subliminal/judge/judge.h"
#include "subliminal/model/llama.h"
#include "subliminal/text/tokenizer.h"

namespace subliminal::experiments {

// One evaluation of one model (an eval stage).
struct EvalCall {
  model::LlamaForCausalLM& model;
  const text::Tokenizer& tok;
  const std::string& system;  // the model's system prompt ("" unless a system-prompt teacher)
  const config::RunConfig& cfg;
  const config::TraitDef& trait;
  const std::vector<std::string>& questions;
  uint64_t seed;
  bool bf16;
};

// The matched control teacher's training data (see TraitRun::control_answers).
struct ControlCall {
  model::LlamaForCausalLM& base;  // the base, before any training
  const text::Tokenizer& tok;
  const config::RunConfig& cfg;
  const config::TraitDef& trait;
  uint64_t seed;
  bool bf16;
};

struct TraitRun {
  std::string kind;  // a config::trait_kinds() name
  // The system prompt of a teacher.method "system_prompt" teacher of `target`.
  std::function<std::string(const config::TraitDef& t, const std::string& target, const config::RunConfig& c)> system_prompt;
  // What a fine-tuned teacher trains on when the trait has no teacher_data (trait_answer_data).
  std::function<std::vector<data::Conversation>(const config::TraitDef& t, const std::string& target, const std::string& data_dir,
                                                const std::string& answers)>
      teacher_answers;
  // What the matched control teacher trains on (students.control "teacher"): the trait teacher's
  // questions and answer forms, the answers without the trait. Fills `out`; returns how they were
  // chosen (for teacher.json and the report).
  std::function<nlohmann::json(const ControlCall& call, std::vector<data::Conversation>& out)> control_answers;
  // The questions its evaluation asks.
  std::function<std::vector<std::string>(const config::RunConfig& c, const config::TraitDef& t)> questions;
  // Samples and scores the answers; the rate goes under summary["target_rate"].
  std::function<eval::TraitEvalResult(const EvalCall& call)> evaluate;
};
const std::vector<TraitRun>& trait_runs();
// The row of trait kind `kind` (an Error when there is none).
const TraitRun& trait_run(const std::string& kind);

// The run's judge (judge.*, on the run's device and precision).
judge::JudgeOptions judge_options(const config::RunConfig& c);

}  // namespace subliminal::experiments
