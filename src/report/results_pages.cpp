// Results pages from committed run reports (see results_pages.h).
#include "subliminal/report/results_pages.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <vector>

#include "subliminal/config/json_io.h"
#include "subliminal/report/report.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::report {

using json = nlohmann::json;
namespace stdfs = std::filesystem;

namespace {

// A table cell: '|' escaped, newlines folded.
std::string cell(std::string s) {
  std::string o;
  for (char c : s) {
    if (c == '|') o += "\\|";
    else if (c == '\n') o += ' ';
    else o += c;
  }
  return o;
}

std::string pct(double x) { return fmt::format("{:.1f}%", 100 * x); }
std::string pct_ci(const json& ci) {
  if (!ci.is_array() || ci.size() != 2 || !ci[0].is_number()) return "";
  return fmt::format(" [{:.1f}, {:.1f}]", 100 * ci[0].get<double>(), 100 * ci[1].get<double>());
}
std::string pts(double x) { return fmt::format("{:+.1f}", 100 * x); }

// Fields the index requires, with their JSON path in the error.
std::string need_string(const json& j, const char* key, const std::string& file, const std::string& path) {
  if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty())
    config::fail(file, path + "." + key, "expected a non-empty string");
  return j[key].get<std::string>();
}

std::string paragraphs(const json& j, const std::string& file, const std::string& path) {
  if (j.is_null()) return "";
  if (!j.is_array()) config::fail(file, path, "expected an array of paragraphs (strings)");
  std::string out;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string()) config::fail(file, path + "[" + std::to_string(i) + "]", "expected a string");
    out += j[i].get<std::string>() + "\n\n";
  }
  return out;
}

json read_json(const stdfs::path& p) {
  try {
    return json::parse(fs::read_file(p));
  } catch (const json::parse_error& e) {
    throw Error(p.string() + ": invalid JSON: " + e.what());
  }
}

// A model's target rate and interval as the run's own report gives them (report::model_rate).
std::string model_rate_text(const json& m, std::string* how = nullptr) {
  const eval::Rate r = model_rate(m, how);
  return fmt::format("{:.1f}% [{:.1f}, {:.1f}]", 100 * r.rate, 100 * r.lo, 100 * r.hi);
}

std::string targets_list(const json& sm) {
  std::string t;
  for (const auto& x : sm.value("targets", json::array())) t += (t.empty() ? "" : ", ") + x.get<std::string>();
  return t;
}

std::string rates_table(const json& sm) {
  std::string o = "| model or arm | models | trained | rate [95% interval] | interval |\n|---|---|---|---|---|\n";
  const json& models = sm["models"];
  for (const char* m : {"base", "teacher", "base_cross", "teacher_other", "teacher_control"}) {
    if (!models.contains(m)) continue;
    std::string how;
    const std::string rate = model_rate_text(models[m], &how);
    const std::string label = std::string(m) == "base_cross"        ? "cross-init base"
                              : std::string(m) == "teacher_other"   ? "other-trait teacher"
                              : std::string(m) == "teacher_control" ? "control teacher"
                                                                    : m;
    const json& q = models[m].value("target_rate_over_questions", json::object());
    const int n = q.value("unit", std::string()) == "replicates" ? q.value("models", 1) : 1;  // pooled: one per replicate
    o += fmt::format("| {} | {} | {} | {} | {} |\n", label, n, std::string(m).rfind("teacher", 0) == 0 ? "yes" : "no (the base)", rate, how);
  }
  std::vector<std::string> order;  // treatment and control first, then the other arms as the summary has them
  for (const char* k : {"treatment", "control"})
    if (sm["arms"].contains(k)) order.push_back(k);
  for (auto it = sm["arms"].begin(); it != sm["arms"].end(); ++it)
    if (std::find(order.begin(), order.end(), it.key()) == order.end()) order.push_back(it.key());
  for (const auto& arm_name : order) {
    const json& a = sm["arms"][arm_name];
    const int n = a.value("models", a.value("n", 0));
    const bool trained = a.value("trained", true);
    std::string how = a.contains("rate") && a["rate"].is_object() ? a["rate"].value("interval", std::string()) : "Student-t over seed pairs";
    if (a.contains("rate") && a["rate"].is_object() && a["rate"].contains("df")) how += fmt::format(", df {:.1f}", a["rate"]["df"].get<double>());
    std::string name = arm_name;
    if (!trained) name += " (the untrained base)";
    o += fmt::format("| {} | {} | {} | {} | {} |\n", cell(name), n, trained ? "yes" : "no", pct(a["mean"].get<double>()) + pct_ci(a["ci95"]), cell(how));
  }
  return o;
}

