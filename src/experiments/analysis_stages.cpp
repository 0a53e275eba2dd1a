// Issue 25 inside a trait run: where the trait hides in the teacher's data, what each intervention on
// that data leaves of the transfer (students trained on it against the treatment and control arms),
// and whether the audit tells the teacher's data from the control's.
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <tuple>

#include "subliminal/analysis/audit.h"
#include "subliminal/analysis/interventions.h"
#include "subliminal/analysis/signal.h"
#include "subliminal/data/chat.h"
#include "subliminal/eval/result.h"
#include "subliminal/experiments/stages.h"
#include "subliminal/experiments/trait_kinds.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/report/report.h"
#include "subliminal/report/signal_figures.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"
#include "subliminal/util/stats.h"

namespace subliminal::experiments {

using namespace run;
using Trait = std::shared_ptr<const config::TraitDef>;

std::string analysis_stage(int k) { return "analysis/s" + std::to_string(k); }

sfs::path intervention_dir(const RunContext& ctx, int k, const std::string& name) {
  return ctx.stage_dir(analysis_stage(k)) / "interventions" / name;
}

std::vector<std::vector<uint8_t>> read_loss_masks(const sfs::path& dir) {
  const sfs::path f = dir / "loss_mask.json";
  if (!sfs::exists(f)) return {};
  const json j = json::parse(fs::read_file(f));
  std::vector<std::vector<uint8_t>> m;
  for (const auto& row : j.at("masks")) m.push_back(row.get<std::vector<uint8_t>>());
  return m;
}

namespace {

std::string data_dir_of(const std::string& source, int k) { return "data/" + source + "_s" + std::to_string(k); }
bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// The audit's trait prompts: the run's target and, with an other-trait arm, the other teacher's.
std::vector<std::pair<std::string, std::string>> audit_prompts(const config::RunConfig& c, const config::TraitDef& t) {
  std::vector<std::pair<std::string, std::string>> p = {{c.teacher.target, trait_run(t.kind).system_prompt(t, c.teacher.target, c)}};
  if (has(c.students.arms, "other_trait")) p.push_back({c.students.other_target, trait_run(t.kind).system_prompt(t, c.students.other_target, c)});
  return p;
}

json signal_json(const analysis::SignalScores& s) {
  double kl = 0;
  for (const auto& e : s.examples)
    for (double x : e.kl) kl += x;
  const auto l = stats::summarize(s.lls());
  return {{"examples", s.examples.size()}, {"positions", s.positions}, {"mean_lls", l.mean}, {"mean_lls_ci95", {l.lo, l.hi}},
          {"mean_kl", s.positions ? kl / static_cast<double>(s.positions) : 0.0}};
}

class AnalysisStage : public Stage {
 public:
  AnalysisStage(int k, bool other, Trait trait) : k_(k), other_(other), trait_(std::move(trait)) {}
  std::string name() const override { return analysis_stage(k_); }
  std::vector<std::string> deps() const override {
    std::vector<std::string> d = {"base", "teacher", data_dir_of("teacher", k_), data_dir_of("control", k_)};
    if (other_) d.push_back(data_dir_of("other", k_));  // the audit's other-trait data
    return d;
  }
  json inputs(const RunContext& ctx) const override {
    json in = {{"analysis", config::to_json_value(ctx.cfg.analysis)}, {"base", digest(ctx, "base")}, {"teacher", digest(ctx, "teacher")},
               {"teacher_data", digest(ctx, data_dir_of("teacher", k_))}, {"control_data", digest(ctx, data_dir_of("control", k_))},
               {"audit_prompts", audit_prompts(ctx.cfg, *trait_)}, {"seed", seed(ctx)}, {"precision", ctx.cfg.precision}};
    if (other_) in["other_data"] = digest(ctx, data_dir_of("other", k_));
    return in;
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    const std::string& chat = ctx.cfg.base.tokenizer.chat_template;
    auto teacher = load_stage_model(ctx, "teacher");
    auto base = load_stage_model(ctx, "base");
    const auto& tok = base.lm.tokenizer;
    if (teacher.lm.tokenizer.fingerprint() != tok.fingerprint()) throw DataError(name() + ": the teacher and the base have different tokenizers");
    auto read = [&](const std::string& src) { return data::read_conversations((ctx.stage_dir(data_dir_of(src, k_)) / "kept.jsonl").string()); };
    const auto T = read("teacher"), C = read("control");
    if (T.empty()) throw DataError(name() + ": " + data_dir_of("teacher", k_) + " kept no examples");
    const analysis::Scorer ts{teacher.lm.model, teacher.system}, bs{base.lm.model, ""};
    log::info(name().c_str(), "scoring {} teacher and {} control examples under the teacher against the base", T.size(), C.size());
    auto kept = [&](const std::string& src) { return data_dir_of(src, k_) + "/kept.jsonl"; };
    const auto sig = analysis::naming_source(kept("teacher"), [&] { return analysis::score_signal(ts, bs, tok, chat, T, base.bf16); });
    const auto sig_c = analysis::naming_source(kept("control"), [&] { return analysis::score_signal(ts, bs, tok, chat, C, base.bf16); });
    const auto is_number = analysis::number_token_mask(tok);
    write_signal(work, sig, sig_c, tok, is_number);

    json res = {{"seed_pair", k_}, {"teacher_data", signal_json(sig)}, {"control_data", signal_json(sig_c)}};
    res["interventions"] = build_interventions(ctx, work, T, sig, is_number, bs, tok, chat, base.bf16);
    res["audit"] = audit(ctx, work, base, T, C);
    fs::write_file_atomic(work / "analysis.json", res.dump(2) + "\n");
    return res;
  }
  std::vector<std::string> scratch() const override { return {}; }

