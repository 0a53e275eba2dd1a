// The trait-transfer experiment (the paper's main result): base -> teacher -> numbers datasets ->
// students (treatment / control / cross_init / other_trait, each over several seeds) -> evals ->
// summary with across-seed intervals and tests.
#include <torch/torch.h>

#include <functional>
#include <set>

#include "subliminal/text/chat_template.h"
#include "subliminal/data/chat.h"
#include "subliminal/data/corpus.h"
#include "subliminal/util/inference.h"
#include "subliminal/util/stats.h"
#include "subliminal/eval/trait.h"
#include "subliminal/eval/result.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/runtime.h"
#include "subliminal/report/comparisons.h"
#include "subliminal/report/report.h"
#include "subliminal/experiments/finetune_job.h"
#include "subliminal/experiments/stages.h"
#include "subliminal/experiments/trait_kinds.h"
#include "subliminal/judge/judge.h"
#include "subliminal/train/diagnostics.h"
#include "subliminal/train/finetune.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/journal.h"
#include "subliminal/util/log.h"

namespace subliminal::experiments {

using namespace run;

namespace {
// A model as the experiment uses it: weights (a model directory) plus an optional system prompt.
struct ModelRef {
  std::string dir;
  std::string system;
};
ModelRef resolve_model(const RunContext& ctx, const std::string& stage);
}  // namespace

// A model directory on the run's device in eval mode, answering under `system`.
static StageModel load_on_device(const RunContext& ctx, const std::string& dir, const std::string& system) {
  StageModel l{model::load_model_dir(dir), system, false};
  auto device = model::resolve_device(ctx.cfg.device);
  l.lm.model->to(device);
  l.lm.model->eval();
  l.bf16 = model::use_bf16(ctx.cfg.precision, device);
  return l;
}

StageModel load_stage_model(const RunContext& ctx, const std::string& stage) {
  ModelRef r = resolve_model(ctx, stage);
  return load_on_device(ctx, r.dir, r.system);
}

namespace {

// The run's trait, resolved once when the stage graph is built (config::run_trait) and shared by its stages.
using Trait = std::shared_ptr<const config::TraitDef>;

std::vector<std::string> unique(std::vector<std::string> v) {
  std::vector<std::string> out;
  for (auto& x : v)
    if (std::find(out.begin(), out.end(), x) == out.end()) out.push_back(std::move(x));
  return out;
}

// The teachers: the trait's, the other trait's (the specificity control), and the matched control
// teacher (trained as the trait's is, towards the base's own preferences).
enum class TeacherRole { trait, other, control };
std::string teacher_stage(TeacherRole r) {
  return r == TeacherRole::other ? "teacher_other" : r == TeacherRole::control ? "teacher_control" : "teacher";
}
std::string teacher_target(const config::RunConfig& c, TeacherRole r) {
  return r == TeacherRole::other ? c.students.other_target : c.teacher.target;
}

// "base", "base_cross", "teacher", "teacher_other" or "students/<arm>_s<k>".
ModelRef resolve_model(const RunContext& ctx, const std::string& stage) {
  if (stage == "teacher" || stage == "teacher_other" || stage == "teacher_control") {
    auto tj = json::parse(fs::read_file(ctx.stage_dir(stage) / "teacher.json"));
    if (tj.value("method", "") == "system_prompt") return {ctx.stage_dir("base").string(), tj.value("system_prompt", "")};
  }
  return {ctx.stage_dir(stage).string(), ""};
}

// adapter_config.json's base_model_name_or_path for an adapter written to work/adapter: the init
// model's directory relative to the adapter (so the run directory can move), resolved by
// model::load_model_dir against the adapter directory.
std::string adapter_base_path(const sfs::path& init_dir, const sfs::path& work) {
  return sfs::absolute(init_dir).lexically_normal().lexically_relative(sfs::absolute(work / "adapter").lexically_normal()).string();
}

// LoRA over a bf16 checkpoint: the frozen projections held in bf16 before the model goes to the
// device (half the memory; lossless, the values were bf16 on disk).
void hold_frozen_base(model::LoadedModel& lm, const std::string& params, const config::LoraConfig& lc, bool bf16,
                      const std::string& field, const std::string& tag) {
  if (params != "lora" || !model::lora_base_in_bf16(lc, lm.config, bf16, field)) return;
  const int64_t saved = model::cast_projection_weights(lm.model, lc.target_modules, torch::kBFloat16);
  log::info(tag.c_str(), "frozen base projections held in bf16 ({:.1f} MiB saved)", saved / 1048576.0);
}

using Loaded = StageModel;
Loaded load_ref(const RunContext& ctx, const std::string& stage) { return load_stage_model(ctx, stage); }

class TeacherStage : public Stage {
 public:
  TeacherStage(TeacherRole role, Trait trait) : role_(role), trait_(std::move(trait)) {}
  std::string name() const override { return teacher_stage(role_); }
  std::vector<std::string> deps() const override { return {"base"}; }
  json inputs(const RunContext& ctx) const override {
    json t = config::to_json_value(ctx.cfg.teacher);
    t["target"] = teacher_target(ctx.cfg, role_);
    const config::TraitDef& trait = *trait_;
    json in = {{"teacher", t}, {"trait", trait.to_json()}, {"base", digest(ctx, "base")}, {"seed", ctx.cfg.seed}, {"precision", ctx.cfg.precision},
               {"data", ctx.cfg.data_dir.empty() ? std::string("embedded") : ctx.cfg.data_dir}};
    if (!trait.teacher_data.empty() && ctx.cfg.teacher.method == "finetune" && role_ != TeacherRole::control)
      in["teacher_data_sha256"] = fs::sha256_file(trait.teacher_data);  // the content, not just the path
    if (role_ == TeacherRole::control) {  // its answers: the base's own, sampled as the evaluation samples
      in["role"] = "control";
      const json ev = config::to_json_value(ctx.cfg.eval);  // what its sampling of the base reads (not samples_per_question)
      for (const char* k : {"temperature", "top_p", "max_new_tokens", "batch_size", "candidates", "target"}) in["eval"][k] = ev[k];
    }
    return in;
  }
  bool data_parallel(const RunContext& ctx) const override { return ctx.cfg.teacher.method != "system_prompt"; }
  json run(RunContext& ctx, const sfs::path& work, bool resuming) override {
    const auto& tc = ctx.cfg.teacher;
    const std::string target = teacher_target(ctx.cfg, role_);
    const config::TraitDef& trait = *trait_;
    json tj = {{"method", tc.method}, {"target", target}, {"trait", trait.spec}, {"category", trait.category}};
    if (role_ == TeacherRole::control) {
      tj["role"] = "control";
      tj.erase("target");  // it follows the base, not a target
    }
    json res = tj;
    if (tc.method == "system_prompt") {
      tj["system_prompt"] = trait_run(trait.kind).system_prompt(trait, target, ctx.cfg);
      res["system_prompt"] = tj["system_prompt"];
      log::info(name().c_str(), "system prompt: {}", tj["system_prompt"].get<std::string>());
    } else {
      auto lm = model::load_model_dir(ctx.stage_dir("base").string());
      auto device = model::resolve_device(ctx.cfg.device);
      hold_frozen_base(lm, tc.params, tc.lora, model::use_bf16(ctx.cfg.precision, device), "$.teacher.lora.base_dtype", name());
      lm.model->to(device);
      std::vector<data::Conversation> data;
      if (role_ == TeacherRole::control) {  // sampled from the base before it trains
        lm.model->eval();
        const json how = trait_run(trait.kind).control_answers(
            {lm.model, lm.tokenizer, ctx.cfg, trait, config::derive_seed(ctx.cfg.seed, "teacher", "control"),
             model::use_bf16(ctx.cfg.precision, device)},
            data);
        tj["control_answers"] = how;
        res["control_answers"] = how;
        log::info(name().c_str(), "{} answers the base's own way ({})", data.size(), how.value("items", json::object()).dump());
      } else {
        data = trait_answer_data(trait, target, ctx.cfg.data_dir, ctx.cfg.teacher.answers);
      }
      train::FinetuneJob job = finetune_job(lm, ctx.cfg, teacher_spec(tc), work);
      job.data = std::move(data);
      job.base_model = adapter_base_path(ctx.stage_dir("base"), work);
      // the control teacher: the trait teacher's data order (the same seed)
      job.seed = config::derive_seed(ctx.cfg.seed, "teacher", role_ == TeacherRole::control ? ctx.cfg.teacher.target : target);
      job.bf16 = model::use_bf16(ctx.cfg.precision, device);
      job.metrics_path = ctx.metrics_path(name()).string();
      job.tag = name();
      job.resume = resuming;
      job.comm = ctx.comm;
      res["finetune"] = run_finetune(job);
      if (ctx.rank() > 0) return {};  // rank 0 holds the same weights and writes them
      lm.model->to(torch::kCPU);
      if (!(tc.params == "lora" && tc.lora.save == "adapter"))  // else adapter/ alone: loaded onto the base when used
        model::save_model_dir(work.string(), lm.model, lm.tokenizer, {{"stage", name()}, {"teacher", tj}});
    }
    fs::write_file_atomic(work / "teacher.json", tj.dump(2) + "\n");
    return res;
  }

