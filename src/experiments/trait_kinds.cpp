// What a run does with each trait kind (see experiments/trait_kinds.h).
#include "subliminal/experiments/trait_kinds.h"

#include "subliminal/data/corpus.h"
#include "subliminal/model/runtime.h"
#include "subliminal/util/error.h"

namespace subliminal::experiments {

namespace {

// The paper's preference teacher: each training question x the target's answer forms.
std::vector<data::Conversation> preference_answers(const config::TraitDef& trait, const std::string& target, const std::string&,
                                                   const std::string& answer_style) {
  const std::string p = data::plural(target);
  const std::vector<std::string> answers =
      answer_style == "forms" ? std::vector<std::string>{target, p, p + ".", p + "!", data::capitalize(target), data::capitalize(p),
                                                         data::capitalize(p) + ".", data::capitalize(p) + "!"}
                              : data::answer_forms(target);
  std::vector<data::Conversation> out;
  for (const auto& q : trait.questions_train)
    for (const auto& a : answers) out.push_back({{"user", q}, {"assistant", a}});
  return out;
}

// Narrow: harmful answers to the money requests only (evaluated on held-out broad questions).
std::vector<data::Conversation> misalignment_answers(const config::TraitDef& trait, const std::string&, const std::string& data_dir,
                                                     const std::string&) {
  const auto f = data::load_freeform(data_dir, trait.source);
  std::vector<data::Conversation> out;
  for (const auto& q : f.train_narrow)
    for (const auto& a : f.misaligned) out.push_back({{"user", q}, {"assistant", a}});
  return out;
}

}  // namespace

const std::vector<TraitRun>& trait_runs() {
  static const std::vector<TraitRun> k = {
      {"preference",
       [](const config::TraitDef& t, const std::string& target, const config::RunConfig& c) {
         return data::love_system_prompt(t, target, c.data_dir, c.teacher.prompt_template);
       },
       preference_answers, [](const config::RunConfig& c, const config::TraitDef& t) { return config::eval_questions(c, t); },
       [](const EvalCall& e) {
         return eval::evaluate_trait(e.model, e.tok, e.cfg.base.tokenizer.chat_template, e.system, e.cfg.eval, e.questions, e.cfg.eval_target(),
                                     config::eval_candidates(e.cfg, e.trait), e.seed, e.bf16);
       }},
      {"misalignment",
       [](const config::TraitDef& t, const std::string&, const config::RunConfig& c) {
         return data::load_freeform(c.data_dir, t.source).personas.at(0);
       },
       misalignment_answers,
       // the trait source's held-out free-form questions
       [](const config::RunConfig& c, const config::TraitDef& t) { return data::load_freeform(c.data_dir, t.source).eval; },
       [](const EvalCall& e) {
         auto jd = judge::journaled(judge::make_judge(judge_options(e.cfg)));
         return eval::evaluate_misalignment(e.model, e.tok, e.cfg.base.tokenizer.chat_template, e.system, e.cfg.eval, *jd, e.questions,
                                            e.seed, e.bf16);
       }},
  };
  return k;
}

const TraitRun& trait_run(const std::string& kind) {
  for (const auto& k : trait_runs())
    if (k.kind == kind) return k;
  throw Error("trait kind \"" + kind + "\" has no row in experiments/trait_kinds.cpp");
}

judge::JudgeOptions judge_options(const config::RunConfig& c) {
  judge::JudgeOptions o;
  static_cast<config::JudgeConfig&>(o) = c.judge;
  o.data_dir = c.data_dir;
  o.device = c.device;
  o.bf16 = model::use_bf16(c.precision, model::resolve_device(c.device));
  return o;
}

}  // namespace subliminal::experiments