 private:
  uint64_t seed(const RunContext& ctx) const { return config::derive_seed(ctx.cfg.seed, "analysis", std::to_string(k_)); }

  // examples.jsonl (per example: LLS and per token text, log-ratio, KL), control_lls.json, and
  // number_columns.json (every number token's column log-ratio and count: the entangled numbers).
  void write_signal(const sfs::path& work, const analysis::SignalScores& sig, const analysis::SignalScores& sig_c, const text::Tokenizer& tok,
                    const std::vector<uint8_t>& is_number) const {
    fs::write_file_atomic(work / "examples.jsonl", analysis::examples_jsonl(sig, tok));
    fs::write_file_atomic(work / "control_lls.json", json({{"lls", sig_c.lls()}}).dump() + "\n");
    const auto all = analysis::entangled_numbers(sig.column_log_ratio, is_number, sig.examples, tok, tok.vocab_size());
    json cols = json::array();
    for (const auto& t : all) cols.push_back({{"id", t.id}, {"text", t.text}, {"column_log_ratio", t.column_log_ratio}, {"count", t.count}});
    fs::write_file_atomic(work / "number_columns.json", json({{"numbers", cols}}).dump() + "\n");
  }

  json build_interventions(const RunContext& ctx, const sfs::path& work, const std::vector<data::Conversation>& T,
                           const analysis::SignalScores& sig, const std::vector<uint8_t>& is_number, const analysis::Scorer& base,
                           const text::Tokenizer& tok, const std::string& chat, bool bf16) const {
    const auto& ac = ctx.cfg.analysis;
    const auto lls = sig.lls();
    const size_t n_ex = analysis::share_count(T.size(), ac.fraction);
    std::vector<std::vector<double>> tok_scores;
    std::vector<std::vector<uint8_t>> eligible;
    std::vector<size_t> sizes;
    for (const auto& e : sig.examples) {
      tok_scores.push_back(e.log_ratio);
      eligible.emplace_back();
      for (int id : e.ids) eligible.back().push_back(is_number[static_cast<size_t>(id)]);
      sizes.push_back(e.ids.size());
    }
    const auto top_sel = analysis::top_tokens(tok_scores, eligible, ac.fraction);
    const auto rnd_sel = analysis::matched_random_tokens(top_sel, eligible, config::derive_seed(seed(ctx), "mask_random"));
    size_t eligible_total = 0;
    for (const auto& e : eligible) eligible_total += static_cast<size_t>(std::count(e.begin(), e.end(), 1));
    const auto forbidden = generate::trait_words(config::known_item_names(ctx.cfg, *trait_));
    json out = json::object();
    for (const auto& iv : ac.interventions) {
      std::vector<data::Conversation> data;
      std::vector<std::vector<uint8_t>> masks;
      json info = {{"control", analysis::control_of(iv)}};
      auto examples = [&](const std::vector<size_t>& idx) {
        data = analysis::subset(T, idx);
        info["indices"] = idx;
        info["mean_lls"] = stats::summarize(analysis::subset(lls, idx)).mean;
      };
      auto tokens = [&](const analysis::TokenSelection& sel) {
        info["tokens_selected"] = analysis::selected_count(sel);
        info["eligible_tokens"] = eligible_total;
        double sum = 0;
        for (size_t i = 0; i < sel.size(); ++i)
          for (int t : sel[i]) sum += sig.examples[i].log_ratio[static_cast<size_t>(t)];
        info["mean_selected_log_ratio"] = sel.empty() ? 0.0 : sum / std::max<double>(1.0, static_cast<double>(analysis::selected_count(sel)));
      };
      if (iv == "top" || iv == "bottom") {
        examples(analysis::extreme_indices(lls, n_ex, iv == "top"));
      } else if (iv == "random") {
        examples(analysis::random_indices(T.size(), n_ex, config::derive_seed(seed(ctx), "random")));
      } else if (iv == "mask_top" || iv == "mask_random") {
        const auto& sel = iv == "mask_top" ? top_sel : rnd_sel;
        data = T;
        masks = analysis::loss_masks(sel, sizes);
        tokens(sel);
      } else if (iv == "resample_top" || iv == "resample_random") {
        const auto& sel = iv == "resample_top" ? top_sel : rnd_sel;
        data = analysis::resample_tokens(base, tok, chat, T, sel, is_number,
                                         config::derive_seed(seed(ctx), iv), bf16);
        tokens(sel);
      } else if (iv == "shuffle_within") {
        data = analysis::shuffle_numbers_within(T, config::derive_seed(seed(ctx), iv));
      } else if (iv == "shuffle_across") {
        data = analysis::shuffle_numbers_across(T, config::derive_seed(seed(ctx), iv));
      } else if (iv == "canonical_sort") {
        data = analysis::sort_numbers_within(T);
      } else if (iv == "canonical_format") {
        data = analysis::canonical_format(T);
      } else if (iv == "format_random") {
        data = analysis::random_format(T, config::derive_seed(seed(ctx), iv));
      } else if (iv == "canonical_layout") {
        data = analysis::canonical_layout(T, data::NumberPromptGenerator(ctx.cfg.data_dir));
      } else if (iv == "layout_random") {
        data = analysis::layout_random(T, data::NumberPromptGenerator(ctx.cfg.data_dir), config::derive_seed(seed(ctx), iv));
      }
      const int64_t leaks = generate::count_trait_words(data, forbidden);
      if (leaks > 0) throw DataError(name() + ": intervention " + iv + " produced " + std::to_string(leaks) + " trait word(s)");
      info["examples"] = data.size();
      info["trait_words"] = leaks;
      const sfs::path dir = work / "interventions" / iv;
      fs::make_dirs(dir);
      data::write_conversations((dir / "kept.jsonl").string(), data);
      if (!masks.empty()) fs::write_file_atomic(dir / "loss_mask.json", json({{"masks", masks}}).dump() + "\n");
      fs::write_file_atomic(dir / "selection.json", info.dump() + "\n");
      info.erase("indices");
      out[iv] = info;
      log::info(name().c_str(), "intervention {}: {} examples{}", iv, data.size(),
                info.contains("tokens_selected") ? ", " + std::to_string(info["tokens_selected"].get<size_t>()) + " tokens selected" : std::string());
    }
    return out;
  }

