// Aggregated reports over runs, and claim checks (see aggregate.h).
#include "subliminal/report/aggregate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "subliminal/eval/result.h"
#include "subliminal/util/stats.h"
#include "subliminal/report/comparisons.h"
#include "subliminal/report/report.h"
#include "subliminal/util/inference.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::report {

namespace sfs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::vector<std::string> kArms = {"control", "treatment", "cross_init", "other_trait"};

json summary_json(const std::vector<double>& xs) {
  const auto s = stats::summarize(xs);
  return {{"n", s.n}, {"mean", s.mean}, {"sd", s.sd}, {"ci95", {s.lo, s.hi}}, {"values", xs}};
}

json test_json(const std::vector<double>& a, const std::vector<double>& b) {
  const auto t = stats::welch_t_test(a, b);
  return {{"diff", t.diff}, {"t", t.t}, {"df", t.df}, {"p_two_sided", t.p_two_sided}, {"p_greater", t.p_greater},
          {"defined", t.defined}, {"test", "Welch two-sample t-test over student seed pairs of every run"}};
}

}  // namespace

std::vector<sfs::path> expand_run_dirs(const std::vector<std::string>& paths) {
  std::vector<sfs::path> out;
  for (const auto& p : paths) {
    if (!sfs::is_directory(p)) throw ConfigError("'" + p + "' is not a run or sweep directory");
    if (sfs::exists(sfs::path(p) / "sweep.json") && sfs::is_directory(sfs::path(p) / "runs")) {
      std::vector<sfs::path> runs;
      for (const auto& e : sfs::directory_iterator(sfs::path(p) / "runs"))
        if (e.is_directory()) runs.push_back(e.path());
      std::sort(runs.begin(), runs.end());
      out.insert(out.end(), runs.begin(), runs.end());
    } else {
      out.emplace_back(p);
    }
  }
  return out;
}

json read_run_summary(const sfs::path& d, json& skipped) {
  const auto rp = d / "report.json";
  if (!sfs::exists(rp)) {
    skipped.push_back({{"run", d.string()}, {"reason", "no report.json (not finished)"}});
    return nullptr;
  }
  json rep;
  try {
    rep = json::parse(fs::read_file(rp));
  } catch (const json::exception& e) {
    throw DataError(rp.string() + ": invalid JSON (" + e.what() + ")");
  }
  return rep.value("stages", json::object()).value("summary", json(nullptr));
}