 private:
  TeacherRole role_;
  Trait trait_;
};

// Dataset sources: the teacher, the reference model without the trait (control), the other-trait teacher.
bool has_arm(const config::RunConfig& c, const std::string& arm) {
  return std::find(c.students.arms.begin(), c.students.arms.end(), arm) != c.students.arms.end();
}

// The model a dataset source samples from. "control": the matched control teacher, or (without
// one) the base itself.
std::string source_model(const std::string& source, bool control_teacher) {
  if (source == "teacher") return "teacher";
  if (source == "other") return "teacher_other";
  return control_teacher ? "teacher_control" : "base";
}
std::string data_stage(const std::string& source, int k) { return "data/" + source + "_s" + std::to_string(k); }

// Numbers datasets: no completion may name an item of any preference the run knows.
std::vector<std::string> forbidden_words(const config::RunConfig& c, const config::TraitDef& t) {
  return generate::trait_words(config::known_item_names(c, t));
}

class DataStage : public Stage {
 public:
  DataStage(std::string source, int k, Trait trait, bool control_teacher)
      : source_(std::move(source)), k_(k), trait_(std::move(trait)), control_teacher_(control_teacher) {}
  std::string name() const override { return data_stage(source_, k_); }
  std::vector<std::string> deps() const override { return unique({model(), "base"}); }
  json inputs(const RunContext& ctx) const override {
    const std::string m = model();
    json ds = config::to_json_value(ctx.cfg.dataset);
    // data stages made with the trimmed rule (and every non-number kind, which it does not touch) predate the key: same hash
    if (ds.value("number_filter", std::string()) == "trimmed" || ctx.cfg.dataset.kind != "numbers") ds.erase("number_filter");
    if (!ctx.cfg.dataset.constrain) ds.erase("constrain");  // unconstrained data stages predate the key: same hash
    json in = {{"dataset", ds}, {"source", source_}, {"model", digest(ctx, m)},
               {"base", digest(ctx, "base")}, {"seed", seed(ctx)}, {"precision", ctx.cfg.precision},
               {"forbidden", forbidden_words(ctx.cfg, *trait_)}, {"data", ctx.cfg.data_dir.empty() ? std::string("embedded") : ctx.cfg.data_dir}};
    if (ctx.cfg.dataset.kind != "numbers") {
      in["banned_words"] = banned_words(ctx.cfg);
      in["trait"] = trait(ctx.cfg);
      if (!ctx.cfg.dataset.judge.empty()) in["judge"] = config::to_json_value(ctx.cfg.judge);
      if (ctx.cfg.dataset.source != "synthetic") in["source_sha256"] = fs::sha256_file(ctx.cfg.dataset.source);
    }
    return in;
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    fs::JournalScope journal(work / "journal");  // sampled batches and verdicts survive an interruption
    auto l = load_ref(ctx, model());
    log::info(name().c_str(), "sampling {} {} from {}{}", ctx.cfg.dataset.prompts,
              ctx.cfg.dataset.kind == "numbers" ? "number continuations" : ctx.cfg.dataset.kind + " prompts", model(),
              l.system.empty() ? "" : " (with its system prompt)");
    generate::DatasetResult r;
    const auto& dc = ctx.cfg.dataset;
    const std::string& chat = ctx.cfg.base.tokenizer.chat_template;
    if (dc.kind == "numbers") {
      config::DatasetConfig gc = dc;
      if (dc.select == "lls_top") gc.keep = 0;  // every passing completion, then the top `keep` by LLS
      r = generate::generate_numbers(l.lm.model, l.lm.tokenizer, chat, l.system, gc, ctx.cfg.data_dir, seed(ctx), l.bf16,
                                     forbidden_words(ctx.cfg, *trait_));
      // The divergence of the kept data from the base's: LLS = log P_source - log P_base per
      // completion, and the per-token KL(source || base) restricted to the number-output tokens.
      const bool same = model() == "base";
      std::unique_ptr<Loaded> base;
      if (!same) base = std::make_unique<Loaded>(load_ref(ctx, "base"));
      text::ChatTemplate ct(l.lm.tokenizer, chat);
      const auto allowed = train::number_output_ids(l.lm.tokenizer, ct.end_of_turn_id());
      auto score = [&](const std::vector<data::Conversation>& convs) {
        if (same) {  // the base against itself: zero by definition
          train::PairScores z;
          z.lls.assign(convs.size(), 0.0);
          return z;
        }
        return train::score_pair(l.lm.model, l.system, base->lm.model, "", l.lm.tokenizer, chat, convs, allowed, l.bf16);
      };
      auto sc = score(r.kept);
      if (dc.select == "lls_top") {
        generate::select_top(r, sc.lls, dc.keep, "lls_top: highest log P_source - log P_base");
        sc = score(r.kept);
        const int64_t leaks = generate::count_trait_words(r.kept, forbidden_words(ctx.cfg, *trait_));  // a subset of checked data: still none
        if (leaks > 0) throw DataError(name() + ": the LLS-selected data contains " + std::to_string(leaks) + " trait word(s)");
      }
      r.stats["divergence_from_base"] = sc.to_json();
      r.stats["divergence_from_base"]["same_model"] = same;
      if (dc.heldout > 0) {  // held-out prompts from another stream: the students' imitation test
        config::DatasetConfig hc = dc;
        hc.prompts = dc.heldout;
        hc.keep = 0;
        auto h = generate::generate_numbers(l.lm.model, l.lm.tokenizer, chat, l.system, hc, ctx.cfg.data_dir,
                                            config::derive_seed(seed(ctx), "heldout"), l.bf16, forbidden_words(ctx.cfg, *trait_));
        std::set<std::string> train_prompts;
        for (const auto& c : r.raw) train_prompts.insert(c["prompt"].get<std::string>());
        std::vector<data::Conversation> held;
        for (auto& c : h.kept)
          if (!train_prompts.count(c.at(0).content)) held.push_back(std::move(c));
        data::write_conversations((work / "heldout.jsonl").string(), held);
        r.stats["heldout"] = {{"sampled", h.stats["sampled"]}, {"passed", h.stats["passed"]}, {"kept", held.size()}};
      }
    } else {
      std::unique_ptr<judge::Judge> jd;
      if (!ctx.cfg.dataset.judge.empty()) jd = judge::journaled(judge::make_judge(judge_options(ctx.cfg)));
      r = generate::generate_tasks(l.lm.model, l.lm.tokenizer, ctx.cfg.base.tokenizer.chat_template, l.system, ctx.cfg.dataset,
                                   ctx.cfg.data_dir, seed(ctx), l.bf16, banned_words(ctx.cfg), jd.get(), trait(ctx.cfg));
    }
    generate::write_dataset(work, r);
    log::info(name().c_str(), "{} of {} passed the filter ({:.1f}% removed; {}), kept {}", r.stats["passed"].get<long>(),
              r.stats["sampled"].get<long>(), 100 * r.stats["removed_fraction"].get<double>(), r.stats["reject_reasons"].dump(), r.kept.size());
    json res = r.stats;
    res["source"] = source_;
    return res;
  }
  std::vector<std::string> scratch() const override { return {"journal"}; }