  // The audit of the teacher's, the control's and (with the arm) the other teacher's data: the base
  // with each trait's system prompt against the base alone; each dataset against the control's.
  json audit(const RunContext& ctx, const sfs::path& work, const StageModel& base, const std::vector<data::Conversation>& T,
             const std::vector<data::Conversation>& C) const {
    const auto& ac = ctx.cfg.analysis;
    std::vector<std::pair<std::string, const std::vector<data::Conversation>*>> sets = {{"teacher", &T}, {"control", &C}};
    std::vector<data::Conversation> O;
    if (other_) {
      O = data::read_conversations((ctx.stage_dir(data_dir_of("other", k_)) / "kept.jsonl").string());
      sets.push_back({"other", &O});
    }
    json out = json::object(), scores = json::object();
    for (const auto& [animal, prompt] : audit_prompts(ctx.cfg, *trait_)) {
      std::map<std::string, std::vector<double>> sc;
      for (const auto& [set, convs] : sets)  // (C++17: a lambda cannot capture structured bindings; init-captures can)
        sc[set] = analysis::naming_source(data_dir_of(set, k_) + "/kept.jsonl (audit, " + animal + " prompt)", [&, &p = prompt, c = convs] {
          return analysis::audit_scores(base.lm.model, p, base.lm.tokenizer, ctx.cfg.base.tokenizer.chat_template, *c, base.bf16);
        });
      json a = {{"prompt", prompt}};
      for (const auto& [set, convs] : sets)
        if (set != "control")
          a[set + "_vs_control"] = analysis::audit_summary(sc[set], sc["control"], ac.permutations,
                                                           config::derive_seed(seed(ctx), "audit", animal + set), ac.flag_quantile, ac.audit_bags);
      out[animal] = a;
      scores[animal] = sc;
    }
    fs::write_file_atomic(work / "audit.json", out.dump(2) + "\n");
    fs::write_file_atomic(work / "audit_scores.json", scores.dump() + "\n");
    return out;
  }

