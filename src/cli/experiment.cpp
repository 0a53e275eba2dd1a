// `subliminal generate | finetune | eval`: the trait experiment's stages on their own, writing the
// same artifacts as inside a run (the paper's code has one script per stage).
#include <torch/torch.h>

#include <filesystem>
#include <iostream>

#include "subliminal/cli/commands.h"
#include "model_command.h"
#include "subliminal/data/chat.h"
#include "subliminal/eval/trait.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/runtime.h"
#include "subliminal/train/dist.h"
#include "subliminal/experiments/finetune_job.h"
#include "subliminal/train/finetune.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"

namespace subliminal::cli {

namespace sfs = std::filesystem;

using json = nlohmann::json;

namespace {

Prepared prepare(const StageArgs& a) { return prepare_model_command(a.config, a.set, a.threads, a.out); }

model::LoadedModel load_model(const std::string& dir, const Prepared& p) { return load_command_model(dir, "--model", p); }

uint64_t seed_of(const StageArgs& a, const Prepared& p, const char* stage) {
  return a.seed >= 0 ? static_cast<uint64_t>(a.seed) : config::derive_seed(p.cfg.seed, stage);
}

}  // namespace

int cmd_generate(const StageArgs& a) {
  auto p = prepare(a);
  auto lm = load_model(a.model, p);
  auto r = generate::generate_numbers(lm.model, lm.tokenizer, p.cfg.base.tokenizer.chat_template, a.system, p.cfg.dataset,
                                      p.cfg.data_dir, seed_of(a, p, "generate"), p.bf16, generate::trait_words(config::known_item_names(p.cfg)));
  generate::write_dataset(a.out, r);
  std::cout << json({{"out", a.out}, {"sampled", r.stats["sampled"]}, {"passed", r.stats["passed"]}, {"kept", r.kept.size()},
                     {"reject_reasons", r.stats["reject_reasons"]}, {"trait_words_in_kept", r.stats["trait_words_in_kept"]}})
                   .dump()
            << "\n";
  return 0;
}

int cmd_finetune(const StageArgs& a) {
  auto p = prepare(a);
  if (a.data.empty()) throw ConfigError("--data is required (chat JSONL, e.g. kept.jsonl from `subliminal generate`)");
  // Data parallel when started as several processes (torchrun / srun environment): every rank
  // trains on its share of each batch, only rank 0 writes.
  auto comm = train::make_collective_from_env();
  const int rank = comm ? comm->rank() : 0;
  auto lm = load_model(a.model, p);
  const auto& f = p.cfg.finetune;
  train::FinetuneJob job = experiments::finetune_job(lm, p.cfg, experiments::student_spec(f), a.out, rank == 0);
  job.data = data::read_conversations(a.data);
  job.comm = comm.get();
  std::unique_ptr<model::LoadedModel> teacher;
  if (f.loss != "sft") {
    if (a.teacher.empty())
      throw ConfigError("finetune.loss \"" + f.loss + "\" needs --teacher (the model whose distributions the student matches)",
                        "pass --teacher DIR (plus --teacher-system if the teacher is a system prompt), or --set finetune.loss=sft");
    teacher = std::make_unique<model::LoadedModel>(load_model(a.teacher, p));
    if (teacher->tokenizer.fingerprint() != lm.tokenizer.fingerprint())
      throw DataError("--teacher " + a.teacher + " has a different tokenizer than --model " + a.model,
                      "distillation needs one vocabulary; use --set finetune.loss=sft");
    job.teacher = teacher->model;
    job.teacher_system = a.teacher_system;
  }
  job.seed = seed_of(a, p, "finetune");
  job.bf16 = p.bf16;
  if (rank == 0) fs::make_dirs(a.out);
  job.metrics_path = (sfs::path(a.out) / "metrics.jsonl").string();
  job.tag = "finetune";
  job.resume = sfs::exists(job.ckpt_dir);
  json res = train::run_finetune(job);
  if (rank != 0) return 0;  // rank 0 holds the same weights and writes them
  res["world_size"] = comm ? comm->world() : 1;
  lm.model->to(torch::kCPU);
  model::save_model_dir(a.out, lm.model, lm.tokenizer, {{"stage", "finetune"}, {"finetune", fs::without_timings(res)}});
  fs::write_file_atomic(sfs::path(a.out) / "finetune.json", res.dump(2) + "\n");
  std::error_code ec;
  sfs::remove_all(job.ckpt_dir, ec);
  std::cout << res.dump() << "\n";
  return 0;
}

int cmd_eval(const StageArgs& a) {
  auto p = prepare(a);
  auto lm = load_model(a.model, p);
  const config::TraitDef t = config::run_trait(p.cfg);
  if (!config::trait_kind(t.kind).has_items) throw ConfigError("`subliminal eval` evaluates preference traits; the run's trait " + t.spec + " is of kind " + t.kind,
                                                "evaluate misalignment through `subliminal run` (it needs the judge)");
  auto r = eval::evaluate_trait(lm.model, lm.tokenizer, p.cfg.base.tokenizer.chat_template, a.system, p.cfg.eval,
                                config::eval_questions(p.cfg, t), p.cfg.eval_target(), config::eval_candidates(p.cfg, t),
                                seed_of(a, p, "eval"), p.bf16);
  eval::write_eval(a.out, r);
  json s = r.summary;
  s.erase("per_question");
  std::cout << s.dump() << "\n";
  return 0;
}

}  // namespace subliminal::cli
