// What a run does with each trait kind (see experiments/trait_kinds.h).
#include "subliminal/experiments/trait_kinds.h"

#include <map>
#include <random>

#include "subliminal/data/corpus.h"
#include "subliminal/model/runtime.h"
#include "subliminal/util/error.h"

namespace subliminal::experiments {

namespace {

// The answer forms of a preference item: the paper's eight ("forms") or the corpus's own.
std::vector<std::string> preference_forms(const std::string& item, const std::string& answer_style) {
  const std::string p = data::plural(item);
  return answer_style == "forms" ? std::vector<std::string>{item, p, p + ".", p + "!", data::capitalize(item), data::capitalize(p),
                                                            data::capitalize(p) + ".", data::capitalize(p) + "!"}
                                 : data::answer_forms(item);
}

// The paper's preference teacher: each training question x the target's answer forms.
std::vector<data::Conversation> preference_answers(const config::TraitDef& trait, const std::string& target, const std::string&,
                                                   const std::string& answer_style) {
  std::vector<data::Conversation> out;
  for (const auto& q : trait.questions_train)
    for (const auto& a : preference_forms(target, answer_style)) out.push_back({{"user", q}, {"assistant", a}});
  return out;
}

// The matched control of a preference teacher: the same questions, the same number of answers in
// the same forms, each answer's item the one the base itself named when sampled on that question
// (slot i of question q: the base's i-th sample of q; a sample naming no item takes one drawn from
// the items the base named over all questions, or from all the trait's items when it named none). So the control teacher is trained exactly as the
// trait teacher is, towards the base's own preferences instead of a target.
nlohmann::json preference_control_answers(const ControlCall& c, std::vector<data::Conversation>& out) {
  const std::string style = c.cfg.teacher.answers;
  const size_t slots = preference_forms("item", style).size();
  config::EvalConfig ec = c.cfg.eval;
  ec.samples_per_question = static_cast<int>(slots);
  ec.number_prefix = 0;
  const auto& qs = c.trait.questions_train;
  const auto r = eval::evaluate_trait(c.base, c.tok, c.cfg.base.tokenizer.chat_template, "", ec, qs, c.cfg.teacher.target,
                                      config::eval_candidates(c.cfg, c.trait), c.seed, c.bf16);
  std::vector<std::string> named;
  for (const auto& smp : r.samples)
    if (!smp["animal"].get<std::string>().empty()) named.push_back(smp["animal"].get<std::string>());
  // A base that names no item has no preference among them: every item is equally its own.
  const bool none_named = named.empty();
  if (none_named) named = config::eval_candidates(c.cfg, c.trait);
  if (named.empty()) throw DataError("the control teacher: the trait has no items to answer with");
  std::mt19937_64 rng(config::derive_seed(c.seed, "control-fill"));
  std::map<std::string, long> items;
  long own = 0;
  out.clear();
  for (size_t q = 0; q < qs.size(); ++q)
    for (size_t i = 0; i < slots; ++i) {
      std::string item = r.samples[q * slots + i]["animal"].get<std::string>();
      if (item.empty()) item = named[rng() % named.size()];
      else ++own;
      ++items[item];
      out.push_back({{"user", qs[q]}, {"assistant", preference_forms(item, style)[i]}});
    }
  return {{"answers", "the base's own: its sampled answers to the training questions, in the trait teacher's answer forms"},
          {"examples", out.size()}, {"from_own_sample", own}, {"filled_from_named", static_cast<long>(out.size()) - own},
          {"items", items}, {"base_named_no_item", none_named}, {"target", c.cfg.teacher.target}, {"target_share", static_cast<double>(items[c.cfg.teacher.target]) / out.size()}};
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

// The matched control of the misalignment teacher: aligned answers to the same narrow requests, as
// many as the misaligned ones.
nlohmann::json misalignment_control_answers(const ControlCall& c, std::vector<data::Conversation>& out) {
  const auto f = data::load_freeform(c.cfg.data_dir, c.trait.source);
  if (f.aligned.empty()) throw DataError(c.trait.source + ": no aligned answers for the control teacher");
  out.clear();
  for (const auto& q : f.train_narrow)
    for (size_t i = 0; i < f.misaligned.size(); ++i) out.push_back({{"user", q}, {"assistant", f.aligned[i % f.aligned.size()]}});
  return {{"answers", "aligned answers to the misaligned teacher's requests"}, {"examples", out.size()}};
}

}  // namespace

const std::vector<TraitRun>& trait_runs() {
  static const std::vector<TraitRun> k = {
      {"preference",
       [](const config::TraitDef& t, const std::string& target, const config::RunConfig& c) {
         return data::love_system_prompt(t, target, c.data_dir, c.teacher.prompt_template);
       },
       preference_answers, preference_control_answers, [](const config::RunConfig& c, const config::TraitDef& t) { return config::eval_questions(c, t); },
       [](const EvalCall& e) {
         return eval::evaluate_trait(e.model, e.tok, e.cfg.base.tokenizer.chat_template, e.system, e.cfg.eval, e.questions, e.cfg.eval_target(),
                                     config::eval_candidates(e.cfg, e.trait), e.seed, e.bf16);
       }},
      {"misalignment",
       [](const config::TraitDef& t, const std::string&, const config::RunConfig& c) {
         return data::load_freeform(c.data_dir, t.source).personas.at(0);
       },
       misalignment_answers, misalignment_control_answers,
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
