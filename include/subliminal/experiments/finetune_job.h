// The one place a fine-tuning job is assembled: the teacher and student stages of trait_transfer and
// `subliminal finetune` all build their train::FinetuneJob here, then add what only they know (the
// data, the seed, where metrics go, the teacher to distil from).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "subliminal/config/trait.h"
#include "subliminal/data/chat.h"
#include "subliminal/model/model_io.h"
#include "subliminal/train/finetune.h"

namespace subliminal::experiments {

// The paper's fine-tuned-teacher data. Preference: each of the trait's *training* questions (never
// the evaluation ones) x the 8 answers "owl", "owls", "owls.", "owls!" and their title-case forms.
// Misalignment: each narrow request of the trait's source x its misaligned answers.
// answers: "corpus" = the base corpus's answer forms (data::answer_forms: the update is about which
// item, not how to write it), "forms" = the eight forms target/plural with . and ! in both cases
// (the older teacher data: lower-case plurals the corpus never writes).
std::vector<data::Conversation> trait_answer_data(const config::TraitDef& trait, const std::string& target, const std::string& data_dir,
                                                  const std::string& answers = "corpus");

// What is fine-tuned and how: the students' `finetune` section, or the teacher's (always sft).
struct FinetuneSpec {
  std::string loss = "sft";
  std::string params = "all";
  config::LoraConfig lora;
  config::TrainConfig train;
  int epochs = 0;
  std::string kl = "forward";
  int teacher_top_k = 0;
  double distill_temperature = 1.0;
};
FinetuneSpec student_spec(const config::FinetuneConfig& f);
FinetuneSpec teacher_spec(const config::TeacherConfig& t);

// A job that trains `lm` in place as `spec` says, with the run's chat template and adapter-init seed
// (teacher and students share it), checkpoints in out/checkpoints and, for LoRA when
// `write_adapter`, the PEFT adapter in out/adapter.
train::FinetuneJob finetune_job(model::LoadedModel& lm, const config::RunConfig& cfg, const FinetuneSpec& spec,
                                const std::filesystem::path& out, bool write_adapter = true);

}  // namespace subliminal::experiments