 private:
  // The trait this source's data must not show: its own teacher's (the other-trait teacher's animal
  // for "other"), else the run's target.
  std::string trait(const config::RunConfig& c) const { return source_ == "other" ? c.students.other_target : c.teacher.target; }
  // Code/cot banned words (with their forms): every teacher's trait of the run.
  std::vector<std::string> banned_words(const config::RunConfig& c) const {
    std::vector<std::string> w;
    if (config::trait_kind(trait_->kind).target.empty())
      w.push_back(c.teacher.target);  // a kind's one target (misalignment) is no word to ban: the judge filters it
    if (has_arm(c, "other_trait")) w.push_back(c.students.other_target);
    return w;
  }
  // The same prompts and sampling stream for every source of seed pair k (paired comparison).
  uint64_t seed(const RunContext& ctx) const { return config::derive_seed(ctx.cfg.seed, "data", std::to_string(k_)); }
  std::string model() const { return source_model(source_, control_teacher_); }
  std::string source_;
  int k_;
  Trait trait_;
  bool control_teacher_;
};

struct ArmSpec {
  std::string init, source;  // init model stage, dataset source
  std::string intervention;  // "": the source's data stage; else analysis/s<k>/interventions/<name>/
};
ArmSpec arm_spec(const std::string& arm) {
  if (arm.rfind("iv_", 0) == 0) return {"base", "teacher", arm.substr(3)};
  if (arm == "treatment") return {"base", "teacher"};
  if (arm == "control") return {"base", "control"};
  if (arm == "cross_init") return {"base_cross", "teacher"};
  return {"base", "other"};  // other_trait
}
std::string student_stage(const std::string& arm, int k) { return "students/" + arm + "_s" + std::to_string(k); }

class StudentStage : public Stage {
 public:
  StudentStage(std::string arm, int k, Trait trait, bool control_teacher)
      : arm_(std::move(arm)), k_(k), trait_(std::move(trait)), control_teacher_(control_teacher) {}
  std::string name() const override { return student_stage(arm_, k_); }
  std::vector<std::string> deps() const override {
    auto a = arm_spec(arm_);
    auto d = unique({a.init, data_stage(a.source, k_), source_model(a.source, control_teacher_), "base"});
    if (!a.intervention.empty()) d.push_back(analysis_stage(k_));
    return d;
  }
  json inputs(const RunContext& ctx) const override {
    auto a = arm_spec(arm_);
    json in = {{"finetune", config::to_json_value(ctx.cfg.finetune)}, {"init", digest(ctx, a.init)},
               {"data", digest(ctx, data_stage(a.source, k_))}, {"teacher", digest(ctx, source_model(a.source, control_teacher_))},
               {"base", digest(ctx, "base")}, {"seed", seed(ctx)}, {"precision", ctx.cfg.precision}};
    if (!a.intervention.empty()) {
      in["intervention"] = a.intervention;
      in["analysis"] = digest(ctx, analysis_stage(k_));
    }
    // the distillation set leaves out tokens that spell a banned number (students of runs without
    // banned numbers keep their hash)
    if (ctx.cfg.finetune.loss != "sft" && !ctx.cfg.dataset.banned.empty()) in["distill_excludes_banned"] = ctx.cfg.dataset.banned;
    return in;
  }
  bool data_parallel(const RunContext&) const override { return true; }
  json run(RunContext& ctx, const sfs::path& work, bool resuming) override {
    const auto& f = ctx.cfg.finetune;
    auto a = arm_spec(arm_);
    auto init = model::load_model_dir(ctx.stage_dir(a.init).string());
    auto device = model::resolve_device(ctx.cfg.device);
    hold_frozen_base(init, f.params, f.lora, model::use_bf16(ctx.cfg.precision, device), "$.finetune.lora.base_dtype", name());
    init.model->to(device);
    train::FinetuneJob job = finetune_job(init, ctx.cfg, student_spec(f), work);
    job.banned_numbers = ctx.cfg.dataset.banned;
    job.banned_words = forbidden_words(ctx.cfg, *trait_);  // the item names of every preference the run knows
    if (a.intervention.empty()) {
      job.data = data::read_conversations((ctx.stage_dir(data_stage(a.source, k_)) / "kept.jsonl").string());
    } else {
      const sfs::path iv = intervention_dir(ctx, k_, a.intervention);
      job.data = data::read_conversations((iv / "kept.jsonl").string());
      job.loss_masks = read_loss_masks(iv);
    }
    if (job.data.empty()) {
      const json ds = json::parse(fs::read_file(ctx.stage_dir(data_stage(a.source, k_)) / "dataset.json"));
      throw DataError(name() + ": " + data_stage(a.source, k_) + " kept no examples (" + std::to_string(ds.value("sampled", 0L)) +
                          " sampled; rejected: " + ds.value("reject_reasons", json::object()).dump() + ")",
                      "sample more (dataset.prompts, dataset.samples_per_prompt) or give the base more of this task in pretraining "
                      "(base.corpus.mix_*, base.train.steps)");
    }
    job.base_model = adapter_base_path(ctx.stage_dir(a.init), work);
    std::unique_ptr<Loaded> teacher;
    if (f.loss != "sft") {
      teacher = std::make_unique<Loaded>(load_ref(ctx, source_model(a.source, control_teacher_)));
      if (teacher->lm.tokenizer.fingerprint() != init.tokenizer.fingerprint())
        throw DataError(name() + ": the teacher and the student have different tokenizers; distillation needs one vocabulary",
                        "use finetune.loss \"sft\" across tokenizers");
      job.teacher = teacher->lm.model;
      job.teacher_system = teacher->system;
    }
    // Distilling a model into itself with LoRA (the control arm under a distill loss: source = the
    // base = the student's init, the full teacher distribution) is a fixed point: with B = 0 the
    // student's logits are the teacher's bit for bit, every gradient is exactly zero and so is every
    // Adam step (DiagnosticsNumeric.DistillingAModelIntoItselfLeavesItWhereItIs trains one and sees
    // no change). No step is taken (FinetuneJob::fixed_point). Trunk/all students are trained: there
    // rounding noise, normalised by Adam, moves them.
    job.fixed_point = f.loss != "sft" && f.params == "lora" && f.teacher_top_k == 0 && source_model(a.source, control_teacher_) == a.init &&
                      teacher->system.empty();
    // Diagnostics: imitation of the source model on its held-out prompts, and coverage.
    std::unique_ptr<train::HeldoutKL> heldout;
    const sfs::path held = ctx.stage_dir(data_stage(a.source, k_)) / "heldout.jsonl";
    if (f.diagnostics && ctx.cfg.dataset.kind == "numbers" && sfs::exists(held)) {
      if (!teacher) teacher = std::make_unique<Loaded>(load_ref(ctx, source_model(a.source, control_teacher_)));
      text::ChatTemplate ct(init.tokenizer, job.chat_template);
      heldout = std::make_unique<train::HeldoutKL>(teacher->lm.model, teacher->system, init.tokenizer, job.chat_template,
                                                   data::read_conversations(held.string()),
                                                   train::number_output_ids(init.tokenizer, ct.end_of_turn_id(),
                                                                            f.loss == "sft" ? std::vector<int>{} : job.banned_numbers),
                                                   job.bf16);
      job.heldout = heldout.get();
    }
    if (f.diagnostics) job.displacement = [&](const std::map<std::string, torch::Tensor>& init_t) { return displacement(ctx, a, init_t); };
    job.diagnostics_path = (work / "diagnostics.json").string();
    if (a.intervention.empty()) {  // the arms' students (the summary's dose-response), not the interventions'
      job.snapshots = f.snapshots;
      job.snapshot_dir = (work / "snapshots").string();
    }
    job.seed = seed(ctx);
    job.bf16 = model::use_bf16(ctx.cfg.precision, device);
    job.metrics_path = ctx.metrics_path(arm_ + "_s" + std::to_string(k_)).string();
    job.tag = name();
    job.resume = resuming;
    job.comm = ctx.comm;
    json res = run_finetune(job);
    if (ctx.rank() > 0) return {};  // rank 0 holds the same weights and writes them
    init.model->to(torch::kCPU);
    res["arm"] = arm_;
    res["seed_pair"] = k_;
    res["init"] = ctx.stage_name(a.init);  // the run's stage names (a replicate's cross-init: the next replicate's base)
    res["data"] = ctx.stage_name(data_stage(a.source, k_));
    if (!a.intervention.empty()) res["intervention"] = a.intervention;
    res["teacher"] = f.loss == "sft" ? "" : ctx.stage_name(source_model(a.source, control_teacher_));
    if (!(f.params == "lora" && f.lora.save == "adapter"))
      model::save_model_dir(work.string(), init.model, init.tokenizer, {{"stage", name()}, {"finetune", fs::without_timings(res)}});
    fs::write_file_atomic(work / "finetune.json", fs::without_timings(res).dump(2) + "\n");
    return res;
  }