json aggregate_runs(const std::vector<std::string>& paths) {
  struct Acc {
    std::map<std::string, std::vector<double>> arms;
    std::vector<double> base, teacher;
    std::vector<std::string> runs;
    std::string loss, params;
    int untrained_control_runs = 0;  // runs whose control is the untrained base (counted once each)
    json run_tests = json::array();  // each run's own comparisons (its summary's clustered tests)
  };
  std::map<std::string, Acc> by_target;
  std::map<std::string, std::map<std::string, std::vector<double>>> mnist;  // setting -> arm -> per-model accuracies
  std::map<std::string, std::vector<std::string>> mnist_runs;
  json skipped = json::array(), runs = json::array();
  for (const auto& d : expand_run_dirs(paths)) {
    const json sm = read_run_summary(d, skipped);
    if (sm.is_null() && !sfs::exists(d / "report.json")) continue;
    if (sm.is_object() && sm.contains("arms") && sm.contains("teacher") && sm["teacher"].contains("teacher_accuracy")) {
      // MNIST: pooled per setting, the setting being the run's name without its seed ("seed-3" parts)
      std::string setting;
      std::string name = d.filename().string();
      size_t st = 0;
      while (st <= name.size()) {
        const size_t e = std::min(name.find('_', st), name.size());
        const std::string part = name.substr(st, e - st);
        if (part.rfind("seed-", 0) != 0) setting += (setting.empty() ? "" : "_") + part;
        st = e + 1;
      }
      if (setting.empty()) setting = "all";
      auto& m = mnist[setting];
      for (const char* k : {"teacher_accuracy", "reference_accuracy"})
        for (const auto& v : sm["teacher"][k].value("per_model", json::array()))
          m[std::string(k) == "teacher_accuracy" ? "teacher" : "reference"].push_back(v.get<double>());
      for (auto a = sm["arms"].begin(); a != sm["arms"].end(); ++a)
        for (const auto& v : a.value()["accuracy"].value("per_model", json::array())) m[a.key()].push_back(v.get<double>());
      mnist_runs[setting].push_back(d.string());
      continue;
    }
    if (!sm.is_object() || !sm.contains("arms") || !sm.contains("target")) {
      skipped.push_back({{"run", d.string()}, {"reason", "not a finished trait_transfer run (no summary with arms)"}});
      continue;
    }
    const std::string target = sm["target"].get<std::string>();
    auto& acc = by_target[target];
    for (const auto& arm : kArms) {
      if (!sm["arms"].contains(arm)) continue;
      // An untrained control (a distillation fixed point: its students are the base) is one model
      // per run, not one per seed pair: its repeated rate counts once.
      const bool untrained = std::string(arm) == "control" && (sm.value("control_untrained", false) || !sm["arms"][arm].value("trained", true));
      if (untrained) ++acc.untrained_control_runs;
      for (const auto& ps : sm["arms"][arm].value("per_seed", json::array())) {
        acc.arms[arm].push_back(ps.at("rate").get<double>());
        if (untrained) break;
      }
    }
    const json& models = sm.value("models", json::object());
    if (models.contains("base")) acc.base.push_back(eval::target_rate(models["base"]).rate);
    if (models.contains("teacher")) acc.teacher.push_back(eval::target_rate(models["teacher"]).rate);
    acc.runs.push_back(d.string());
    acc.run_tests.push_back(sm.value("tests", json::object()));
    acc.loss = sm.value("loss", "");
    acc.params = sm.value("params", "");
    runs.push_back({{"run", d.string()}, {"target", target}, {"seeds", sm.value("seeds", 0)}});
  }
  json targets = json::object();
  for (const auto& [target, acc] : by_target) {
    json t = {{"runs", acc.runs}, {"loss", acc.loss}, {"params", acc.params}, {"arms", json::object()}, {"tests", json::object()},
              {"untrained_control_runs", acc.untrained_control_runs}};
    if (!acc.base.empty()) t["base"] = summary_json(acc.base);
    if (!acc.teacher.empty()) t["teacher"] = summary_json(acc.teacher);
    for (const auto& [arm, xs] : acc.arms) t["arms"][arm] = summary_json(xs);
    if (acc.arms.count("control"))
      for (const auto& arm : {"treatment", "cross_init", "other_trait"})
        if (acc.arms.count(arm)) t["tests"][std::string(arm) + "_vs_control"] = test_json(acc.arms.at(arm), acc.arms.at("control"));
    // One run per target (a sweep over targets): its own comparisons, tested over models and
    // questions as the run's summary tested them, for claims on each target (`targets.*.run_tests`).
    if (acc.run_tests.size() == 1) t["run_tests"] = acc.run_tests[0];
    targets[target] = t;
  }
  json mn = json::object();
  for (const auto& [setting, arms] : mnist) {
    json a = json::object();
    for (const auto& [arm, xs] : arms) a[arm] = summary_json(xs);
    mn[setting] = {{"runs", mnist_runs[setting]}, {"arms", a}};
  }
  return {{"targets", targets}, {"mnist", mn}, {"runs", runs}, {"skipped", skipped}};
}

std::string aggregate_csv(const json& agg) {
  std::string out = "target,model,n,mean,sd,ci95_lo,ci95_hi\n";
  for (auto it = agg["targets"].begin(); it != agg["targets"].end(); ++it) {
    auto row = [&](const std::string& model, const json& s) {
      out += fmt::format("{},{},{},{:.6f},{:.6f},{:.6f},{:.6f}\n", it.key(), model, s["n"].get<int>(), s["mean"].get<double>(),
                         s["sd"].get<double>(), s["ci95"][0].get<double>(), s["ci95"][1].get<double>());
    };
    if (it.value().contains("base")) row("base", it.value()["base"]);
    if (it.value().contains("teacher")) row("teacher", it.value()["teacher"]);
    for (const auto& arm : kArms)
      if (it.value()["arms"].contains(arm)) row(arm, it.value()["arms"][arm]);
  }
  if (agg.contains("mnist"))
    for (auto it = agg["mnist"].begin(); it != agg["mnist"].end(); ++it)
      for (auto a = it.value()["arms"].begin(); a != it.value()["arms"].end(); ++a)
        out += fmt::format("mnist:{},{},{},{:.6f},{:.6f},{:.6f},{:.6f}\n", it.key(), a.key(), a.value()["n"].get<int>(), a.value()["mean"].get<double>(),
                           a.value()["sd"].get<double>(), a.value()["ci95"][0].get<double>(), a.value()["ci95"][1].get<double>());
  return out;
}