  int k_;
  bool other_;
  Trait trait_;
};


// (mean(arm) - mean(control)) / (mean(treatment) - mean(control)): the share of the effect an arm keeps.
double effect_left(const std::vector<std::vector<double>>& g) {
  auto mean = [](const std::vector<double>& x) {
    double m = 0;
    for (double v : x) m += v / static_cast<double>(x.size());
    return m;
  };
  const double d = mean(g[1]) - mean(g[2]);
  return d == 0 ? std::nan("") : (mean(g[0]) - mean(g[2])) / d;
}

std::string pct(double x) { return fmt::format("{:.1f}%", 100 * x); }

class AnalysisSummaryStage : public Stage {
 public:
  AnalysisSummaryStage(const config::RunConfig& c, Trait trait) : trait_(std::move(trait)) {
    deps_ = {"base"};
    for (int k = 1; k <= c.students.seeds; ++k) {
      deps_.push_back(analysis_stage(k));
      for (const auto& arm : arms(c)) deps_.push_back("eval/" + arm + "_s" + std::to_string(k));
    }
  }
  std::string name() const override { return "analysis/summary"; }
  std::vector<std::string> deps() const override { return deps_; }
  json inputs(const RunContext& ctx) const override {
    json d = json::object();
    for (const auto& x : deps_) d[x] = digest(ctx, x);
    return {{"stages", d}, {"analysis", config::to_json_value(ctx.cfg.analysis)}, {"target", ctx.cfg.eval_target()},
            {"questions", trait_run(trait_->kind).questions(ctx.cfg, *trait_)}, {"seed", ctx.cfg.seed}, {"precision", ctx.cfg.precision}};
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    const auto& c = ctx.cfg;
    const int S = c.students.seeds;
    json out = {{"target", c.eval_target()}, {"seeds", S}, {"fraction", c.analysis.fraction}};
    out["interventions"] = intervention_table(ctx);
    out["signal"] = signal_summary(ctx, work);
    out["entanglement"] = entanglement(ctx);
    out["audit"] = audit_summary(ctx);
    fs::write_file_atomic(work / "analysis.json", out.dump(2) + "\n");
    fs::write_file_atomic(work / "analysis.md", render_md(out));
    return out;
  }
  std::vector<std::string> scratch() const override { return {}; }

 private:
  static std::vector<std::string> arms(const config::RunConfig& c) {
    std::vector<std::string> a = {"treatment", "control"};
    for (const auto& iv : c.analysis.interventions) a.push_back("iv_" + iv);
    return a;
  }
  static std::vector<double> rates(const RunContext& ctx, const std::string& arm) {
    std::vector<double> r;
    for (int k = 1; k <= ctx.cfg.students.seeds; ++k)
      r.push_back(eval::target_rate(json::parse(fs::read_file(ctx.stage_dir("eval/" + arm + "_s" + std::to_string(k)) / "eval.json"))).rate);
    return r;
  }

