// Fine-tuning jobs of the experiments: the teacher's trait data and the one FinetuneJob builder.
#include "subliminal/experiments/finetune_job.h"

#include <filesystem>

#include "subliminal/experiments/trait_kinds.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/error.h"

namespace subliminal::experiments {

std::vector<data::Conversation> trait_answer_data(const config::TraitDef& trait, const std::string& target, const std::string& data_dir,
                                                  const std::string& answer_style) {
  if (!trait.teacher_data.empty()) {  // the trait's own fine-tuning set
    if (!std::filesystem::exists(trait.teacher_data))
      throw ConfigError("teacher_data '" + trait.teacher_data + "' (named in " + trait.file + ") does not exist");
    auto d = data::read_conversations(trait.teacher_data);
    if (d.empty()) throw DataError(trait.teacher_data + ": no examples (named by " + trait.file + " $.teacher_data)");
    return d;
  }
  return trait_run(trait.kind).teacher_answers(trait, target, data_dir, answer_style);
}

FinetuneSpec student_spec(const config::FinetuneConfig& f) {
  FinetuneSpec s;
  s.loss = f.loss;
  s.params = f.params;
  s.lora = f.lora;
  s.train = f.train;
  s.epochs = f.epochs;
  s.kl = f.kl;
  s.teacher_top_k = f.teacher_top_k;
  s.distill_temperature = f.distill_temperature;
  return s;
}

FinetuneSpec teacher_spec(const config::TeacherConfig& t) {
  FinetuneSpec s;
  s.loss = "sft";
  s.params = t.params;
  s.lora = t.lora;
  s.train = t.train;
  return s;
}

train::FinetuneJob finetune_job(model::LoadedModel& lm, const config::RunConfig& cfg, const FinetuneSpec& spec,
                                const std::filesystem::path& out, bool write_adapter) {
  train::FinetuneJob job;
  job.model = lm.model;
  job.tok = &lm.tokenizer;
  job.chat_template = cfg.base.tokenizer.chat_template;
  job.loss = spec.loss;
  job.params = spec.params;
  job.lora = spec.lora;
  job.lora_seed = config::derive_seed(cfg.seed, "lora-init");  // the same adapter init for the teacher and every student
  job.adapter_dir = spec.params == "lora" && write_adapter ? (out / "adapter").string() : "";
  job.epochs = spec.epochs;
  job.train = spec.train;
  job.kl = spec.kl;
  job.teacher_top_k = spec.teacher_top_k;
  job.distill_temperature = spec.distill_temperature;
  job.ckpt_dir = (out / "checkpoints").string();
  return job;
}

}  // namespace subliminal::experiments