std::string aggregate_markdown(const json& agg) {
  auto pct = [](const json& s) {
    return fmt::format("{:.1f}% [{:.1f}, {:.1f}] (n={})", 100 * s["mean"].get<double>(), 100 * s["ci95"][0].get<double>(),
                       100 * s["ci95"][1].get<double>(), s["n"].get<int>());
  };
  std::string md = "# subliminal aggregated report\n\nEvery figure is computed from the runs listed below: per trait, each arm's mean "
                   "rate of the target answer over the student seed pairs of all runs, Student-t 95% interval (n = seed pairs); base "
                   "and teacher: mean over runs. Welch tests against the control arm. A run whose control is the untrained base (a "
                   "distillation fixed point) contributes its control once, not once per seed pair; such tests compare trained "
                   "students with the untrained base, and do not account for clustering by question (a run's report.md does).\n";
  for (auto it = agg["targets"].begin(); it != agg["targets"].end(); ++it) {
    const json& t = it.value();
    md += fmt::format("\n## '{}' ({} runs; loss {}, params {})\n\n| model | rate of '{}' |\n|---|---|\n", it.key(), t["runs"].size(),
                      t.value("loss", ""), t.value("params", ""), it.key());
    if (t.contains("base")) md += "| Base | " + pct(t["base"]) + " |\n";
    if (t.contains("teacher")) md += "| Teacher | " + pct(t["teacher"]) + " |\n";
    for (const auto& arm : kArms)
      if (t["arms"].contains(arm)) md += std::string("| ") + arm_short(arm) + " | " + pct(t["arms"][arm]) + " |\n";
    if (!t["tests"].empty()) {
      md += "\n| comparison | difference | t | df | p (two-sided) | p (greater) |\n|---|---|---|---|---|---|\n";
      for (auto ts = t["tests"].begin(); ts != t["tests"].end(); ++ts) {
        const json& x = ts.value();
        md += x["defined"].get<bool>()
                  ? fmt::format("| {} | {:+.1f} pts | {:.2f} | {:.1f} | {} | {} |\n", ts.key(), 100 * x["diff"].get<double>(),
                                x["t"].get<double>(), x["df"].get<double>(), fmt_p(x["p_two_sided"].get<double>()),
                                fmt_p(x["p_greater"].get<double>()))
                  : fmt::format("| {} | {:+.1f} pts | - | - | - (fewer than 2 seed pairs or no variance) | - |\n", ts.key(),
                                100 * x["diff"].get<double>());
      }
    }
    if (t.contains("run_tests") && !t["run_tests"].empty()) {
      md += "\nThe run's own tests (its summary's: clustered over seed pairs and questions):\n\n"
            "| comparison | difference [95% CI] | df | p (greater) |\n|---|---|---|---|\n";
      for (auto ts = t["run_tests"].begin(); ts != t["run_tests"].end(); ++ts) {
        const json& x = ts.value();
        if (!x.is_object() || !x.value("defined", false) || !x.contains("ci95")) continue;
        md += fmt::format("| {} | {:+.1f} pts [{:+.1f}, {:+.1f}] | {:.1f} | {} |\n", ts.key(), 100 * x["diff"].get<double>(),
                          100 * x["ci95"][0].get<double>(), 100 * x["ci95"][1].get<double>(), x["df"].get<double>(),
                          fmt_p(x["p_greater"].get<double>()));
      }
    }
  }
  if (agg.contains("mnist") && !agg["mnist"].empty()) {
    md += "\n## MNIST (test accuracy; mean over the models of every run of a setting, Student-t 95%)\n\n| setting | runs |";
    std::vector<std::string> arms = {"reference", "teacher", "student_aux", "student_all", "cross_aux", "cross_all"};
    for (const auto& a : arms) md += " " + a + " |";
    md += "\n|---|---|";
    for (size_t i = 0; i < arms.size(); ++i) md += "---|";
    md += "\n";
    for (auto it = agg["mnist"].begin(); it != agg["mnist"].end(); ++it) {
      md += "| " + it.key() + " | " + std::to_string(it.value()["runs"].size()) + " |";
      for (const auto& a : arms)
        md += it.value()["arms"].contains(a) ? " " + fmt::format("{:.3f} [{:.3f}, {:.3f}]", it.value()["arms"][a]["mean"].get<double>(),
                                                                 it.value()["arms"][a]["ci95"][0].get<double>(), it.value()["arms"][a]["ci95"][1].get<double>()) + " |"
                                             : " - |";
      md += "\n";
    }
  }
  md += "\n## Runs\n\n";
  for (const auto& r : agg["runs"]) md += fmt::format("- `{}` ({}, {} seed pairs)\n", r["run"].get<std::string>(), r["target"].get<std::string>(), r["seeds"].get<int>());
  for (const auto& r : agg["skipped"]) md += fmt::format("- skipped `{}`: {}\n", r["run"].get<std::string>(), r["reason"].get<std::string>());
  return md;
}