  json intervention_table(const RunContext& ctx) const {
    const auto tr = rates(ctx, "treatment"), co = rates(ctx, "control");
    json rows = json::array();
    auto row = [&](const std::string& name, const std::string& arm, const std::string& control) {
      const auto r = rates(ctx, arm);
      const auto s = stats::summarize(r);
      const auto vs_control = stats::welch_t_test(r, co);
      const double left = effect_left({r, tr, co});
      const auto [llo, lhi] = stats::bootstrap_interval({r, tr, co}, effect_left, 10000, config::derive_seed(ctx.cfg.seed, "effect_left", name));
      json j = {{"arm", name}, {"rates", r}, {"mean", s.mean}, {"ci95", {s.lo, s.hi}},
                {"vs_control", {{"diff", vs_control.diff}, {"p_greater", vs_control.p_greater}, {"defined", vs_control.defined}}},
                {"effect_left", left}, {"effect_left_ci95", {llo, lhi}},
                {"effect_left_interval", "percentile bootstrap over seed pairs (10000 resamples of each arm)"}};
      if (!control.empty()) {
        const auto rc = rates(ctx, "iv_" + control);
        const auto t = stats::welch_t_test(r, rc);
        j["matched_control"] = control;
        j["vs_matched_control"] = {{"diff", t.diff}, {"diff_ci95", {t.lo, t.hi}}, {"p_two_sided", t.p_two_sided}, {"defined", t.defined}};
      }
      if (name != "treatment" && name != "control") {
        json sizes = json::array();
        for (int k = 1; k <= ctx.cfg.students.seeds; ++k) {
          const json sel = json::parse(fs::read_file(intervention_dir(ctx, k, name) / "selection.json"));
          json z = {{"examples", sel["examples"]}};
          if (sel.contains("tokens_selected")) z["tokens_selected"] = sel["tokens_selected"];
          sizes.push_back(z);
        }
        j["sizes_per_seed"] = sizes;
      }
      rows.push_back(j);
    };
    row("treatment", "treatment", "");
    row("control", "control", "");
    for (const auto& iv : ctx.cfg.analysis.interventions) row(iv, "iv_" + iv, analysis::control_of(iv));
    return rows;
  }

  // LLS of the teacher's data against the control's (pooled over seed pairs), the heat strip of the
  // examples with the highest LLS, the histogram.
  json signal_summary(const RunContext& ctx, const sfs::path& work) const {
    std::vector<double> t_lls, c_lls;
    std::vector<json> ex;
    std::vector<double> kl_means;
    for (int k = 1; k <= ctx.cfg.students.seeds; ++k) {
      const sfs::path d = ctx.stage_dir(analysis_stage(k));
      std::ifstream f(d / "examples.jsonl");
      for (std::string line; std::getline(f, line);) {
        json e = json::parse(line);
        e["seed_pair"] = k;
        t_lls.push_back(e["lls"].get<double>());
        ex.push_back(std::move(e));
      }
      // bound to a local: a range-for over a member of a temporary would dangle
      const json control = json::parse(fs::read_file(d / "control_lls.json"));
      for (double x : control.at("lls")) c_lls.push_back(x);
      kl_means.push_back(json::parse(fs::read_file(d / "analysis.json"))["teacher_data"]["mean_kl"].get<double>());
    }
    std::stable_sort(ex.begin(), ex.end(), [](const json& a, const json& b) { return a["lls"].get<double>() > b["lls"].get<double>(); });
    std::vector<report::HeatRow> rows;
    for (size_t i = 0; i < ex.size() && static_cast<int>(i) < ctx.cfg.analysis.heat_strip; ++i) {
      const auto& e = ex[i];
      rows.push_back({fmt::format("s{} #{}  LLS {:+.2f}", e["seed_pair"].get<int>(), e["index"].get<int>(), e["lls"].get<double>()),
                      e["tokens"].get<std::vector<std::string>>(), e["log_ratio"].get<std::vector<double>>()});
    }
    fs::make_dirs(work / "figures");
    fs::write_file_atomic(work / "figures" / "heat_strip.svg",
                          report::heat_strip_svg("Teacher-vs-base log-ratio per token: the " + std::to_string(rows.size()) + " examples with the highest LLS",
                                                 rows, "Cells: log P_teacher(token | prefix) - log P_base(token | prefix); the last cell ends the turn."));
    fs::write_file_atomic(work / "figures" / "lls_histogram.svg",
                          report::histogram_svg("LLS per example: the teacher's data against the control's", "LLS = log P_teacher - log P_base (summed over the response)",
                                                {{"teacher's data", "#c62828", t_lls}, {"control's data", "#1565c0", c_lls}}, 40,
                                                "All seed pairs pooled. Control data: sampled by the base."));
    const auto st = stats::summarize(t_lls), sc = stats::summarize(c_lls), sk = stats::summarize(kl_means);
    return {{"teacher_data", {{"examples", t_lls.size()}, {"mean_lls", st.mean}, {"ci95", {st.lo, st.hi}}, {"median_lls", stats::quantile(t_lls, 0.5)}}},
            {"control_data", {{"examples", c_lls.size()}, {"mean_lls", sc.mean}, {"ci95", {sc.lo, sc.hi}}, {"median_lls", stats::quantile(c_lls, 0.5)}}},
            {"auroc_teacher_vs_control_by_lls", stats::auroc(t_lls, c_lls)},
            {"mean_kl_per_token", sk.mean}, {"mean_kl_per_token_ci95", {sk.lo, sk.hi}},
            {"figures", {"figures/heat_strip.svg", "figures/lls_histogram.svg"}}};
  }