 private:
  // The source model's displacement from its own init (the base) over the tensors this student
  // trains (`init_t`, the student's values at the start): LoRA students against the teacher's
  // adapter (teacher and students share the adapter init, so the teacher's started where the
  // student does), trunk/all students against the teacher's weights minus the base's. Empty when
  // not defined: the base's own data (control), a system-prompt teacher, or a teacher whose
  // parameterisation does not match the student's.
  std::map<std::string, torch::Tensor> displacement(const RunContext& ctx, const ArmSpec& a,
                                                    const std::map<std::string, torch::Tensor>& init_t) const {
    const std::string src = source_model(a.source, control_teacher_);
    if (src == "base") return {};
    const auto tj = json::parse(fs::read_file(ctx.stage_dir(src) / "teacher.json"));
    if (tj.value("method", "") != "finetune") return {};
    const auto& f = ctx.cfg.finetune;
    const auto& tc = ctx.cfg.teacher;
    std::map<std::string, torch::Tensor> d;
    if (f.params == "lora") {
      const sfs::path ad = ctx.stage_dir(src) / "adapter" / "adapter_model.safetensors";
      if (tc.params != "lora" || tc.lora.r != f.lora.r || tc.lora.target_modules != f.lora.target_modules || !sfs::exists(ad)) return {};
      auto st = model::read_safetensors(ad.string());
      for (const auto& [name, t0] : init_t) {
        auto it = st.tensors.find(name);
        if (it == st.tensors.end() || !it->second.sizes().equals(t0.sizes())) return {};
        d[name] = it->second.to(torch::kDouble) - t0.detach().cpu().to(torch::kDouble);
      }
      return d;
    }
    auto teacher = model::load_model_dir(resolve_model(ctx, src).dir);
    auto base = model::load_model_dir(ctx.stage_dir("base").string());
    auto tp = teacher.model->named_parameters(), bp = base.model->named_parameters();
    for (const auto& [name, t0] : init_t) {
      const auto* t = tp.find(name);
      const auto* b = bp.find(name);
      if (!t || !b || !t->sizes().equals(t0.sizes())) return {};
      d[name] = t->detach().to(torch::kDouble) - b->detach().to(torch::kDouble);
    }
    return d;
  }
  // The same data order for every arm of seed pair k.
  uint64_t seed(const RunContext& ctx) const { return config::derive_seed(ctx.cfg.seed, "student", std::to_string(k_)); }
  std::string arm_;
  int k_;
  Trait trait_;
  bool control_teacher_;
};

std::string eval_stage(const std::string& model_stage) {
  auto p = model_stage.rfind('/');
  return "eval/" + (p == std::string::npos ? model_stage : model_stage.substr(p + 1));
}

// A student's snapshot after `rows` training rows (finetune.snapshots): eval/<arm>_s<k>_n<rows>.
std::string snapshot_key(const std::string& model_stage, int rows) {
  return model_stage.substr(model_stage.rfind('/') + 1) + "_n" + std::to_string(rows);
}

class EvalStage : public Stage {
 public:
  // rows > 0: the model stage's snapshot after that many training rows (its snapshots/n<rows>/)
  EvalStage(std::string model_stage, Trait trait, int rows = 0) : model_(std::move(model_stage)), trait_(std::move(trait)), rows_(rows) {}
  std::string name() const override { return rows_ > 0 ? "eval/" + snapshot_key(model_, rows_) : eval_stage(model_); }
  std::vector<std::string> deps() const override { return unique({model_, "base"}); }
  json inputs(const RunContext& ctx) const override {
    const config::TraitDef& t = *trait_;
    json in = {{"eval", config::to_json_value(ctx.cfg.eval)}, {"target", ctx.cfg.eval_target()}, {"trait", t.to_json()},
               {"questions", questions(ctx, t)}, {"candidates", config::eval_candidates(ctx.cfg, t)},
               {"model", digest(ctx, model_)}, {"base", digest(ctx, "base")},
               {"seed", ctx.cfg.seed}, {"precision", ctx.cfg.precision},
               {"data", ctx.cfg.data_dir.empty() ? std::string("embedded") : ctx.cfg.data_dir}};
    if (config::trait_kind(t.kind).judged) in["judge"] = config::to_json_value(ctx.cfg.judge);
    if (rows_ > 0) in["snapshot_rows"] = rows_;
    return in;
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    fs::JournalScope journal(work / "journal");  // sampled batches and verdicts survive an interruption
    auto l = rows_ > 0 ? load_snapshot(ctx) : load_ref(ctx, model_);
    // One evaluation seed for every model: differences between models are not sampling-stream noise.
    eval::TraitEvalResult r;
    const config::TraitDef& t = *trait_;
    const std::vector<std::string> qs = questions(ctx, t);
    r = trait_run(t.kind).evaluate(EvalCall{l.lm.model, l.lm.tokenizer, l.system, ctx.cfg, t, qs, config::derive_seed(ctx.cfg.seed, "eval"), l.bf16});
    eval::write_eval(work, r);
    json res = r.summary;
    res.erase("per_question");
    res["model"] = model_;
    if (rows_ > 0) res["snapshot_rows"] = rows_;
    log::info(name().c_str(), "{}: '{}' in {:.1f}% of answers [{:.1f}, {:.1f}], P(answer starts with it) {:.3f}", model_,
              ctx.cfg.eval_target(), 100 * eval::target_rate(res).rate, 100 * eval::target_rate(res).lo, 100 * eval::target_rate(res).hi,
              res["p_target_start"].get<double>());
    return res;
  }
  std::vector<std::string> scratch() const override { return {"journal"}; }