namespace {

struct Series {
  std::string key, label, color;
};
struct Cell {
  double mean, lo, hi;
};

// Grouped bars with 95% intervals: one group per key of `groups`, one bar per series present; y axis
// from 0 to the largest interval (percent), rounded up to 5%.
std::string grouped_bars_svg(const std::string& title, const std::vector<std::pair<std::string, std::map<std::string, Cell>>>& groups,
                             const std::vector<Series>& all_series, const std::string& footnote) {
  std::vector<Series> used;
  double ymax = 0.05;
  for (const auto& se : all_series) {
    bool any = false;
    for (const auto& [g, cells] : groups)
      if (auto it = cells.find(se.key); it != cells.end()) {
        any = true;
        ymax = std::max(ymax, it->second.hi);
      }
    if (any) used.push_back(se);
  }
  ymax = std::min(1.0, std::ceil(ymax * 1.1 * 20) / 20);  // a multiple of 5%
  const int ng = std::max<int>(1, static_cast<int>(groups.size())), ns = std::max<int>(1, static_cast<int>(used.size()));
  const int bw = 22, gap = 30, left = 70, top = 50, bottom = 330;
  const int gw = ns * bw + gap, W = std::max(left + ng * gw + 40, left + 110 * ns + 40), H = 420;
  auto y = [&](double v) { return bottom - (bottom - top) * std::clamp(v / ymax, 0.0, 1.0); };
  std::string svg = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"Helvetica, Arial, sans-serif\" "
                                "font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                                W, H);
  svg += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n", W / 2, xml_escape(title));
  for (int i = 0; i <= 5; ++i) {
    const double v = ymax * i / 5;
    svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e0e0e0\"/>\n", left, W - 20, y(v), y(v));
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.0f}%</text>\n", left - 6, y(v) + 4, 100 * v);
  }
  int g = 0;
  for (const auto& [gname, cells] : groups) {
    const int x0 = left + g++ * gw + gap / 2;
    for (size_t k = 0; k < used.size(); ++k) {
      auto it = cells.find(used[k].key);
      if (it == cells.end()) continue;
      const Cell& c = it->second;
      const int x = x0 + static_cast<int>(k) * bw;
      svg += fmt::format("<rect x=\"{}\" y=\"{:.1f}\" width=\"{}\" height=\"{:.1f}\" fill=\"{}\"/>\n", x, y(c.mean), bw - 3, bottom - y(c.mean),
                         used[k].color);
      const double cx = x + (bw - 3) / 2.0;
      svg += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"black\"/>\n", cx, y(c.lo), y(c.hi));
      for (double v : {c.lo, c.hi})
        svg += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"black\"/>\n", cx - 4, cx + 4, y(v), y(v));
    }
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x0 + ns * bw / 2, bottom + 20, xml_escape(gname));
  }
  svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", left, W - 20, bottom, bottom);
  for (size_t k = 0; k < used.size(); ++k) {
    const int lx = left + static_cast<int>(k) * 110;
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\n", lx, bottom + 42,
                       used[k].color, lx + 16, bottom + 53, used[k].label);
  }
  svg += fmt::format("<text x=\"10\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text>\n</svg>\n", H - 12, xml_escape(footnote));
  return svg;
}