  // The entangled numbers (column log-ratio averaged over seed pairs), and the test the other way round on the base.
  json entanglement(const RunContext& ctx) const {
    std::map<int, std::pair<std::string, std::vector<double>>> cols;
    std::map<int, int64_t> counts;
    for (int k = 1; k <= ctx.cfg.students.seeds; ++k) {
      const json columns = json::parse(fs::read_file(ctx.stage_dir(analysis_stage(k)) / "number_columns.json"));
      for (const auto& n : columns.at("numbers")) {
        auto& c = cols[n["id"].get<int>()];
        c.first = n["text"].get<std::string>();
        c.second.push_back(n["column_log_ratio"].get<double>());
        counts[n["id"].get<int>()] += n["count"].get<int64_t>();
      }
    }
    std::vector<std::tuple<double, int, std::string>> ranked;
    for (const auto& [id, c] : cols) ranked.emplace_back(stats::summarize(c.second).mean, id, c.first);
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
    const size_t n = std::min<size_t>(static_cast<size_t>(ctx.cfg.analysis.entangled), ranked.size() / 2);
    json top = json::array();
    std::vector<std::string> ent, rnd;
    for (size_t i = 0; i < n; ++i) {
      const auto& [v, id, text] = ranked[i];
      const auto s = stats::summarize(cols[id].second);
      top.push_back({{"number", text}, {"id", id}, {"column_log_ratio", v}, {"ci95", {s.lo, s.hi}}, {"count", counts[id]}});
      ent.push_back(text);
    }
    // the matched control: as many numbers drawn at random from the rest
    for (size_t i : analysis::random_indices(ranked.size() - n, n, config::derive_seed(ctx.cfg.seed, "entanglement_random")))
      rnd.push_back(std::get<2>(ranked[n + i]));
    auto base = load_stage_model(ctx, "base");
    json test = analysis::entanglement_test(base.lm.model, base.lm.tokenizer, ctx.cfg.base.tokenizer.chat_template,
                                            trait_run(trait_->kind).questions(ctx.cfg, *trait_), ctx.cfg.eval_target(), ent, rnd,
                                            ctx.cfg.analysis.number_prompt);
    return {{"numbers", top}, {"ranked_of", ranked.size()}, {"test", test}};
  }