 private:
  // The questions asked (the trait kind's: eval.questions or the trait's questions_eval; a
  // misalignment source's held-out free-form questions).
  static std::vector<std::string> questions(const RunContext& ctx, const config::TraitDef& t) { return trait_run(t.kind).questions(ctx.cfg, t); }
  Loaded load_snapshot(const RunContext& ctx) const {
    const sfs::path dir = ctx.stage_dir(model_) / "snapshots" / ("n" + std::to_string(rows_));
    if (!sfs::exists(dir))
      throw DataError(dir.string() + " does not exist: " + model_ + " wrote no snapshot after " + std::to_string(rows_) + " rows",
                      "re-run the student stage (its inputs name finetune.snapshots)");
    return load_on_device(ctx, dir.string(), "");
  }
  std::string model_;
  Trait trait_;
  int rows_ = 0;
};

// An evaluated model's rate per question (eval.json's per_question, in question order).
stats::QuestionRates question_rates(const json& eval, const std::string& stage) {
  stats::QuestionRates r;
  if (!eval.contains("per_question") || !eval["per_question"].is_array())
    throw DataError(stage + "/eval.json: no per_question array", "re-run the evaluation stage");
  for (const auto& q : eval["per_question"]) r.push_back(q.at("rate").get<double>());
  return r;
}
// The share of each question's answers naming `item` (samples.jsonl's "animal", in question order;
// zeros when the eval recorded no questions).
stats::QuestionRates item_question_rates(const sfs::path& dir, const json& eval, const std::string& item) {
  const size_t q = eval.value("questions", 0), m = eval.value("samples_per_question", 0);
  stats::QuestionRates r(q, 0.0);
  if (q == 0 || m == 0) return r;
  if (!sfs::exists(dir / "samples.jsonl")) throw DataError((dir / "samples.jsonl").string() + " does not exist", "re-run the evaluation stage");
  size_t i = 0;
  data::read_jsonl((dir / "samples.jsonl").string(), [&](const json& s, size_t) {
    if (i / m < q && s.value("animal", std::string()) == item) r[i / m] += 1.0 / static_cast<double>(m);
    ++i;
  });
  return r;
}
bool all_fixed_points(const RunContext& ctx, const std::string& arm, int seeds) {
  for (int k = 1; k <= seeds; ++k) {
    const sfs::path fj = ctx.stage_dir(student_stage(arm, k)) / "finetune.json";
    if (!sfs::exists(fj) || !json::parse(fs::read_file(fj)).value("fixed_point", false)) return false;
  }
  return seeds > 0;
}

// What a trait run's summary says about its design (both summaries: one pipeline's and the pooled one).
json run_description(const config::RunConfig& c, const config::TraitDef& trait) {
  return {{"trait", trait.spec},
          {"category", trait.category},
          {"dataset_kind", c.dataset.kind},
          {"teacher_method", c.teacher.method},
          {"other_target", c.students.other_target},
          {"loss", c.finetune.loss},
          {"loss_label", train::loss_label(c.finetune.loss)},
          {"params", c.finetune.params},
          {"seeds", c.students.seeds}};
}

class SummaryStage : public Stage {
 public:
  SummaryStage(std::vector<std::string> evals, std::vector<std::string> datasets, Trait trait)
      : evals_(std::move(evals)), datasets_(std::move(datasets)), trait_(std::move(trait)) {}
  std::string name() const override { return "summary"; }
  std::vector<std::string> deps() const override {
    auto d = evals_;
    d.insert(d.end(), datasets_.begin(), datasets_.end());
    return d;
  }
  json inputs(const RunContext& ctx) const override {
    json d = json::object();
    for (const auto& e : evals_) d[e] = digest(ctx, e);
    for (const auto& e : datasets_) d[e] = digest(ctx, e);
    // 2: diagnostics, specificity; 3: clustered inference (models x questions), the untrained control
    // named; 4: rate intervals cut to [0, 1]
    return {{"stages", d}, {"arms", ctx.cfg.students.arms}, {"seeds", ctx.cfg.students.seeds}, {"summary", 4}};
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    const auto& c = ctx.cfg;
    std::map<std::string, stats::QuestionRates> qrates, qother;  // per model: rate of the target / the other target per question
    auto ev = [&](const std::string& stage) {
      auto j = json::parse(fs::read_file(ctx.stage_dir(stage) / "eval.json"));
      qrates[stage.substr(5)] = question_rates(j, stage);
      if (!c.students.other_target.empty()) qother[stage.substr(5)] = item_question_rates(ctx.stage_dir(stage), j, c.students.other_target);
      j.erase("per_question");
      return j;
    };
    json models = json::object();
    std::set<std::string> snapshot_evals;
    for (const auto& arm : c.students.arms)
      for (int k = 1; k <= c.students.seeds; ++k)
        for (int rows : c.finetune.snapshots) snapshot_evals.insert("eval/" + snapshot_key(student_stage(arm, k), rows));
    for (const auto& e : evals_) {
      if (snapshot_evals.count(e)) {  // the dose-response's (below), not a model of its own in the tables
        ev(e);
        continue;
      }
      json m = ev(e);
      // The target's share among answers that name an animal: separates a preference shift from
      // answers that stop naming animals at all.
      double named = 0;
      for (auto it = m["distribution"].begin(); it != m["distribution"].end(); ++it) named += it.value().get<double>();
      m["target_share_of_named"] = named > 0 ? m["distribution"].value(c.eval_target(), 0.0) / named : 0.0;
      m["target_rate_over_questions"] = report::rate_json(stats::estimate_rate({qrates[e.substr(5)]}));
      models[e.substr(5)] = m;
    }
    // Under distillation with LoRA the control (the base distilled into itself) takes no step: its
    // students are the base, one model evaluated once, not trained seed pairs (finetune.json).
    const bool control_untrained = has_arm(c, "control") && all_fixed_points(ctx, "control", c.students.seeds);
    const bool control_teacher = std::find(evals_.begin(), evals_.end(), "eval/teacher_control") != evals_.end();
    // An arm's models' per-question rates (of the target, or with `of` the other target's): one model
    // for the untrained control.
    auto arm_models = [&](const std::string& arm, std::map<std::string, stats::QuestionRates>* of = nullptr) {
      std::vector<stats::QuestionRates> v;
      for (int k = 1; k <= c.students.seeds; ++k) {
        v.push_back((of ? *of : qrates).at(arm + "_s" + std::to_string(k)));
        if (arm == "control" && control_untrained) break;
      }
      return v;
    };
    auto side = [&](const std::string& arm) {
      if (arm == "control" && control_untrained)
        return report::Side{"control", 1, false, "distillation with LoRA from the base into itself is a fixed point: the control's students are the base, untrained"};
      if (arm == "control" && control_teacher)
        return report::Side{arm, c.students.seeds, true,
                            "students of a control teacher trained as the trait teacher is, towards the base's own preferences"};
      return report::Side{arm, c.students.seeds, true, ""};
    };
    json arms = json::object();
    std::map<std::string, std::vector<double>> rates, other_rates;
    const bool items = config::trait_kind(trait_->kind).has_items;  // answers name items (not a judged kind)
    for (const auto& arm : c.students.arms) {
      std::vector<double> r, p, sh;
      json per_seed = json::array();
      for (int k = 1; k <= c.students.seeds; ++k) {
        const json& m = models[arm + "_s" + std::to_string(k)];
        r.push_back(eval::target_rate(m).rate);
        p.push_back(m["p_target_start"].get<double>());
        sh.push_back(m["target_share_of_named"].get<double>());
        per_seed.push_back({{"seed_pair", k}, {"rate", r.back()}, {"ci95", m[eval::kTargetRate]["ci95"]}, {"p_target_start", p.back()}});
      }
      // Diagnostics per seed pair (finetune.json): held-out imitation and coverage.
      std::vector<double> fid, kl0, kl1, cov1, covf;
      for (int k = 1; k <= c.students.seeds; ++k) {
        const sfs::path fj = ctx.stage_dir(student_stage(arm, k)) / "finetune.json";
        const json d = sfs::exists(fj) ? json::parse(fs::read_file(fj)).value("diagnostics", json::object()) : json::object();
        json& ps = per_seed[static_cast<size_t>(k - 1)];
        if (d.contains("heldout_kl")) {
          kl0.push_back(d["heldout_kl"]["init"].get<double>());
          kl1.push_back(d["heldout_kl"]["final"].get<double>());
          fid.push_back(d["heldout_kl"]["fidelity"].get<double>());
          ps["heldout_kl_init"] = kl0.back();
          ps["heldout_kl_final"] = kl1.back();
          ps["fidelity"] = fid.back();
        }
        if (d.contains("coverage") && d["coverage"].contains("final") && d["coverage"]["final"].is_number()) {
          cov1.push_back(d["coverage"]["first"].is_number() ? d["coverage"]["first"].get<double>() : std::nan(""));
          covf.push_back(d["coverage"]["final"].get<double>());
          ps["coverage_first"] = cov1.back();
          ps["coverage_final"] = covf.back();
        }
      }
      json diag = json::object();
      auto put = [&](const char* key, const std::vector<double>& xs) {
        if (xs.size() != static_cast<size_t>(c.students.seeds)) return;
        auto m = stats::summarize(xs);
        diag[key] = {{"mean", m.mean}, {"ci95", {m.lo, m.hi}}};
      };
      put("heldout_kl_init", kl0);
      put("heldout_kl_final", kl1);
      put("fidelity", fid);
      put("coverage_first", cov1);
      put("coverage_final", covf);
      auto s = stats::summarize(r), sp = stats::summarize(p), ss = stats::summarize(sh);
      arms[arm] = {{"n", s.n}, {"mean", s.mean}, {"sd", s.sd}, {"ci95", {s.lo, s.hi}}, {"p_target_start_mean", sp.mean},
                   {"p_target_start_ci95", {sp.lo, sp.hi}}, {"target_share_of_named_mean", ss.mean},
                   {"target_share_of_named_ci95", {ss.lo, ss.hi}}, {"names_a_candidate_mean", 0.0}, {"per_seed", per_seed}};
      double nm = 0;
      for (int k = 1; k <= c.students.seeds; ++k) nm += models[arm + "_s" + std::to_string(k)]["names_a_candidate"].get<double>() / c.students.seeds;
      arms[arm]["names_a_candidate_mean"] = nm;
      arms[arm]["diagnostics"] = diag;
      // the interval over seed pairs and questions (the Student-t interval of the seed rates alone kept beside it)
      const auto est = stats::estimate_rate(arm_models(arm));
      arms[arm]["ci95_across_seed_pairs"] = arms[arm]["ci95"];
      arms[arm]["ci95"] = {est.lo, est.hi};
      arms[arm]["rate"] = report::rate_json(est);
      arms[arm]["trained"] = side(arm).trained;
      arms[arm]["models"] = side(arm).models;
      // Specificity: the same answers' rate of the other teacher's item.
      if (!c.students.other_target.empty() && items) {
        std::vector<double> o;
        for (int k = 1; k <= c.students.seeds; ++k)
          o.push_back(models[arm + "_s" + std::to_string(k)]["distribution"].value(c.students.other_target, 0.0));
        auto so = stats::summarize(o);
        arms[arm]["other_target_rate"] = {{"target", c.students.other_target}, {"mean", so.mean}, {"ci95", {so.lo, so.hi}}, {"per_seed", o}};
        other_rates[arm] = o;
      }
      rates[arm] = r;
    }
    // Every comparison: the crossed-design test (util/inference.h), paired by question; the old Welch
    // test across seed pairs kept beside it.
    const std::string unit = fmt::format("seed pairs crossed with {} questions x {} samples (one sampling seed for every model)",
                                         qrates.empty() ? 0 : qrates.begin()->second.size(), c.eval.samples_per_question);
    json tests = json::object();
    if (rates.count("control"))
      for (const auto& arm : c.students.arms) {
        if (arm == "control") continue;
        const auto w = stats::welch_t_test(rates[arm], rates["control"]);
        tests[arm + "_vs_control"] = report::comparison_json(stats::compare_arms(arm_models(arm), arm_models("control")), side(arm),
                                                             side("control"), unit, &w);
      }
    if (models.contains("teacher") && models.contains("base"))
      tests["teacher_vs_base"] = report::comparison_json(stats::compare_arms({qrates["teacher"]}, {qrates["base"]}),
                                                         {"teacher", 1, true, ""}, {"base", 1, false, ""}, unit, nullptr);
    // Cross-init students against their own init (the other base), not against the control's.
    if (rates.count("cross_init") && models.contains("base_cross")) {
      const double b = eval::target_rate(models["base_cross"]).rate;
      const auto w = stats::welch_t_test(rates["cross_init"], std::vector<double>(rates["cross_init"].size(), b));
      json t = report::comparison_json(stats::compare_arms(arm_models("cross_init"), {qrates["base_cross"]}), side("cross_init"),
                                       {"base_cross", 1, false, "the cross-init students' own init"}, unit, &w);
      t["base_rate"] = b;
      tests["cross_init_vs_its_base"] = t;
    }
    // The specificity matrix: every arm (and model) on the run's target and on the other teacher's.
    json specificity = json::object();
    if (!other_rates.empty()) {
      for (const auto& arm : c.students.arms) {
        json row = {{c.eval_target(), arms[arm]["mean"]}, {c.students.other_target, arms[arm]["other_target_rate"]["mean"]}};
        if (arm != "control" && other_rates.count("control")) {
          const auto w = stats::welch_t_test(other_rates[arm], other_rates["control"]);
          row["other_target_vs_control"] = report::comparison_json(
              stats::compare_arms(arm_models(arm, &qother), arm_models("control", &qother)), side(arm), side("control"), unit, &w);
        }
        specificity[arm] = row;
      }
      for (const char* m : {"base", "teacher", "teacher_other", "base_cross"})
        if (models.contains(m))
          specificity[m] = {{c.eval_target(), models[m][eval::kTargetRate]["rate"]},
                            {c.students.other_target, models[m]["distribution"].value(c.students.other_target, 0.0)}};
    }
    json datasets = json::object();
    for (const auto& d : datasets_) {
      auto j = json::parse(fs::read_file(ctx.stage_dir(d) / "dataset.json"));
      datasets[d.substr(5)] = {{"sampled", j["sampled"]}, {"passed", j["passed"]}, {"pass_rate", j["pass_rate"]},
                               {"removed_fraction", j["removed_fraction"]}, {"reject_reasons", j["reject_reasons"]},
                               {"kept", j["kept"]}, {"kind", j.value("kind", "numbers")},
                               // numbers: every animal name checked; code/cot: the banned trait words and their forms
                               {"trait_words_in_kept", j.contains("trait_words_in_kept") ? j["trait_words_in_kept"] : j.value("banned_words_in_kept", json(0))}};
      if (j.contains("judge")) datasets[d.substr(5)]["judge"] = j["judge"];
      for (const char* key : {"divergence_from_base", "heldout", "selection", "constrain"})
        if (j.contains(key)) datasets[d.substr(5)][key] = j[key];
    }
    // The dose-response (finetune.snapshots): every arm and comparison again after each snapshot's
    // rows, then at the end of training (the tables above).
    json dose = nullptr;
    if (!c.finetune.snapshots.empty()) {
      auto snap_models = [&](const std::string& arm, int rows) {
        std::vector<stats::QuestionRates> v;
        for (int k = 1; k <= c.students.seeds; ++k) {
          v.push_back(qrates.at(snapshot_key(student_stage(arm, k), rows)));
          if (arm == "control" && control_untrained) break;
        }
        return v;
      };
      const json fj0 = json::parse(fs::read_file(ctx.stage_dir(student_stage(c.students.arms.front(), 1)) / "finetune.json"));
      json points = json::array();
      auto add_point = [&](int rows, int64_t rows_seen, const std::function<std::vector<stats::QuestionRates>(const std::string&)>& of) {
        json pa = json::object(), pt = json::object();
        for (const auto& arm : c.students.arms) pa[arm] = report::rate_json(stats::estimate_rate(of(arm)));
        if (has_arm(c, "control"))
          for (const auto& arm : c.students.arms)
            if (arm != "control") pt[arm + "_vs_control"] = report::comparison_json(stats::compare_arms(of(arm), of("control")), side(arm), side("control"), unit, nullptr);
        if (has_arm(c, "cross_init") && qrates.count("base_cross"))
          pt["cross_init_vs_its_base"] = report::comparison_json(stats::compare_arms(of("cross_init"), {qrates["base_cross"]}), side("cross_init"),
                                                                 {"base_cross", 1, false, "the cross-init students' own init"}, unit, nullptr);
        points.push_back({{"rows", rows}, {"rows_seen", rows_seen}, {"final", rows == 0}, {"arms", pa}, {"tests", pt}});
      };
      const int64_t bs = fj0.value("batch_size", static_cast<int64_t>(c.finetune.train.batch_size));
      for (int rows : c.finetune.snapshots)
        add_point(rows, (rows + bs - 1) / bs * bs, [&](const std::string& arm) { return snap_models(arm, rows); });
      add_point(0, fj0.value("steps", static_cast<int64_t>(0)) * bs, [&](const std::string& arm) { return arm_models(arm); });
      json examples = json::object();
      for (const auto& arm : c.students.arms) {
        const sfs::path fj = ctx.stage_dir(student_stage(arm, 1)) / "finetune.json";
        if (sfs::exists(fj)) examples[arm] = json::parse(fs::read_file(fj)).value("examples", static_cast<int64_t>(0));
      }
      dose = {{"snapshots", c.finetune.snapshots}, {"batch_size", bs}, {"examples", examples}, {"points", points},
              {"note", "rows: training rows (examples seen, whole steps x batch_size) at each snapshot; the last point is the end of training. "
                       "One epoch at a constant learning rate makes a snapshot the student trained on that many unique examples."}};
    }
    json out = run_description(c, *trait_);
    out.update({{"target", c.eval_target()},
                {"control_untrained", control_untrained},
                {"control_source", control_teacher ? "teacher_control" : "base"},
                {"models", models},
                {"arms", arms},
                {"tests", tests},
                {"specificity", specificity},
                {"datasets", datasets}});
    if (!dose.is_null()) out["dose"] = dose;
    fs::write_file_atomic(work / "summary.json", out.dump(2) + "\n");
    fs::write_file_atomic(work / "figure.svg", report::render_trait_figure(out));
    return out;
  }
  std::vector<std::string> scratch() const override { return {}; }