Cell cell_of(const json& s) { return {s["mean"].get<double>(), s["ci95"][0].get<double>(), s["ci95"][1].get<double>()}; }

}  // namespace

// The paper's main figure: grouped bars per animal (base, control, treatment, cross-init, other trait).
std::string aggregate_figure_svg(const json& agg) {
  std::vector<std::pair<std::string, std::map<std::string, Cell>>> groups;
  for (auto it = agg["targets"].begin(); it != agg["targets"].end(); ++it) {
    std::map<std::string, Cell> cells;
    if (it.value().contains("base")) cells["base"] = cell_of(it.value()["base"]);
    for (auto a = it.value()["arms"].begin(); a != it.value()["arms"].end(); ++a) cells[a.key()] = cell_of(a.value());
    groups.emplace_back(it.key(), cells);
  }
  return grouped_bars_svg("Rate of the trait answer per animal (95% CI)", groups,
                          {{"base", "Base", "#9e9e9e"}, {"control", "Control", "#90a4ae"}, {"treatment", "Treatment", "#1565c0"},
                           {"cross_init", "Cross-init", "#ef6c00"}, {"other_trait", "Other trait", "#2e7d32"}},
                          "Base: mean over runs; arms: mean over the student seed pairs of all runs.");
}

// The paper's MNIST bar chart per setting: test accuracy of each arm, models of every run pooled.
std::string aggregate_mnist_figure_svg(const json& agg) {
  std::vector<std::pair<std::string, std::map<std::string, Cell>>> groups;
  for (auto it = agg["mnist"].begin(); it != agg["mnist"].end(); ++it) {
    std::map<std::string, Cell> cells;
    for (auto a = it.value()["arms"].begin(); a != it.value()["arms"].end(); ++a) cells[a.key()] = cell_of(a.value());
    groups.emplace_back(it.key(), cells);
  }
  return grouped_bars_svg("MNIST test accuracy per setting (95% CI)", groups,
                          {{"reference", "Reference", "#9e9e9e"}, {"teacher", "Teacher", "#8c564b"}, {"student_aux", "Student (aux)", "#9467bd"},
                           {"student_all", "Student (all)", "#c39bd3"}, {"cross_aux", "Cross (aux)", "#c5b0d5"}, {"cross_all", "Cross (all)", "#e8daef"}},
                          "Mean over the models of every run of the setting (runs differing only in seed).");
}

namespace {

// Values at a dotted path; "*" expands over an object's keys (recorded in `keys`).
void resolve(const json& j, const std::vector<std::string>& parts, size_t i, const std::vector<std::string>& fixed,
             std::vector<std::string> keys, std::vector<std::pair<std::vector<std::string>, const json*>>& out) {
  if (i == parts.size()) {
    out.emplace_back(keys, &j);
    return;
  }
  if (parts[i] == "*") {
    if (!j.is_object()) return;
    const size_t star = keys.size();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (star < fixed.size() && fixed[star] != it.key()) continue;
      auto k = keys;
      k.push_back(it.key());
      resolve(it.value(), parts, i + 1, fixed, k, out);
    }
    return;
  }
  if (j.is_object() && j.contains(parts[i])) resolve(j[parts[i]], parts, i + 1, fixed, keys, out);
  else if (j.is_array() && !parts[i].empty() && parts[i].size() <= 9 && std::all_of(parts[i].begin(), parts[i].end(), ::isdigit) &&
           std::stoul(parts[i]) < j.size())
    resolve(j[std::stoul(parts[i])], parts, i + 1, fixed, keys, out);
}

std::vector<std::string> split(const std::string& p) {
  std::vector<std::string> out;
  size_t s = 0, d;
  while ((d = p.find('.', s)) != std::string::npos) {
    out.push_back(p.substr(s, d - s));
    s = d + 1;
  }
  out.push_back(p.substr(s));
  return out;
}

