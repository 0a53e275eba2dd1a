// `subliminal analyze` and `subliminal audit`: issue 25's signal maps and dataset audit on any model
// directories (the run's stages do the same inside a trait run: experiments/analysis_stages.cpp).
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <random>

#include "subliminal/analysis/audit.h"
#include "subliminal/analysis/signal.h"
#include "subliminal/cli/commands.h"
#include "model_command.h"
#include "subliminal/config/trait.h"
#include "subliminal/data/chat.h"
#include "subliminal/experiments/trait_kinds.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/runtime.h"
#include "subliminal/report/signal_figures.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"
#include "subliminal/util/stats.h"

namespace subliminal::cli {

namespace sfs = std::filesystem;
using json = nlohmann::json;

namespace {

std::vector<data::Conversation> read_data(const std::string& path, const char* flag) {
  if (path.empty()) throw ConfigError(std::string(flag) + " is required (chat JSONL: {\"messages\": [...]} per line)");
  if (!sfs::exists(path)) throw ConfigError(std::string(flag) + " " + path + ": no such file");
  auto c = data::read_conversations(path);
  if (c.empty()) throw DataError(path + ": no examples");
  return c;
}

}  // namespace

int cmd_analyze(const AnalyzeArgs& a) {
  auto env = prepare_model_command(a.config, a.set, a.threads, a.out);
  const auto data = read_data(a.data, "--data");
  auto teacher = load_command_model(a.teacher, "--teacher", env);
  auto base = load_command_model(a.base, "--base", env);
  if (teacher.tokenizer.fingerprint() != base.tokenizer.fingerprint())
    throw DataError("--teacher " + a.teacher + " and --base " + a.base + " have different tokenizers; the log-ratio compares one vocabulary");
  const std::string& chat = env.cfg.base.tokenizer.chat_template;
  const auto& tok = base.tokenizer;
  const analysis::Scorer ts{teacher.model, a.teacher_system}, bs{base.model, ""};
  log::info("analyze", "scoring {} examples under the teacher against the base", data.size());
  const auto sig = analysis::naming_source(a.data, [&] { return analysis::score_signal(ts, bs, tok, chat, data, env.bf16); });
  fs::make_dirs(sfs::path(a.out) / "figures");
  fs::write_file_atomic(sfs::path(a.out) / "examples.jsonl", analysis::examples_jsonl(sig, tok));
  const auto lls = sig.lls();
  const auto sl = stats::summarize(lls);
  double kl = 0;
  for (const auto& e : sig.examples)
    for (double x : e.kl) kl += x;
  json out = {{"data", a.data}, {"teacher", a.teacher}, {"teacher_system", a.teacher_system}, {"base", a.base},
              {"examples", data.size()}, {"positions", sig.positions}, {"mean_lls", sl.mean}, {"mean_lls_ci95", {sl.lo, sl.hi}},
              {"mean_kl_per_token", sig.positions ? kl / static_cast<double>(sig.positions) : 0.0}};
  // the heat strip: the examples with the highest LLS
  std::vector<size_t> order(lls.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return lls[x] > lls[y]; });
  std::vector<report::HeatRow> rows;
  for (size_t r = 0; r < order.size() && static_cast<int>(r) < env.cfg.analysis.heat_strip; ++r) {
    const auto& e = sig.examples[order[r]];
    std::vector<std::string> t;
    for (int id : e.ids) t.push_back(analysis::token_text(tok, id));
    rows.push_back({fmt::format("#{}  LLS {:+.2f}", order[r], e.lls), t, e.log_ratio});
  }
  fs::write_file_atomic(sfs::path(a.out) / "figures" / "heat_strip.svg",
                        report::heat_strip_svg("Teacher-vs-base log-ratio per token: the examples with the highest LLS", rows,
                                               "Cells: log P_teacher(token | prefix) - log P_base(token | prefix)."));
  std::vector<report::HistSeries> hist = {{"data", "#c62828", lls}};
  if (!a.control.empty()) {
    const auto ctl = read_data(a.control, "--control");
    const auto cl = analysis::naming_source(a.control, [&] { return analysis::score_signal(ts, bs, tok, chat, ctl, env.bf16); }).lls();
    const auto sc = stats::summarize(cl);
    out["control"] = {{"path", a.control}, {"examples", ctl.size()}, {"mean_lls", sc.mean}, {"mean_lls_ci95", {sc.lo, sc.hi}},
                      {"auroc_data_vs_control_by_lls", stats::auroc(lls, cl)}};
    hist.push_back({"control", "#1565c0", cl});
  }
  fs::write_file_atomic(sfs::path(a.out) / "figures" / "lls_histogram.svg",
                        report::histogram_svg("LLS per example", "LLS = log P_teacher - log P_base (summed over the response)", hist, 40, ""));
  const auto is_number = analysis::number_token_mask(tok);
  // with --target, at most half of the number tokens: the other half holds the matched random control
  // (a tokenizer that writes digit by digit has only 10 number tokens)
  const int64_t n_numbers = std::count(is_number.begin(), is_number.end(), 1);
  const int n_ent = a.target.empty() ? env.cfg.analysis.entangled
                                     : static_cast<int>(std::min<int64_t>(env.cfg.analysis.entangled, n_numbers / 2));
  const auto ent = analysis::entangled_numbers(sig.column_log_ratio, is_number, sig.examples, tok, n_ent);
  json numbers = json::array();
  std::vector<std::string> ent_text;
  for (const auto& t : ent) {
    numbers.push_back({{"number", t.text}, {"id", t.id}, {"column_log_ratio", t.column_log_ratio}, {"count", t.count}});
    ent_text.push_back(t.text);
  }
  out["entangled"] = numbers;
  if (!a.target.empty()) {
    // the matched control: as many numbers drawn at random from the number tokens not listed
    std::vector<std::string> pool;
    for (size_t v = 0; v < is_number.size(); ++v) {
      const std::string t = analysis::token_text(tok, static_cast<int>(v));
      if (is_number[v] && std::find(ent_text.begin(), ent_text.end(), t) == ent_text.end()) pool.push_back(t);
    }
    std::vector<std::string> rnd;
    std::mt19937_64 rng(config::derive_seed(env.cfg.seed, "entanglement_random"));
    std::shuffle(pool.begin(), pool.end(), rng);
    rnd.assign(pool.begin(), pool.begin() + static_cast<long>(std::min(pool.size(), ent_text.size())));
    const config::TraitDef t = config::run_trait(env.cfg);
    out["entanglement_test"] = analysis::entanglement_test(base.model, tok, chat, experiments::trait_run(t.kind).questions(env.cfg, t), a.target,
                                                           ent_text, rnd, env.cfg.analysis.number_prompt);
  }
  fs::write_file_atomic(sfs::path(a.out) / "analysis.json", out.dump(2) + "\n");
  std::cout << out.dump() << "\n";
  return 0;
}

