// The dose-response study (see dose.h).
#include "subliminal/report/dose.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "subliminal/eval/result.h"
#include "subliminal/util/stats.h"
#include "subliminal/report/aggregate.h"
#include "subliminal/report/report.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::report {

namespace sfs = std::filesystem;
using json = nlohmann::json;

namespace {

// The diagnostics correlated with transfer, in the order of the tables.
const std::vector<std::pair<std::string, std::string>> kDiagnostics = {
    {"fidelity", "held-out imitation fidelity"},
    {"heldout_kl_final", "held-out KL(source || student), after"},
    {"coverage_first", "coverage, first step"},
    {"coverage_final", "coverage, final"},
    {"data_kl", "KL(source || base) of the data, per token"},
    {"data_lls", "LLS of the data, per completion"},
    {"unique_prompts", "unique prompts trained on (kept)"},
    {"teacher_lift", "teacher's own lift over its base (pts)"},
};

double num(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
}
json num_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

json dose_response(const std::vector<std::string>& paths) {
  json points = json::array(), runs = json::array(), skipped = json::array();
  for (const auto& d : expand_run_dirs(paths)) {
    const json sm = read_run_summary(d, skipped);
    if (sm.is_null() && !sfs::exists(d / "report.json")) continue;
    if (!sm.is_object() || !sm.contains("arms") || !sm.contains("target") || !sm.contains("models") || !sm["models"].contains("base")) {
      skipped.push_back({{"run", d.string()}, {"reason", "not a finished trait_transfer run"}});
      continue;
    }
    const json& models = sm["models"];
    const json datasets = sm.value("datasets", json::object());
    const std::string target = sm["target"].get<std::string>();
    auto rate_of = [&](const char* m, const std::string& item) {
      if (!models.contains(m)) return std::nan("");
      if (item == target) return eval::target_rate(models[m]).rate;
      return models[m].value("distribution", json::object()).value(item, std::nan(""));
    };
    int n = 0;
    for (auto a = sm["arms"].begin(); a != sm["arms"].end(); ++a) {
      const std::string arm = a.key();
      if (arm == "control") continue;  // distilling the base into itself: no dose, nothing to transfer
      const bool other = arm == "other_trait";
      const std::string item = other ? a.value().value("other_target_rate", json::object()).value("target", std::string()) : target;
      if (item.empty()) continue;
      const char* init = arm == "cross_init" ? "base_cross" : "base";
      const char* teacher = other ? "teacher_other" : "teacher";
      const char* source = other ? "other" : "teacher";
      const json per_seed = a.value().value("per_seed", json::array());
      for (size_t k = 0; k < per_seed.size(); ++k) {
        const json& ps = per_seed[k];
        const int pair = ps.value("seed_pair", static_cast<int>(k) + 1);
        const double rate = other ? a.value()["other_target_rate"]["per_seed"][k].get<double>() : ps["rate"].get<double>();
        const double init_rate = rate_of(init, item);
        const json ds = datasets.value(std::string(source) + "_s" + std::to_string(pair), json::object());
        const json div = ds.value("divergence_from_base", json::object());
        json p = {{"run", d.string()}, {"target", item}, {"arm", arm}, {"seed_pair", pair}, {"same_init", arm != "cross_init"},
                  {"rate", rate}, {"init_rate", num_or_null(init_rate)}, {"transfer", num_or_null(100 * (rate - init_rate))}};
        p["fidelity"] = num_or_null(num(ps, "fidelity"));
        p["heldout_kl_final"] = num_or_null(num(ps, "heldout_kl_final"));
        p["coverage_first"] = num_or_null(num(ps, "coverage_first"));
        p["coverage_final"] = num_or_null(num(ps, "coverage_final"));
        p["data_kl"] = num_or_null(num(div, "mean_kl"));
        p["data_lls"] = num_or_null(num(div, "mean_lls"));
        p["unique_prompts"] = num_or_null(num(ds, "kept"));
        p["teacher_lift"] = num_or_null(100 * (rate_of(teacher, item) - rate_of("base", item)));
        points.push_back(p);
        ++n;
      }
    }
    runs.push_back({{"run", d.string()}, {"target", target}, {"students", n}});
  }
  json corr = json::object();
  for (const auto& [group, pick] : std::vector<std::pair<std::string, int>>{{"same_init", 1}, {"cross_init", 0}, {"all", -1}}) {
    json g = json::object();
    for (const auto& [key, label] : kDiagnostics) {
      std::vector<double> x, y;
      for (const auto& p : points) {
        if (pick >= 0 && p["same_init"].get<bool>() != (pick == 1)) continue;
        x.push_back(p[key].is_number() ? p[key].get<double>() : std::nan(""));
        y.push_back(p["transfer"].is_number() ? p["transfer"].get<double>() : std::nan(""));
      }
      const auto c = stats::correlate(x, y);
      g[key] = {{"n", c.n}, {"defined", c.defined}, {"pearson", num_or_null(c.defined ? c.pearson : std::nan(""))},
                {"spearman", num_or_null(c.defined ? c.spearman : std::nan(""))}, {"p_spearman", c.defined ? c.p_spearman : 1.0}};
    }
    corr[group] = g;
  }
  // The best predictor: the diagnostic with the largest |Spearman| over the same-init students.
  std::string best;
  double best_abs = -1;
  for (const auto& [key, label] : kDiagnostics) {
    const json& c = corr["same_init"][key];
    if (c["defined"].get<bool>() && std::abs(c["spearman"].get<double>()) > best_abs) best = key, best_abs = std::abs(c["spearman"].get<double>());
  }
  return {{"points", points}, {"correlations", corr}, {"best_predictor_same_init", best.empty() ? json(nullptr) : json(best)},
          {"runs", runs}, {"skipped", skipped}};
}

std::string dose_response_csv(const json& dr) {
  std::string out = "run,target,arm,seed_pair,same_init,rate,init_rate,transfer_pts";
  for (const auto& [key, label] : kDiagnostics) out += "," + key;
  out += "\n";
  auto cell = [](const json& v) { return v.is_number() ? fmt::format("{:.6g}", v.get<double>()) : std::string(); };
  for (const auto& p : dr["points"]) {
    out += fmt::format("{},{},{},{},{},{},{},{}", csv_field(p["run"].get<std::string>()), p["target"].get<std::string>(), p["arm"].get<std::string>(),
                       p["seed_pair"].get<int>(), p["same_init"].get<bool>() ? 1 : 0, cell(p["rate"]), cell(p["init_rate"]), cell(p["transfer"]));
    for (const auto& [key, label] : kDiagnostics) out += "," + cell(p[key]);
    out += "\n";
  }
  return out;
}

std::string dose_response_markdown(const json& dr) {
  std::string md = fmt::format(
      "# Dose-response: what predicts trait transfer\n\nOne point per trained student ({} students of {} runs): transfer = the "
      "student's rate of its source teacher's item minus its own init's rate (points; other-trait students on the other teacher's "
      "item; control students, distilled from the base itself, left out). Correlations over the students with both values; p: "
      "Spearman's, two-sided.\n\n| diagnostic | same-init: n | Pearson | Spearman | p | cross-init: n | Spearman | all: n | Spearman |\n"
      "|---|---|---|---|---|---|---|---|---|\n",
      dr["points"].size(), dr["runs"].size());
  auto f = [](const json& c, const char* k) { return c["defined"].get<bool>() ? fmt::format("{:+.2f}", c[k].get<double>()) : std::string("–"); };
  for (const auto& [key, label] : kDiagnostics) {
    const json& s = dr["correlations"]["same_init"][key];
    const json& x = dr["correlations"]["cross_init"][key];
    const json& a = dr["correlations"]["all"][key];
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", label, s["n"].get<int>(), f(s, "pearson"), f(s, "spearman"),
                      s["defined"].get<bool>() ? fmt_p(s["p_spearman"].get<double>()) : "–", x["n"].get<int>(), f(x, "spearman"),
                      a["n"].get<int>(), f(a, "spearman"));
  }
  if (dr["best_predictor_same_init"].is_string())
    md += "\nBest predictor over the same-init students (largest |Spearman|): **" + dr["best_predictor_same_init"].get<std::string>() + "**.\n";
  md += "\n## Students\n\n| run | item | arm | seed pair | transfer (pts) | fidelity | coverage, final | data KL | unique prompts | teacher lift |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n";
  auto g = [](const json& v, const char* spec) { return v.is_number() ? fmt::format(fmt::runtime(spec), v.get<double>()) : std::string("–"); };
  for (const auto& p : dr["points"])
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", sfs::path(p["run"].get<std::string>()).filename().string(),
                      p["target"].get<std::string>(), p["arm"].get<std::string>(), p["seed_pair"].get<int>(), g(p["transfer"], "{:+.1f}"),
                      g(p["fidelity"], "{:.3f}"), g(p["coverage_final"], "{:.3f}"), g(p["data_kl"], "{:.4f}"), g(p["unique_prompts"], "{:.0f}"),
                      g(p["teacher_lift"], "{:+.1f}"));
  for (const auto& r : dr["skipped"]) md += fmt::format("\n- skipped `{}`: {}", r["run"].get<std::string>(), r["reason"].get<std::string>());
  return md + "\n";
}