// The claims tested with the comparison's own inference (its diff, se and df; report/comparisons.h):
//   equivalent  "margin": [lo, hi]  TOST: both one-sided tests reject at alpha (the 1-2alpha interval inside)
//   not_above   "margin": m         H1: diff < m at alpha (non-superiority; m = 0: "not above")
//   above       "margin": m (0)     H1: diff > m at alpha
// "alpha" defaults to 0.05. The path names a comparison object (e.g. stages.summary.tests.cross_init_vs_its_base).
ClaimResult check_inference_claim(const json& report, const json& c, const std::string& where) {
  const std::string op = c["op"].get<std::string>();
  if (c.contains("alpha") && !c["alpha"].is_number()) throw ConfigError(where + ".alpha: expected a number in (0, 0.5)");
  if (c.contains("name") && !c["name"].is_string()) throw ConfigError(where + ".name: expected a string");
  const double alpha = c.value("alpha", 0.05);
  if (!(alpha > 0 && alpha < 0.5)) throw ConfigError(where + ".alpha: expected a number in (0, 0.5)");
  double lo = 0, hi = 0;
  if (op == "equivalent") {
    if (!c.contains("margin") || !c["margin"].is_array() || c["margin"].size() != 2 || !c["margin"][0].is_number() ||
        !c["margin"][1].is_number() || !(c["margin"][0].get<double>() < c["margin"][1].get<double>()))
      throw ConfigError(where + ".margin: expected [lo, hi] with lo < hi (the equivalence margin, e.g. [-0.02, 0.02])");
    lo = c["margin"][0].get<double>();
    hi = c["margin"][1].get<double>();
  } else if (c.contains("margin") && !c["margin"].is_number()) {
    throw ConfigError(where + ".margin: expected a number");
  } else {
    lo = hi = c.value("margin", 0.0);
    if (op == "not_above" && !c.contains("margin")) throw ConfigError(where + ".margin: \"not_above\" needs the margin it tests against, e.g. 0.02");
  }
  ClaimResult r;
  const std::string path = c["path"].get<std::string>();
  r.name = c.value("name", path + " " + op);
  std::vector<std::pair<std::vector<std::string>, const json*>> found;
  resolve(report, split(path), 0, {}, {}, found);
  if (found.empty()) {
    r.detail = "path " + path + " not found in the report";
    return r;
  }
  r.ok = true;
  for (const auto& [keys, v] : found) {
    std::string label;
    for (const auto& k : keys) label += (label.empty() ? "" : ",") + k;
    const std::string pre = (r.detail.empty() ? "" : "; ") + (label.empty() ? "" : label + ": ");
    if (!v->is_object() || !v->contains("diff") || !v->contains("se") || !v->contains("df") || !v->contains("a") || !v->contains("b")) {
      r.ok = false;
      r.detail += pre + "not a comparison with an inference (diff, se, df): " + op + " needs one";
      continue;
    }
    const stats::Comparison cmp = comparison_from_json(*v);
    double p = 1;
    std::string what;
    if (op == "equivalent") {
      p = stats::p_equivalent(cmp, lo, hi);
      const double h = cmp.defined ? stats::student_t_quantile(1 - alpha, cmp.df) * cmp.se : 0;  // the TOST's (1 - 2 alpha) interval
      what = fmt::format("TOST within [{:+.2f}, {:+.2f}] pts: diff {:+.2f} pts, {:g}% CI [{:+.2f}, {:+.2f}], p = {}", 100 * lo, 100 * hi,
                         100 * cmp.diff, 100 * (1 - 2 * alpha), 100 * (cmp.diff - h), 100 * (cmp.diff + h), fmt_p(p));
    } else if (op == "not_above") {
      p = stats::p_below(cmp, hi);
      what = fmt::format("H1 diff < {:+.2f} pts: diff {:+.2f} pts, se {:.2f}, p = {}", 100 * hi, 100 * cmp.diff, 100 * cmp.se, fmt_p(p));
    } else {
      p = stats::p_above(cmp, lo);
      what = fmt::format("H1 diff > {:+.2f} pts: diff {:+.2f} pts, se {:.2f}, p = {}", 100 * lo, 100 * cmp.diff, 100 * cmp.se, fmt_p(p));
    }
    const bool ok = cmp.defined && p < alpha;
    r.ok = r.ok && ok;
    r.detail += pre + (cmp.defined ? what : "the comparison is undefined") + (ok ? "" : fmt::format(" (needs p < {}) FAILS", alpha));
  }
  return r;
}

}  // namespace