std::string tests_table(const json& sm) {
  std::vector<std::pair<std::string, json>> rows;
  for (auto it = sm["tests"].begin(); it != sm["tests"].end(); ++it) rows.push_back({it.key(), it.value()});
  if (sm.contains("specificity") && sm["specificity"].is_object())
    for (auto it = sm["specificity"].begin(); it != sm["specificity"].end(); ++it)
      if (it.value().is_object() && it.value().contains("other_target_vs_control")) {
        json t = it.value()["other_target_vs_control"];
        if (!t.contains("compares")) t["compares"] = "specificity: " + it.key() + "'s " + sm.value("other_target", std::string("other")) + " rate vs control's";
        else t["compares"] = "specificity ('" + sm.value("other_target", std::string()) + "' rate): " + t["compares"].get<std::string>();
        rows.push_back({it.key(), t});
      }
  std::set<std::string> tests;  // one test for every row: said once, under the table
  for (const auto& [k, t] : rows)
    if (t.is_object() && t.value("defined", true)) tests.insert(t.value("test", std::string()));
  const bool one_test = tests.size() == 1;
  std::string o = std::string("| comparison | difference, points [95% interval] | df | p (greater) | p (two-sided) |") + (one_test ? "" : " test |") +
                  "\n|---|---|---|---|---|" + (one_test ? "" : "---|") + "\n";
  auto row = [&](const std::string& name, const json& t) {
    if (!t.is_object() || !t.value("defined", true)) return;
    const std::string what = t.contains("compares") ? t["compares"].get<std::string>() : name;
    std::string ci;
    if (t.contains("ci95") && t["ci95"].is_array()) ci = fmt::format(" [{}, {}]", pts(t["ci95"][0].get<double>()), pts(t["ci95"][1].get<double>()));
    o += fmt::format("| {} | {}{} | {} | {} | {} |{}\n", cell(what), pts(t.value("diff", 0.0)), ci,
                     t.contains("df") ? fmt::format("{:.1f}", t["df"].get<double>()) : "",
                     t.contains("p_greater") ? fmt_p(t["p_greater"].get<double>()) : "",
                     t.contains("p_two_sided") ? fmt_p(t["p_two_sided"].get<double>()) : "",
                     one_test ? "" : " " + cell(t.value("test", std::string())) + " |");
  };
  for (const auto& [k, t] : rows) row(k, t);
  if (one_test) o += "\nTest: " + *tests.begin() + ".\n";
  return o;
}

std::string claims_table(const json& rep) {
  if (!rep.contains("claims") || !rep["claims"].is_object()) return "No claim file was registered with this run.\n";
  const json& c = rep["claims"];
  int pre = 0;
  for (const auto& x : c["claims"]) pre += x.value("pre_registered", false);
  std::string o = fmt::format("Claim file `{}`: {} of {} hold; {} of {} pre-registered.\n\n", c.value("source", std::string()),
                              c.value("held", 0), c.value("total", 0), pre, c.value("total", 0));
  o += "| claim | verdict | value | registration |\n|---|---|---|---|\n";
  for (const auto& x : c["claims"])
    o += fmt::format("| {} | {} | {} | {} |\n", cell(x.value("name", std::string())), x.value("holds", false) ? "holds" : "**fails**",
                     cell(x.value("detail", std::string())), cell(x.value("status", std::string())));
  return o;
}

}  // namespace