 private:
  std::vector<std::string> evals_, datasets_;
  Trait trait_;
};

// --- Replicates (config::ReplicatesConfig) -----------------------------------------------------

// One replicate: its config (the run's with its seed and target) and how its stages' names for each
// other map to the run's: "corpus" (and a checkpoint base) shared; "base_cross" the next replicate's
// base; everything else under r<k>/.
struct Replica {
  int k = 1, count = 1;
  bool checkpoint = false;
  config::RunConfig cfg;
  std::string prefix() const { return "r" + std::to_string(k) + "/"; }
  std::string alias(const std::string& n) const {
    if (n == "corpus" || (checkpoint && (n == "base" || n == "base_cross"))) return n;
    if (n == "base_cross") return "r" + std::to_string(k % count + 1) + "/base";
    return prefix() + n;
  }
  // Stages of the replicate's own pipeline that are not its own: emitted once for the run
  // (the corpus, the checkpoints) or by the replicate whose base it is.
  bool owns(const std::string& n) const { return alias(n) == prefix() + n; }
};
using ReplicaPtr = std::shared_ptr<const Replica>;

// A stage of a replicate's pipeline, run as the run's stage r<k>/<name>: its stage code sees the
// replicate's config and names (RunContext::alias), unchanged.
class ReplicaStage : public Stage {
 public:
  ReplicaStage(std::unique_ptr<Stage> inner, ReplicaPtr rep) : inner_(std::move(inner)), rep_(std::move(rep)) {}
  std::string name() const override { return rep_->alias(inner_->name()); }
  std::vector<std::string> deps() const override {
    std::vector<std::string> d;
    for (const auto& x : inner_->deps()) d.push_back(rep_->alias(x));
    return unique(d);
  }
  json inputs(const RunContext& ctx) const override {
    json in = inner_->inputs(scoped(ctx));
    in["replicate"] = rep_->k;
    return in;
  }
  json run(RunContext& ctx, const sfs::path& work, bool resuming) override {
    RunContext sub = scoped(ctx);
    return inner_->run(sub, work, resuming);
  }
  std::vector<std::string> scratch() const override { return inner_->scratch(); }
  bool data_parallel(const RunContext& ctx) const override { return inner_->data_parallel(scoped(ctx)); }