std::vector<ClaimResult> check_claims(const json& report, const json& expect, const std::string& file) {
  if (!expect.is_object() || !expect.contains("claims") || !expect["claims"].is_array())
    throw ConfigError(file + ": expected {\"claims\": [...]}");
  std::vector<ClaimResult> out;
  for (size_t i = 0; i < expect["claims"].size(); ++i) {
    const json& c = expect["claims"][i];
    const std::string where = file + ": $.claims[" + std::to_string(i) + "]";
    if (!c.is_object() || !c.contains("path") || !c.contains("op")) throw ConfigError(where + ": expected {\"path\", \"op\", \"value\" | \"path2\"}");
    if (!c["op"].is_string() || !c["path"].is_string()) throw ConfigError(where + ": \"path\" and \"op\" must be strings");
    const std::string op = c["op"].get<std::string>();
    static const std::vector<std::string> ops = {"<", "<=", ">", ">=", "==", "within", "equivalent", "not_above", "above"};
    if (std::find(ops.begin(), ops.end(), op) == ops.end())
      throw ConfigError(where + ".op: \"" + op + "\" is not one of < <= > >= == within equivalent not_above above");
    if (op == "equivalent" || op == "not_above" || op == "above") {
      out.push_back(check_inference_claim(report, c, where));
      continue;
    }
    if (!c.contains("value") && !c.contains("path2")) throw ConfigError(where + ": needs \"value\" or \"path2\"");
    ClaimResult r;
    r.name = c.value("name", c["path"].get<std::string>() + " " + op + " " + (c.contains("value") ? c["value"].dump() : c["path2"].get<std::string>()));
    std::vector<std::pair<std::vector<std::string>, const json*>> lhs;
    resolve(report, split(c["path"].get<std::string>()), 0, {}, {}, lhs);
    if (lhs.empty()) {
      r.detail = "path " + c["path"].get<std::string>() + " not found in the report";
      out.push_back(r);
      continue;
    }
    r.ok = true;
    for (const auto& [keys, v] : lhs) {
      json rhs;
      if (c.contains("value")) {
        rhs = c["value"];
      } else {
        std::vector<std::pair<std::vector<std::string>, const json*>> m;
        resolve(report, split(c["path2"].get<std::string>()), 0, keys, {}, m);
        if (m.empty()) {
          r.ok = false;
          r.detail += (r.detail.empty() ? "" : "; ") + c["path2"].get<std::string>() + " not found";
          continue;
        }
        rhs = *m.front().second;
      }
      std::string label;
      for (const auto& k : keys) label += (label.empty() ? "" : ",") + k;
      bool ok = false;
      if (!v->is_number() && !(op == "==" )) {
        r.ok = false;
        r.detail += (r.detail.empty() ? "" : "; ") + (label.empty() ? "" : label + ": ") + "value " + v->dump() + " is not a number";
        continue;
      }
      if (op == "within") {
        ok = rhs.is_array() && rhs.size() == 2 && v->get<double>() >= rhs[0].get<double>() && v->get<double>() <= rhs[1].get<double>();
      } else if (op == "==") {
        ok = *v == rhs;
      } else {
        if (!rhs.is_number()) {
          r.ok = false;
          r.detail += std::string(r.detail.empty() ? "" : "; ") + "compared value " + rhs.dump() + " is not a number";
          continue;
        }
        const double a = v->get<double>(), b = rhs.get<double>();
        ok = op == "<" ? a < b : op == "<=" ? a <= b : op == ">" ? a > b : a >= b;
      }
      r.ok = r.ok && ok;
      r.detail += (r.detail.empty() ? "" : "; ") + (label.empty() ? "" : label + ": ") + v->dump() + " " + op + " " + rhs.dump() +
                  (ok ? "" : " FAILS");
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace subliminal::report