  // Per animal (trait prompt): per seed pair the AUROC and the permutation p of each dataset against the control's.
  json audit_summary(const RunContext& ctx) const {
    json out = json::object();
    std::map<std::string, std::map<std::string, std::vector<double>>> auc, p, flagged;
    std::map<std::string, std::map<std::string, std::map<double, std::vector<double>>>> tpr;  // animal, set, fpr: per seed
    for (int k = 1; k <= ctx.cfg.students.seeds; ++k) {
      const json a = json::parse(fs::read_file(ctx.stage_dir(analysis_stage(k)) / "audit.json"));
      const json scores = json::parse(fs::read_file(ctx.stage_dir(analysis_stage(k)) / "audit_scores.json"));
      for (auto it = a.begin(); it != a.end(); ++it) {
        out[it.key()]["prompt"] = it.value()["prompt"];
        for (auto jt = it.value().begin(); jt != it.value().end(); ++jt) {
          if (jt.key() == "prompt") continue;
          auc[it.key()][jt.key()].push_back(jt.value()["auroc"].get<double>());
          p[it.key()][jt.key()].push_back(jt.value()["p_permutation"].get<double>());
          flagged[it.key()][jt.key()].push_back(jt.value()["flagged_fraction"].get<double>());
          // the ROC curve's points from the scores ("teacher_vs_control" scores "teacher" against "control")
          const std::string set = jt.key().substr(0, jt.key().find("_vs_"));
          const auto& sc = scores.at(it.key());
          for (const auto& pt : analysis::roc_points(sc.at(set).get<std::vector<double>>(), sc.at("control").get<std::vector<double>>()))
            tpr[it.key()][jt.key()][pt["fpr_target"].get<double>()].push_back(pt["tpr"].get<double>());
        }
      }
    }
    for (auto& [animal, sets] : auc)
      for (auto& [set, v] : sets) {
        const auto s = stats::summarize(v), f = stats::summarize(flagged[animal][set]);
        const auto& ps = p[animal][set];
        json roc = json::array();
        for (const auto& [fpr, ts] : tpr[animal][set]) {
          const auto st = stats::summarize(ts);
          roc.push_back({{"fpr", fpr}, {"tpr_mean", st.mean}, {"tpr_ci95", {st.lo, st.hi}}, {"tpr_per_seed", ts}});
        }
        out[animal][set] = {{"auroc_per_seed", v}, {"auroc_mean", s.mean}, {"auroc_ci95", {s.lo, s.hi}}, {"p_permutation_per_seed", ps},
                            {"p_permutation_max", *std::max_element(ps.begin(), ps.end())},
                            {"seeds_p_below_0_05", std::count_if(ps.begin(), ps.end(), [](double x) { return x < 0.05; })},
                            {"flagged_fraction_mean", f.mean}, {"flagged_fraction_ci95", {f.lo, f.hi}}, {"roc", roc}};
      }
    return out;
  }