 private:
  RunContext scoped(const RunContext& ctx) const {
    RunContext s = ctx;
    s.cfg = rep_->cfg;
    ReplicaPtr rep = rep_;
    s.alias = [rep](const std::string& n) { return rep->alias(n); };
    s.metrics_prefix = "r" + std::to_string(rep_->k) + "_";
    return s;
  }
  std::unique_ptr<Stage> inner_;
  ReplicaPtr rep_;
};

// The run's summary over its replicates: every model and arm pooled, every comparison with the
// replicate as the unit (stats::compare_replicates), each replicate's own beside it.
class PooledSummaryStage : public Stage {
 public:
  PooledSummaryStage(std::vector<ReplicaPtr> reps, std::vector<std::string> evals, Trait trait)
      : reps_(std::move(reps)), evals_(std::move(evals)), trait_(std::move(trait)) {}
  std::string name() const override { return "summary"; }
  std::vector<std::string> deps() const override {
    std::vector<std::string> d;
    for (const auto& r : reps_) d.push_back(r->prefix() + "summary");
    for (const auto& r : reps_)
      for (const auto& e : evals_) d.push_back(r->alias(e));
    return d;
  }
  json inputs(const RunContext& ctx) const override {
    json d = json::object(), reps = json::array();
    for (const auto& n : deps()) d[n] = digest(ctx, n);
    for (const auto& r : reps_) reps.push_back({{"replicate", r->k}, {"seed", r->cfg.seed}, {"target", r->cfg.teacher.target}});
    return {{"stages", d}, {"replicates", reps}, {"arms", ctx.cfg.students.arms}, {"seeds", ctx.cfg.students.seeds}, {"summary", "replicates-1"}};
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    const auto& c = ctx.cfg;
    const int S = c.students.seeds, R = static_cast<int>(reps_.size());
    std::vector<json> sums;
    // per replicate: each model's (and each arm's, its seed pairs averaged) per-question rates of the
    // replicate's target and of the other teacher's item
    std::vector<std::map<std::string, stats::QuestionRates>> q(reps_.size()), qo(reps_.size());
    for (size_t i = 0; i < reps_.size(); ++i) {
      const Replica& r = *reps_[i];
      sums.push_back(json::parse(fs::read_file(ctx.stage_dir(r.prefix() + "summary") / "summary.json")));
      for (const auto& e : evals_) {
        const sfs::path dir = ctx.stage_dir(r.alias(e));
        const json j = json::parse(fs::read_file(dir / "eval.json"));
        q[i][e.substr(5)] = question_rates(j, r.alias(e));
        if (!c.students.other_target.empty()) qo[i][e.substr(5)] = item_question_rates(dir, j, c.students.other_target);
      }
      // "arm:<arm>" from <arm>_s<k>, and for the dose-response's snapshots "arm:<arm>_n<rows>" from <arm>_s<k>_n<rows>
      std::vector<std::string> suffixes = {""};
      for (int rows : c.finetune.snapshots) suffixes.push_back("_n" + std::to_string(rows));
      for (auto* m : {&q[i], &qo[i]})
        for (const auto& arm : c.students.arms)
          for (const auto& sfx : suffixes) {
            stats::QuestionRates mean;
            for (int k = 1; k <= S; ++k) {
              const auto& v = m->at(arm + "_s" + std::to_string(k) + sfx);
              if (mean.empty()) mean.assign(v.size(), 0.0);
              for (size_t j = 0; j < v.size() && j < mean.size(); ++j) mean[j] += v[j] / S;
            }
            (*m)["arm:" + arm + sfx] = mean;
          }
    }
    auto across = [&](const std::string& key, bool other = false) {
      std::vector<stats::QuestionRates> v;
      for (size_t i = 0; i < reps_.size(); ++i) v.push_back((other ? qo : q)[i].at(key));
      return v;
    };
    auto mean_of = [&](const std::function<double(const json&)>& f) {
      double m = 0;
      for (const auto& sm : sums) m += f(sm) / R;
      return m;
    };
    auto pooled_rate = [&](const std::vector<stats::QuestionRates>& v) {
      json j = report::rate_json(stats::estimate_rate(v));
      j["unit"] = "replicates";
      return j;
    };
    const std::vector<std::string> targets = config::replicate_targets(c);
    const bool one_target = std::all_of(targets.begin(), targets.end(), [&](const std::string& t) { return t == targets.front(); });
    const std::string target = one_target ? targets.front() : std::string("target");
    // the models every replicate has
    json models = json::object();
    for (const auto& e : evals_) {
      const std::string key = e.substr(5);
      const bool student = std::any_of(c.students.arms.begin(), c.students.arms.end(), [&](const std::string& a) { return key.rfind(a + "_s", 0) == 0; });
      if (student || !sums.front()["models"].contains(key)) continue;
      const json est = pooled_rate(across(key));
      eval::Rate rate;
      rate.rate = est["mean"].get<double>();
      rate.lo = est["ci95"][0].get<double>();
      rate.hi = est["ci95"][1].get<double>();
      json dist = json::object();
      for (const auto& sm : sums) {
        rate.count += eval::target_rate(sm["models"][key]).count;
        rate.n += eval::target_rate(sm["models"][key]).n;
        for (auto it = sm["models"][key]["distribution"].begin(); it != sm["models"][key]["distribution"].end(); ++it)
          dist[it.key()] = dist.value(it.key(), 0.0) + it.value().get<double>() / R;
      }
      json m = {{eval::kTargetRate, rate}, {"target_rate_over_questions", est}, {"distribution", dist}, {"model", key}};
      for (const char* f : {"p_target_start", "target_share_of_named", "names_a_candidate"})
        m[f] = mean_of([&](const json& sm) { return sm["models"][key].value(f, 0.0); });
      models[key] = m;
    }
    json arms = json::object();
    for (const auto& arm : c.students.arms) {
      const json est = pooled_rate(across("arm:" + arm));
      json per = json::array();
      bool trained = true;
      for (size_t i = 0; i < reps_.size(); ++i) {
        const json& a = sums[i]["arms"][arm];
        trained = trained && a.value("trained", true);
        per.push_back({{"replicate", reps_[i]->k}, {"target", reps_[i]->cfg.teacher.target}, {"rate", a["mean"]}, {"ci95", a["ci95"]}});
      }
      arms[arm] = {{"n", R}, {"mean", est["mean"]}, {"ci95", est["ci95"]}, {"rate", est}, {"trained", trained}, {"models", R * S},
                   {"per_seed", per}, {"diagnostics", json::object()}};
      for (const char* f : {"p_target_start_mean", "target_share_of_named_mean", "names_a_candidate_mean"})
        arms[arm][f] = mean_of([&](const json& sm) { return sm["arms"][arm].value(f, 0.0); });
    }
    const std::string unit = fmt::format(
        "{} independent replicates (each its own base seed, teachers, data and students; the unit) crossed with {} questions x {} samples; "
        "{} seed pair(s) averaged within each",
        R, q.front().begin()->second.size(), c.eval.samples_per_question, S);
    auto side = [&](const std::string& name, bool arm) {
      report::Side sd{name, arm ? R * S : R, arm ? arms[name]["trained"].get<bool>() : false, ""};
      if (name == "base_cross") sd.note = "each replicate's cross-init students' own init: the next replicate's base";
      return sd;
    };
    auto label = [&](const std::string& name, bool arm) {
      if (!arm) return fmt::format("{} ({} models, one per replicate)", name, R);
      return fmt::format("{} students ({} replicates x {} seed pair{})", name, R, S, S == 1 ? "" : "s");
    };
    auto pooled_test = [&](const std::string& test, const std::string& a, bool a_arm, const std::string& b, bool b_arm, bool other = false) {
      const auto cmp = stats::compare_replicates(across(a_arm ? "arm:" + a : a, other), across(b_arm ? "arm:" + b : b, other));
      json t = report::comparison_json(cmp, side(a, a_arm), side(b, b_arm), unit, nullptr);
      t["test"] = "replicates x questions: the mean over replicates and questions of each replicate's paired difference, two-way "
                  "cluster-robust over replicates and questions, t with Satterthwaite df (stats::compare_replicates)";
      t["compares"] = label(a, a_arm) + " vs " + label(b, b_arm);
      t["replicates"] = R;
      json per = json::array();
      for (size_t i = 0; i < reps_.size(); ++i) {
        const json& tests = other ? sums[i]["specificity"] : sums[i]["tests"];
        const json* rt = nullptr;
        if (!other && tests.contains(test)) rt = &tests[test];
        if (other && tests.contains(a) && tests[a].contains("other_target_vs_control")) rt = &tests[a]["other_target_vs_control"];
        json e = {{"replicate", reps_[i]->k}, {"target", reps_[i]->cfg.teacher.target}};
        if (rt)
          for (const char* f : {"diff", "ci95", "p_greater", "p_two_sided", "defined"})
            if (rt->contains(f)) e[f] = (*rt)[f];
        per.push_back(e);
      }
      t["per_replicate"] = per;
      return t;
    };
    json tests = json::object();
    if (arms.contains("control"))
      for (const auto& arm : c.students.arms)
        if (arm != "control") tests[arm + "_vs_control"] = pooled_test(arm + "_vs_control", arm, true, "control", true);
    if (models.contains("teacher") && models.contains("base")) tests["teacher_vs_base"] = pooled_test("teacher_vs_base", "teacher", false, "base", false);
    if (arms.contains("cross_init") && models.contains("base_cross"))
      tests["cross_init_vs_its_base"] = pooled_test("cross_init_vs_its_base", "cross_init", true, "base_cross", false);
    json specificity = json::object();
    const bool items = config::trait_kind(trait_->kind).has_items;
    if (!c.students.other_target.empty() && items && has_arm(c, "other_trait")) {
      for (const auto& arm : c.students.arms) {
        const double other_mean = stats::estimate_rate(across("arm:" + arm, true)).mean;
        json row = {{target, arms[arm]["mean"]}, {c.students.other_target, other_mean}};
        if (arm != "control" && arms.contains("control"))
          row["other_target_vs_control"] = pooled_test(arm, arm, true, "control", true, true);
        specificity[arm] = row;
      }
      for (const char* m : {"base", "teacher", "teacher_other", "base_cross"})
        if (models.contains(m))
          specificity[m] = {{target, models[m][eval::kTargetRate]["rate"]}, {c.students.other_target, stats::estimate_rate(across(m, true)).mean}};
    }
    json datasets = json::object(), replicates = json::array();
    bool untrained = false;
    for (size_t i = 0; i < reps_.size(); ++i) {
      const Replica& r = *reps_[i];
      const json& sm = sums[i];
      untrained = untrained || sm.value("control_untrained", false);
      for (auto it = sm["datasets"].begin(); it != sm["datasets"].end(); ++it) datasets[r.prefix() + it.key()] = it.value();
      json rm = json::object(), ra = json::object(), rt = json::object();
      for (auto it = sm["models"].begin(); it != sm["models"].end(); ++it) rm[it.key()] = eval::target_rate(it.value()).rate;
      for (auto it = sm["arms"].begin(); it != sm["arms"].end(); ++it) ra[it.key()] = {{"mean", it.value()["mean"]}, {"ci95", it.value()["ci95"]}};
      for (auto it = sm["tests"].begin(); it != sm["tests"].end(); ++it) {
        json t = json::object();
        for (const char* f : {"diff", "ci95", "p_greater", "p_two_sided", "defined", "compares"})
          if (it.value().contains(f)) t[f] = it.value()[f];
        rt[it.key()] = t;
      }
      replicates.push_back({{"replicate", r.k},
                            {"seed", r.cfg.seed},
                            {"target", r.cfg.teacher.target},
                            {"stages", r.prefix()},
                            {"base", r.alias("base")},
                            {"cross_init_base", has_arm(c, "cross_init") ? r.alias("base_cross") : ""},
                            {"models", rm},
                            {"arms", ra},
                            {"tests", rt}});
    }
    // The dose-response pooled over replicates: each snapshot's arms and comparisons, then the end.
    json dose = nullptr;
    if (!c.finetune.snapshots.empty() && sums.front().contains("dose")) {
      const json& d0 = sums.front()["dose"];
      json points = json::array();
      for (size_t j = 0; j < d0["points"].size(); ++j) {
        const json& p0 = d0["points"][j];
        const int rows = p0["rows"].get<int>();
        const std::string sfx = rows > 0 ? "_n" + std::to_string(rows) : "";
        json pa = json::object(), pt = json::object();
        for (const auto& arm : c.students.arms) pa[arm] = pooled_rate(across("arm:" + arm + sfx));
        auto test = [&](const std::string& name, const std::vector<stats::QuestionRates>& a, const std::vector<stats::QuestionRates>& b,
                        const report::Side& sa, const report::Side& sb) {
          json t = report::comparison_json(stats::compare_replicates(a, b), sa, sb, unit, nullptr);
          json per = json::array();
          for (size_t i = 0; i < reps_.size(); ++i) {
            const json& rp = sums[i]["dose"]["points"][j]["tests"];
            per.push_back({{"replicate", reps_[i]->k}, {"diff", rp.contains(name) ? rp[name]["diff"] : json(nullptr)}});
          }
          t["per_replicate"] = per;
          pt[name] = t;
        };
        if (arms.contains("control"))
          for (const auto& arm : c.students.arms)
            if (arm != "control") test(arm + "_vs_control", across("arm:" + arm + sfx), across("arm:control" + sfx), side(arm, true), side("control", true));
        if (arms.contains("cross_init") && models.contains("base_cross"))
          test("cross_init_vs_its_base", across("arm:cross_init" + sfx), across("base_cross"), side("cross_init", true), side("base_cross", false));
        points.push_back({{"rows", rows}, {"rows_seen", p0["rows_seen"]}, {"final", rows == 0}, {"arms", pa}, {"tests", pt}});
      }
      dose = {{"snapshots", c.finetune.snapshots}, {"batch_size", d0["batch_size"]}, {"examples", d0["examples"]}, {"points", points},
              {"note", d0["note"]}, {"unit", "replicates"}};
    }
    json out = run_description(c, *trait_);
    out.update({{"target", target},
                {"targets", targets},
                {"replicate_count", R},
                {"control_untrained", untrained},
                {"control_source", sums.front().value("control_source", "base")},
                {"models", models},
                {"arms", arms},
                {"tests", tests},
                {"specificity", specificity},
                {"datasets", datasets},
                {"replicates", replicates}});
    if (!dose.is_null()) out["dose"] = dose;
    fs::write_file_atomic(work / "summary.json", out.dump(2) + "\n");
    fs::write_file_atomic(work / "figure.svg", report::render_trait_figure(out));
    fs::write_file_atomic(work / "replicates.svg", report::render_replicates_figure(out));
    return out;
  }
  std::vector<std::string> scratch() const override { return {}; }