std::map<stdfs::path, std::string> render_results_pages(const stdfs::path& index_file) {
  const std::string file = index_file.string();
  const json idx = config::parse_json_text(fs::read_file(index_file), file);
  const stdfs::path dir = index_file.parent_path();
  if (!idx.is_object() || !idx.contains("pages") || !idx["pages"].is_array()) config::fail(file, "$.pages", "expected an array of pages");
  std::map<stdfs::path, std::string> out;
  struct Rendered {
    json sm, rep;
    std::string date, machine, libtorch, page;
  };
  std::map<std::string, Rendered> by_id;
  for (size_t pi = 0; pi < idx["pages"].size(); ++pi) {
    const json& pg = idx["pages"][pi];
    const std::string pp = "$.pages[" + std::to_string(pi) + "]";
    const std::string page_file = need_string(pg, "file", file, pp);
    if (page_file.find('/') != std::string::npos || stdfs::path(page_file).extension() != ".md")
      config::fail(file, pp + ".file", "expected a plain .md file name, got \"" + page_file + "\"");
    std::string md = "<!-- Rendered by `subliminal results docs/results/index.json` from the artifacts each section links. Edit index.json, "
                     "not this page. -->\n\n";
    md += "# " + need_string(pg, "title", file, pp) + "\n\n" + paragraphs(pg.value("intro", json()), file, pp + ".intro");
    const json entries = pg.value("entries", json::array());
    for (size_t ei = 0; ei < entries.size(); ++ei) {
      const json& e = entries[ei];
      const std::string ep = pp + ".entries[" + std::to_string(ei) + "]";
      const std::string id = need_string(e, "id", file, ep);
      const std::string run_rel = need_string(e, "run", file, ep);
      const stdfs::path run = (dir / run_rel).lexically_normal();
      if (!stdfs::exists(run / "report.json")) config::fail(file, ep + ".run", (run / "report.json").string() + " does not exist");
      const json rep = read_json(run / "report.json");
      const json man = stdfs::exists(run / "manifest.json") ? read_json(run / "manifest.json") : json();
      const json sm = rep.contains("stages") ? rep["stages"].value("summary", json()) : json();
      if (!sm.is_object() || !sm.contains("arms") || !sm.contains("models") || !sm.contains("tests"))
        throw Error((run / "report.json").string() + ": not a trait run's report (no summary with arms, models and tests)",
                    "results pages render trait_transfer runs");
      md += "## " + need_string(e, "title", file, ep) + "\n\n";
      // where, when, with what: from the manifest where the run has one, else the index says it
      std::string date = e.value("date", std::string());
      if (date.empty() && man.is_object()) date = man.value("started", std::string()).substr(0, 10) + " (the manifest's last start)";
      if (date.empty()) config::fail(file, ep + ".date", "the run has no manifest.json: the index must give its date");
      std::string machine = need_string(e, "machine", file, ep);
      if (man.is_object() && man.contains("host"))
        machine += fmt::format("; {} hardware threads; bf16 matmul hardware: {}", man["host"].value("hardware_concurrency", 0),
                               man.value("bf16_matmul_hardware", false) ? "yes" : "no");
      std::string libtorch = man.is_object() ? man.value("libtorch_version", std::string()) : "";
      if (!libtorch.empty()) libtorch += " (" + man.value("libtorch_source", std::string("?")) + ")";
      else libtorch = rep.value("libtorch", std::string("not recorded"));
      std::string soft = "subliminal " + rep.value("version", std::string("?")) + " at `" + rep.value("git_revision", std::string("?")) + "`";
      if (man.is_object() && man.contains("compiler")) soft += ", " + man["compiler"].get<std::string>();
      std::string arts;
      for (const char* f : {"report.md", "report.json", "manifest.json"})
        if (stdfs::exists(run / f)) arts += (arts.empty() ? "" : ", ") + fmt::format("[{}]({}/{})", f, run_rel, f);
      md += "| | |\n|---|---|\n";
      const std::string design = sm.contains("replicates")
                                     ? fmt::format("{} independent replicates x {} seed pair(s)", sm.value("replicate_count", 0), sm.value("seeds", 0))
                                     : fmt::format("{} seed pairs", sm.value("seeds", 0));
      md += fmt::format("| run | `{}` (experiment {}, seed {}, {}, loss {}) |\n", rep.value("name", std::string()),
                        rep.value("experiment", std::string()), rep.value("seed", 0), design, cell(sm.value("loss_label", sm.value("loss", std::string()))));
      md += "| trait | " + cell(sm.value("trait", std::string())) + ", target '" + sm.value("target", std::string()) + "'" +
            (sm.contains("dataset_kind") ? ", dataset " + sm["dataset_kind"].get<std::string>() : std::string()) + " |\n";
      md += "| date | " + cell(date) + " |\n| machine | " + cell(machine) + " |\n| LibTorch | " + cell(libtorch) + " |\n";
      md += "| software | " + cell(soft) + " |\n| artifacts | " + arts + " |\n\n";
      md += paragraphs(e.value("text", json()), file, ep + ".text");
      if (by_id.count(id)) config::fail(file, ep + ".id", "the id \"" + id + "\" is used twice");
      by_id[id] = {sm, rep, date, need_string(e, "machine", file, ep), libtorch, page_file};
      if (e.value("figure", true)) {
        out[dir / "figures" / (id + ".svg")] = render_trait_figure(sm);
        md += fmt::format("![{}: rates per model and arm](figures/{}.svg)\n\n", cell(sm.value("target", std::string())), id);
      }
      md += (sm.contains("replicates") && sm.value("target", std::string()) == "target"
                 ? "Rates: the share of answers naming each replicate's own target (" + targets_list(sm) + "), pooled over the replicates.\n\n"
                 : fmt::format("Rates: the share of answers naming '{}'.\n\n", sm.value("target", std::string()))) +
            rates_table(sm) + "\n";
      md += "Comparisons:\n\n" + tests_table(sm) + "\n";
      if (sm.contains("replicates")) {
        md += replicates_md(sm) + "\n";
        if (e.value("figure", true)) {
          out[dir / "figures" / (id + "-replicates.svg")] = render_replicates_figure(sm);
          md += fmt::format("![{}: differences per replicate and pooled](figures/{}-replicates.svg)\n\n", id, id);
        }
      }
      md += claims_table(rep) + "\n";
    }
    const json untraced = pg.value("untraced", json::array());
    if (!untraced.empty()) {
      md += "## Untraced results\n\nReported earlier, but no committed artifact holds them: they are not results of this project "
            "until a run that is committed replaces them.\n\n| result | status |\n|---|---|\n";
      for (size_t ui = 0; ui < untraced.size(); ++ui) {
        const std::string up = pp + ".untraced[" + std::to_string(ui) + "]";
        md += "| " + cell(need_string(untraced[ui], "result", file, up)) + " | " + cell(need_string(untraced[ui], "status", file, up)) + " |\n";
      }
      md += "\n";
    }
    md += paragraphs(pg.value("outro", json()), file, pp + ".outro");
    while (md.size() > 1 && md[md.size() - 1] == '\n' && md[md.size() - 2] == '\n') md.pop_back();
    out[dir / page_file] = md;
  }
  // Snippets: a short table of one entry between <!-- results:NAME --> and <!-- /results:NAME --> of
  // another file (the README's quick start), so the front page cannot drift from the artifacts either.
  const json snippets = idx.value("snippets", json::array());
  for (size_t si = 0; si < snippets.size(); ++si) {
    const std::string sp = "$.snippets[" + std::to_string(si) + "]";
    const stdfs::path target = (dir / need_string(snippets[si], "file", file, sp)).lexically_normal();
    const std::string name = need_string(snippets[si], "name", file, sp), id = need_string(snippets[si], "entry", file, sp);
    if (!by_id.count(id)) config::fail(file, sp + ".entry", "no entry has the id \"" + id + "\"");
    const Rendered& r = by_id[id];
    std::string text = out.count(target) ? out[target] : fs::read_file(target);
    const std::string open = "<!-- results:" + name + " -->", close = "<!-- /results:" + name + " -->";
    const size_t a = text.find(open), b = text.find(close);
    if (a == std::string::npos || b == std::string::npos || b < a)
      throw Error(target.string() + ": no " + open + " ... " + close + " region", "the snippet " + sp + " of " + file + " renders into it");
    const json& arms = r.sm["arms"];
    const std::string what = r.sm.contains("replicates") && r.sm.value("target", std::string()) == "target"
                                 ? "each replicate's target (" + targets_list(r.sm) + ")"
                                 : "'" + r.sm.value("target", std::string()) + "'";
    std::string t = "\n| " + what + " in the answers | rate [95% interval] |\n|---|---|\n";
    if (r.sm["models"].contains("teacher")) t += "| teacher | " + model_rate_text(r.sm["models"]["teacher"]) + " |\n";
    for (const char* arm : {"treatment", "control"}) {
      if (!arms.contains(arm)) continue;
      const json& x = arms[arm];
      const std::string n = r.sm.contains("replicates") ? fmt::format("{} replicates x {} seed pair(s)", r.sm.value("replicate_count", 0), r.sm.value("seeds", 0))
                                                         : fmt::format("{} seed pairs", x.value("models", x.value("n", 0)));
      std::string label = std::string(arm) + (x.value("trained", true) ? " students (" + n + ")" : std::string(": the untrained base"));
      t += "| " + label + " | " + pct(x["mean"].get<double>()) + pct_ci(x["ci95"]) + " |\n";
    }
    const stdfs::path page_rel = (dir / r.page).lexically_relative(target.parent_path());
    t += "\n";
    if (r.sm["tests"].contains("treatment_vs_control")) {
      const json& tc = r.sm["tests"]["treatment_vs_control"];
      t += fmt::format("Treatment vs control: {} points [{}, {}], p = {} (one-sided). ", pts(tc["diff"].get<double>()), pts(tc["ci95"][0].get<double>()),
                       pts(tc["ci95"][1].get<double>()), fmt_p(tc["p_greater"].get<double>()));
    }
    t += "Run of " + r.date.substr(0, 10) + ", " + r.machine + ", LibTorch " + r.libtorch;
    if (r.rep.contains("claims") && r.rep["claims"].is_object()) {
      const json& c = r.rep["claims"];
      int pre = 0;
      for (const auto& x : c["claims"]) pre += x.value("pre_registered", false);
      t += fmt::format("; claim file `{}`: {} of {} hold, {} pre-registered", c.value("source", std::string()), c.value("held", 0), c.value("total", 0), pre);
    }
    t += ". Details: [" + page_rel.string() + "](" + page_rel.string() + ").\n";
    text = text.substr(0, a + open.size()) + t + text.substr(b);
    out[target] = text;
  }
  return out;
}

}  // namespace subliminal::report