std::string dose_response_svg(const json& dr) {
  struct Panel {
    std::string key, xlabel;
    bool logx;
  };
  const std::vector<Panel> panels = {{"fidelity", "held-out imitation fidelity (share of KL removed)", false},
                                     {"unique_prompts", "unique prompts trained on (log scale)", true},
                                     {"data_kl", "teacher divergence: KL(source || base) per token", false},
                                     {"coverage_final", "coverage: cos(update, teacher displacement)", false}};
  const int pw = 380, ph = 270, ml = 60, mt = 40, W = 2 * (pw + ml) + 30, H = 2 * (ph + mt + 45) + 50;
  std::string svg = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"Helvetica, Arial, sans-serif\" "
                                "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                                W, H);
  svg += fmt::format("<text x=\"{}\" y=\"22\" font-size=\"16\" text-anchor=\"middle\">Trait transfer (student − its init, pts) against each diagnostic; "
                     "one dot per student</text>\n",
                     W / 2);
  double ylo = 0, yhi = 1;
  for (const auto& p : dr["points"])
    if (p["transfer"].is_number()) ylo = std::min(ylo, p["transfer"].get<double>()), yhi = std::max(yhi, p["transfer"].get<double>());
  ylo = std::floor(ylo / 5) * 5, yhi = std::ceil(yhi / 5) * 5;
  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const auto& pn = panels[pi];
    const int ox = 20 + ml + static_cast<int>(pi % 2) * (pw + ml + 10), oy = 40 + mt + static_cast<int>(pi / 2) * (ph + mt + 45);
    auto tx = [&](double v) { return pn.logx ? std::log10(std::max(v, 1e-12)) : v; };
    double xlo = INFINITY, xhi = -INFINITY;
    for (const auto& p : dr["points"])
      if (p[pn.key].is_number() && p["transfer"].is_number()) xlo = std::min(xlo, tx(p[pn.key].get<double>())), xhi = std::max(xhi, tx(p[pn.key].get<double>()));
    const json& c = dr["correlations"]["same_init"][pn.key];
    const std::string rho = c["defined"].get<bool>() ? fmt::format("same-init Spearman ρ = {:+.2f} (n = {}, p = {})", c["spearman"].get<double>(),
                                                                   c["n"].get<int>(), fmt_p(c["p_spearman"].get<double>()))
                                                     : std::string("too few points for a correlation");
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n", ox + pw / 2, oy - 10, xml_escape(rho));
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", ox, oy, pw, ph);
    if (!std::isfinite(xlo)) continue;
    if (xhi - xlo < 1e-12) xlo -= 0.5, xhi += 0.5;
    const double pad = 0.05 * (xhi - xlo);
    xlo -= pad, xhi += pad;
    auto X = [&](double v) { return ox + pw * (tx(v) - xlo) / (xhi - xlo); };
    auto Xt = [&](double t) { return ox + pw * (t - xlo) / (xhi - xlo); };
    auto Y = [&](double v) { return oy + ph * (1 - (v - ylo) / (yhi - ylo)); };
    for (int i = 0; i <= 4; ++i) {
      const double yv = ylo + (yhi - ylo) * i / 4, xt = xlo + (xhi - xlo) * i / 4;
      svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eee\"/>\n", ox, ox + pw, Y(yv), Y(yv));
      svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.0f}</text>\n", ox - 5, Y(yv) + 4, yv);
      const double xv = pn.logx ? std::pow(10.0, xt) : xt;
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", Xt(xt), oy + ph + 15,
                         pn.logx ? fmt::format("{:.0f}", xv) : fmt::format("{:.3g}", xv));
    }
    if (ylo < 0 && yhi > 0)
      svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>\n", ox, ox + pw, Y(0), Y(0));
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", ox + pw / 2, oy + ph + 32, xml_escape(pn.xlabel));
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">transfer (pts)</text>\n", ox - 38,
                       oy + ph / 2, ox - 38, oy + ph / 2);
    for (const auto& p : dr["points"]) {
      if (!p[pn.key].is_number() || !p["transfer"].is_number()) continue;
      const bool same = p["same_init"].get<bool>();
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\" fill-opacity=\"0.75\"><title>{} {} s{}</title></circle>\n",
                         X(p[pn.key].get<double>()), Y(p["transfer"].get<double>()), same ? "#1565c0" : "#ef6c00",
                         xml_escape(sfs::path(p["run"].get<std::string>()).filename().string()), p["arm"].get<std::string>(), p["seed_pair"].get<int>());
    }
  }
  svg += fmt::format("<circle cx=\"30\" cy=\"{}\" r=\"5\" fill=\"#1565c0\"/><text x=\"40\" y=\"{}\">same-init students (treatment, other-trait)</text>\n",
                     H - 16, H - 12);
  svg += fmt::format("<circle cx=\"360\" cy=\"{}\" r=\"5\" fill=\"#ef6c00\"/><text x=\"370\" y=\"{}\">cross-init students</text>\n</svg>\n", H - 16, H - 12);
  return svg;
}

}  // namespace subliminal::report