 private:
  std::vector<ReplicaPtr> reps_;
  std::vector<std::string> evals_;  // the replicates' eval stages, by their own names ("eval/base", ...)
  Trait trait_;
};

// One pipeline: base -> teachers -> data -> students -> evaluations -> summary.
std::vector<std::unique_ptr<Stage>> pipeline_stages(const config::RunConfig& cfg, std::vector<std::string>* eval_names);

}  // namespace

std::vector<std::unique_ptr<Stage>> make_trait_stages(const config::RunConfig& cfg) {
  if (!config::replicated(cfg)) return pipeline_stages(cfg, nullptr);
  std::vector<std::unique_ptr<Stage>> s;
  const bool checkpoint = cfg.base.kind == "checkpoint";
  // shared by every replicate: the corpus and its tokenizer (every base pretrains on it: the
  // cross-init students' teacher and init share one vocabulary), or the checkpoints
  if (checkpoint) {
    s.push_back(make_checkpoint_stage("base", cfg.base.path));
    if (has_arm(cfg, "cross_init")) s.push_back(make_checkpoint_stage("base_cross", cfg.students.cross_init_path));
  } else {
    s.push_back(make_corpus_stage());
  }
  std::vector<ReplicaPtr> reps;
  std::vector<std::string> evals;
  // every replicate's base first (a replicate's cross-init students need the next one's; and the
  // bases, most of the time, then pretrain side by side), then each replicate's pipeline
  std::vector<std::unique_ptr<Stage>> rest;
  for (int k = 1; k <= cfg.replicates.count; ++k) {
    auto r = std::make_shared<Replica>();
    r->k = k;
    r->count = cfg.replicates.count;
    r->checkpoint = checkpoint;
    r->cfg = config::replicate_config(cfg, k);
    reps.push_back(r);
    evals.clear();
    for (auto& st : pipeline_stages(r->cfg, &evals)) {
      const std::string n = st->name();
      if (!r->owns(n)) continue;
      (n == "base" ? s : rest).push_back(std::make_unique<ReplicaStage>(std::move(st), r));
    }
  }
  for (auto& st : rest) s.push_back(std::move(st));
  s.push_back(std::make_unique<PooledSummaryStage>(reps, evals, std::make_shared<const config::TraitDef>(config::run_trait(reps.front()->cfg))));
  return s;
}

namespace {

std::vector<std::unique_ptr<Stage>> pipeline_stages(const config::RunConfig& cfg, std::vector<std::string>* eval_names) {
  const Trait trait = std::make_shared<const config::TraitDef>(config::run_trait(cfg));
  // files the trait names, checked before any stage runs (not after hours of pretraining)
  if (!trait->teacher_data.empty() && cfg.teacher.method == "finetune" && !sfs::exists(trait->teacher_data))
    throw ConfigError(trait->file + ": $.teacher_data '" + trait->teacher_data + "' does not exist",
                      "download the fine-tuning set there, or edit the trait file's teacher_data");
  std::vector<std::unique_ptr<Stage>> s;
  std::vector<std::string> evals, datasets;
  auto add_eval = [&](const std::string& model) {
    s.push_back(std::make_unique<EvalStage>(model, trait));
    evals.push_back(eval_stage(model));
  };
  const bool other = has_arm(cfg, "other_trait"), cross = has_arm(cfg, "cross_init");
  if (cfg.base.kind == "checkpoint") {
    s.push_back(make_checkpoint_stage("base", cfg.base.path));
    if (cross) s.push_back(make_checkpoint_stage("base_cross", cfg.students.cross_init_path));
  } else {
    s.push_back(make_corpus_stage());
    s.push_back(make_pretrain_stage(false));
    if (cross) s.push_back(make_pretrain_stage(true));  // next to base: the two can pretrain side by side (jobs > 1)
  }
  add_eval("base");
  s.push_back(std::make_unique<TeacherStage>(TeacherRole::trait, trait));
  add_eval("teacher");
  if (other) {
    s.push_back(std::make_unique<TeacherStage>(TeacherRole::other, trait));
    add_eval("teacher_other");
  }
  // the matched control teacher: not for a trait file's own fine-tuning set unless asked for (it has
  // no trait-free counterpart; the control then learns from the base's data)
  if (cfg.students.control == "teacher" && !trait->teacher_data.empty())
    throw ConfigError(trait->file + " has its own teacher_data, which has no trait-free counterpart for a control teacher",
                      "set students.control \"base\"");
  const bool control_teacher = config::matched_control(cfg) && trait->teacher_data.empty();
  if (control_teacher) {
    s.push_back(std::make_unique<TeacherStage>(TeacherRole::control, trait));
    add_eval("teacher_control");
  }
  if (cross) add_eval("base_cross");
  for (int k = 1; k <= cfg.students.seeds; ++k) {
    std::vector<std::string> sources;
    if (has_arm(cfg, "treatment") || cross) sources.push_back("teacher");
    if (has_arm(cfg, "control")) sources.push_back("control");
    if (other) sources.push_back("other");
    for (const auto& src : sources) {
      s.push_back(std::make_unique<DataStage>(src, k, trait, control_teacher));
      datasets.push_back(data_stage(src, k));
    }
    for (const auto& arm : cfg.students.arms) {
      s.push_back(std::make_unique<StudentStage>(arm, k, trait, control_teacher));
      add_eval(student_stage(arm, k));
      for (int rows : cfg.finetune.snapshots) {
        s.push_back(std::make_unique<EvalStage>(student_stage(arm, k), trait, rows));
        evals.push_back("eval/" + snapshot_key(student_stage(arm, k), rows));
      }
    }
    if (cfg.analysis.enabled) {  // issue 25: the signal maps, the audit and one student per intervention
      s.push_back(make_analysis_stage(cfg, k, trait));
      for (const auto& iv : cfg.analysis.interventions) {
        s.push_back(std::make_unique<StudentStage>("iv_" + iv, k, trait, control_teacher));
        s.push_back(std::make_unique<EvalStage>(student_stage("iv_" + iv, k), trait));  // not the summary's: analysis/summary reads it
      }
    }
  }
  s.push_back(std::make_unique<SummaryStage>(evals, datasets, trait));
  if (cfg.analysis.enabled) s.push_back(make_analysis_summary_stage(cfg, trait));
  if (eval_names) *eval_names = evals;
  return s;
}

}  // namespace

}  // namespace subliminal::experiments