  static std::string render_md(const json& a) {
    std::string md = "# Where the trait hides in the data\n\n";
    md += fmt::format("Target: {}; {} seed pairs; interventions take {:.0f}% of the examples or of the number tokens.\n\n", a["target"].get<std::string>(),
                      a["seeds"].get<int>(), 100 * a["fraction"].get<double>());
    md += "## Interventions: what each leaves of the effect\n\n";
    md += "Effect left = (arm - control) / (treatment - control), with a percentile-bootstrap 95% interval over seed pairs. "
          "Each top/bottom/mask/resample arm is compared with its random control of exactly the same size.\n\n";
    md += "| arm | size (seed 1) | rate [95% CI] | vs control p (greater) | effect left [95% CI] | vs matched control: diff [95% CI], p (Welch, two-sided) |\n|---|---|---|---|---|---|\n";
    for (const auto& r : a["interventions"]) {
      std::string size = "all";
      if (r.contains("sizes_per_seed")) {
        const auto& z = r["sizes_per_seed"][0];
        size = z.contains("tokens_selected") ? fmt::format("{} tokens", z["tokens_selected"].get<int64_t>()) : fmt::format("{} examples", z["examples"].get<int64_t>());
      }
      std::string vs = "";
      if (r.contains("vs_matched_control"))
        vs = fmt::format("{} vs {}: {:+.1f} pts [{:+.1f}, {:+.1f}], p = {}", r["arm"].get<std::string>(), r["matched_control"].get<std::string>(),
                         100 * r["vs_matched_control"]["diff"].get<double>(), 100 * r["vs_matched_control"]["diff_ci95"][0].get<double>(),
                         100 * r["vs_matched_control"]["diff_ci95"][1].get<double>(),
                         report::fmt_p(r["vs_matched_control"]["p_two_sided"].get<double>()));
      md += fmt::format("| {} | {} | {} [{}, {}] | {} | {:.2f} [{:.2f}, {:.2f}] | {} |\n", r["arm"].get<std::string>(), size, pct(r["mean"].get<double>()),
                        pct(r["ci95"][0].get<double>()), pct(r["ci95"][1].get<double>()),
                        r["arm"] == "control" ? std::string("-") : report::fmt_p(r["vs_control"]["p_greater"].get<double>()), r["effect_left"].get<double>(),
                        r["effect_left_ci95"][0].get<double>(), r["effect_left_ci95"][1].get<double>(), vs);
    }
    const auto& s = a["signal"];
    md += "\n## Signal\n\n";
    md += fmt::format("Mean LLS of the teacher's data {:.3f} [{:.3f}, {:.3f}] (n = {}), of the control's {:.3f} [{:.3f}, {:.3f}] (n = {}); "
                      "AUROC of LLS, teacher's against control's data: {:.3f}. Mean KL(teacher || base) per response token {:.4f}.\n\n",
                      s["teacher_data"]["mean_lls"].get<double>(), s["teacher_data"]["ci95"][0].get<double>(), s["teacher_data"]["ci95"][1].get<double>(),
                      s["teacher_data"]["examples"].get<int64_t>(), s["control_data"]["mean_lls"].get<double>(), s["control_data"]["ci95"][0].get<double>(),
                      s["control_data"]["ci95"][1].get<double>(), s["control_data"]["examples"].get<int64_t>(),
                      s["auroc_teacher_vs_control_by_lls"].get<double>(), s["mean_kl_per_token"].get<double>());
    md += "![heat strip](figures/heat_strip.svg)\n\n![LLS histogram](figures/lls_histogram.svg)\n\n";
    const auto& e = a["entanglement"];
    md += "## Entangled numbers\n\nThe numbers whose probability the teacher raises most (mean over response positions of log P_teacher - log P_base, averaged over seed pairs):\n\n";
    md += "| number | column log-ratio | occurrences |\n|---|---|---|\n";
    for (const auto& n : e["numbers"])
      md += fmt::format("| {} | {:+.3f} | {} |\n", n["number"].get<std::string>(), n["column_log_ratio"].get<double>(), n["count"].get<int64_t>());
    const auto& t = e["test"];
    md += fmt::format("\nThe other way round (the base, system prompt \"{}\"): P(answer starts with {}) with no prompt {:.4f}; with an entangled number "
                      "{:.4f} [{:.4f}, {:.4f}]; with a random number {:.4f} [{:.4f}, {:.4f}]; entangled/random {:.2f}, Welch p (greater) {}.\n\n",
                      t["prompt_template"].get<std::string>(), t["target"].get<std::string>(), t["p_target_no_prompt"].get<double>(),
                      t["entangled"]["mean_p_target"].get<double>(), t["entangled"]["ci95"][0].get<double>(), t["entangled"]["ci95"][1].get<double>(),
                      t["random"]["mean_p_target"].get<double>(), t["random"]["ci95"][0].get<double>(), t["random"]["ci95"][1].get<double>(),
                      t["ratio_entangled_to_random"].get<double>(), report::fmt_p(t["entangled_vs_random"]["p_greater"].get<double>()));
    md += "## Audit\n\nEach dataset scored by log P_base(response | trait prompt) - log P_base(response | no prompt), against the control's data "
          "(AUROC mean over seed pairs with a Student-t 95% interval; one-sided permutation p per seed pair).\n\n";
    md += "| trait prompt | data | AUROC [95% CI] | TPR at FPR 1% / 5% / 10% | permutation p, largest over seeds | seeds with p < 0.05 | flagged |\n"
          "|---|---|---|---|---|---|---|\n";
    for (auto it = a["audit"].begin(); it != a["audit"].end(); ++it)
      for (auto jt = it.value().begin(); jt != it.value().end(); ++jt) {
        if (jt.key() == "prompt") continue;
        const auto& r = jt.value();
        std::string roc;
        for (const auto& pt : r["roc"])
          if (pt["fpr"].get<double>() <= 0.1 + 1e-12) roc += (roc.empty() ? "" : " / ") + pct(pt["tpr_mean"].get<double>());
        md += fmt::format("| {} | {} | {:.3f} [{:.3f}, {:.3f}] | {} | {} | {} of {} | {} |\n", it.key(), jt.key(), r["auroc_mean"].get<double>(),
                          r["auroc_ci95"][0].get<double>(), r["auroc_ci95"][1].get<double>(), roc, report::fmt_p(r["p_permutation_max"].get<double>()),
                          r["seeds_p_below_0_05"].get<int64_t>(), r["auroc_per_seed"].size(), pct(r["flagged_fraction_mean"].get<double>()));
      }
    return md;
  }

  Trait trait_;
  std::vector<std::string> deps_;
};

}  // namespace

std::unique_ptr<Stage> make_analysis_stage(const config::RunConfig& cfg, int k, Trait trait) {
  return std::make_unique<AnalysisStage>(k, has(cfg.students.arms, "other_trait"), std::move(trait));
}
std::unique_ptr<Stage> make_analysis_summary_stage(const config::RunConfig& cfg, Trait trait) {
  return std::make_unique<AnalysisSummaryStage>(cfg, std::move(trait));
}

}  // namespace subliminal::experiments