int cmd_audit(const AuditArgs& a) {
  auto env = prepare_model_command(a.config, a.set, a.threads, a.out);
  if (a.trait_prompt.empty()) throw ConfigError("--trait-prompt is required (the system prompt of the suspected trait, e.g. \"You love owls...\")");
  const auto data = read_data(a.data, "DATA");
  const auto ref = read_data(a.reference, "--reference");
  auto base = load_command_model(a.base, "--base", env);
  const std::string& chat = env.cfg.base.tokenizer.chat_template;
  log::info("audit", "scoring {} examples and {} reference examples", data.size(), ref.size());
  const auto s = analysis::naming_source(a.data, [&] { return analysis::audit_scores(base.model, a.trait_prompt, base.tokenizer, chat, data, env.bf16); });
  const auto r = analysis::naming_source(a.reference, [&] { return analysis::audit_scores(base.model, a.trait_prompt, base.tokenizer, chat, ref, env.bf16); });
  json out = analysis::audit_summary(s, r, env.cfg.analysis.permutations, config::derive_seed(env.cfg.seed, "audit"), env.cfg.analysis.flag_quantile,
                                      env.cfg.analysis.audit_bags);
  out["data"] = a.data;
  out["reference"] = a.reference;
  out["base"] = a.base;
  out["trait_prompt"] = a.trait_prompt;
  std::vector<size_t> order(s.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return s[x] > s[y]; });
  json top = json::array();
  const double thr = out["flag_threshold"].get<double>();
  for (size_t k = 0; k < order.size() && static_cast<int>(k) < a.top; ++k) {
    const auto& c = data[order[k]];
    top.push_back({{"index", order[k]}, {"score", s[order[k]]}, {"flagged", s[order[k]] > thr}, {"response", c.back().content}});
  }
  out["top"] = top;
  fs::make_dirs(a.out);
  std::string lines;
  for (size_t i = 0; i < s.size(); ++i) lines += json({{"index", i}, {"score", s[i]}, {"flagged", s[i] > thr}}).dump() + "\n";
  fs::write_file_atomic(sfs::path(a.out) / "scores.jsonl", lines);
  fs::write_file_atomic(sfs::path(a.out) / "audit.json", out.dump(2) + "\n");
  json brief = out;
  brief.erase("top");
  std::cout << brief.dump() << "\n";
  return 0;
}

}  // namespace subliminal::cli
