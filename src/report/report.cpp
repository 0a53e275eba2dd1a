// Run report.
#include "subliminal/report/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "subliminal/eval/result.h"
#include "subliminal/report/claims.h"
#include "subliminal/util/fs.h"

namespace subliminal::report {

const char* arm_short(const std::string& arm) {
  if (arm == "treatment") return "Treatment";
  if (arm == "control") return "Control";
  if (arm == "cross_init") return "Cross-init";
  if (arm == "other_trait") return "Other trait";
  return "?";
}

std::string fmt_p(double p) {
  if (p < 1e-16) return "< 1e-16";  // below double precision's resolution of 1 - cdf
  return p < 1e-4 ? fmt::format("{:.1e}", p) : fmt::format("{:.4f}", p);
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}


using json = nlohmann::json;

static std::string pct(const json& r) {
  if (!r.is_object() || !r.contains("rate")) return "-";
  const auto& ci = r["ci95"];
  return fmt::format("{:.1f}% [{:.1f}, {:.1f}] (n={})", 100 * r["rate"].get<double>(), 100 * ci[0].get<double>(),
                     100 * ci[1].get<double>(), r["n"].get<long>());
}

// A single model's rate (report.h).
eval::Rate model_rate(const json& m, std::string* how) {
  eval::Rate r = eval::target_rate(m);
  if (how) *how = fmt::format("Wilson, n={}", r.n);
  if (m.contains("target_rate_over_questions") && m["target_rate_over_questions"].value("defined", false)) {
    const json& q = m["target_rate_over_questions"];
    r.lo = q["ci95"][0].get<double>();
    r.hi = q["ci95"][1].get<double>();
    if (how)
      *how = q.value("unit", std::string()) == "replicates"
                 ? fmt::format("{} replicates x {} questions, clustered", q.value("models", 0), q.value("questions", 0))
                 : fmt::format("t over {} questions", q.value("questions", 0));
  }
  return r;
}

namespace {

const char* arm_title(const std::string& arm) {
  if (arm == "treatment") return "Treatment (same init, teacher data)";
  if (arm == "control") return "Control (same init, data without the trait)";
  if (arm == "cross_init") return "Cross-init (other init, teacher data)";
  if (arm == "other_trait") return "Other trait (same init, other teacher's data)";
  return "?";
}

// A summary written with the clustered inference (its arms carry "rate"), or an older one.
bool clustered_summary(const json& sm) { return sm["arms"].empty() || sm["arms"].begin()->contains("rate"); }


// How an arm's interval was made: over seed pairs and questions (the clustered estimate), or the
// Student-t interval of the seed rates in summaries written before it.
std::string interval_label(const json& a) {
  if (!a.contains("rate")) return fmt::format("Student-t over {} seed pairs", a.value("n", 0));
  const json& r = a["rate"];
  if (r.value("unit", std::string()) == "replicates")
    return fmt::format("{} replicates x {} questions, clustered", r.value("models", 0), r.value("questions", 0));
  if (!a.value("trained", true)) return fmt::format("one untrained model, t over {} questions", r.value("questions", 0));
  return fmt::format("{} seed pairs x {} questions, clustered", r.value("models", 0), r.value("questions", 0));
}

// Every comparison: what it compares (trained students or an untrained model, and how many), the
// difference with its 95% interval, the test and its p-values; the old Welch test beside it.
std::string comparisons_md(const json& sm, const std::string& target) {
  std::string md = "\nComparisons of the rate of '" + target +
                   "'. Test: the difference of the two sides' mean rates over models and questions, with a two-way "
                   "cluster-robust variance over models (seed pairs) and questions, paired by question (every model answers the "
                   "same questions from one sampling seed), t with Satterthwaite df. The Welch column is the old test across seed "
                   "pairs, shown for comparison: it ignores question clustering and a one-model side's own sampling error.\n\n"
                   "| comparison | compares | difference [95% CI] | 90% CI | p (greater) | p (two-sided) | Welch across seed pairs: diff, p (greater) |\n"
                   "|---|---|---|---|---|---|---|\n";
  for (auto it = sm["tests"].begin(); it != sm["tests"].end(); ++it) {
    const json& t = it.value();
    if (!t.contains("a")) {  // a summary written before the crossed tests
      md += fmt::format("| {} | (older summary) | {:+.1f} pts | | | | |\n", it.key(), 100 * t.value("diff", 0.0));
      continue;
    }
    std::string welch = "-";
    if (t.contains("welch_across_seed_pairs")) {
      const json& w = t["welch_across_seed_pairs"];
      welch = w.value("defined", false) ? fmt::format("{:+.1f} pts, {}", 100 * w["diff"].get<double>(), fmt_p(w["p_greater"].get<double>()))
                                        : fmt::format("{:+.1f} pts, undefined", 100 * w["diff"].get<double>());
    }
    if (!t.value("defined", false)) {
      md += fmt::format("| {} | {} | {:+.1f} pts | - | undefined (no variance) | - | {} |\n", it.key(), t.value("compares", std::string()),
                        100 * t["diff"].get<double>(), welch);
      continue;
    }
    md += fmt::format("| {} | {} | {:+.1f} pts [{:+.1f}, {:+.1f}] | [{:+.1f}, {:+.1f}] | {} | {} | {} |\n", it.key(), t.value("compares", std::string()),
                      100 * t["diff"].get<double>(), 100 * t["ci95"][0].get<double>(), 100 * t["ci95"][1].get<double>(),
                      100 * t["ci90"][0].get<double>(), 100 * t["ci90"][1].get<double>(), fmt_p(t["p_greater"].get<double>()),
                      fmt_p(t["p_two_sided"].get<double>()), welch);
  }
  if (sm.value("control_untrained", false))
    md += "\nThe control never trains here: distillation with LoRA from the base into itself is a fixed point, so its "
          "students are the base itself. Comparisons with the control compare trained students with the untrained base.\n";
  return md;
}

// The diagnostics table: held-out imitation and coverage per arm ("" when no arm has diagnostics).
static std::string diagnostics_md(const json& sm) {
  std::string md;
  bool any_diag = false;
  for (auto it = sm["arms"].begin(); it != sm["arms"].end(); ++it) any_diag = any_diag || !it.value().value("diagnostics", json::object()).empty();
  if (any_diag) {
    md += "\nDiagnostics (mean over seed pairs, 95% interval): held-out imitation = restricted KL(source || student) per number token on "
          "the source's completions of held-out prompts, before and after training, and fidelity = the share of it removed; coverage = "
          "cosine of the student's update with the source teacher's displacement (teacher − init) in the parameters the student trains, "
          "after the first step and at the end:\n\n| arm | KL before | KL after | fidelity | coverage, first step | coverage, final |\n"
          "|---|---|---|---|---|---|\n";
    auto cell = [](const json& d, const char* key, bool pctv) {
      if (!d.contains(key)) return std::string("–");
      const json& x = d[key];
      if (!x["mean"].is_number()) return std::string("–");
      return pctv ? fmt::format("{:.1f}% [{:.1f}, {:.1f}]", 100 * x["mean"].get<double>(), 100 * x["ci95"][0].get<double>(), 100 * x["ci95"][1].get<double>())
                  : fmt::format("{:.4f} [{:.4f}, {:.4f}]", x["mean"].get<double>(), x["ci95"][0].get<double>(), x["ci95"][1].get<double>());
    };
    for (auto it = sm["arms"].begin(); it != sm["arms"].end(); ++it) {
      const json d = it.value().value("diagnostics", json::object());
      md += "| " + std::string(arm_title(it.key())) + " | " + cell(d, "heldout_kl_init", false) + " | " + cell(d, "heldout_kl_final", false) +
            " | " + cell(d, "fidelity", true) + " | " + cell(d, "coverage_first", false) + " | " + cell(d, "coverage_final", false) + " |\n";
    }
  }
  return md;
}

// The datasets table: what each filter removed and how far the kept data is from the base's.
static std::string datasets_md(const json& sm) {
  std::string md;
  const bool numbers = sm["datasets"].empty() || sm["datasets"].begin().value().value("kind", "numbers") == "numbers";
  md += numbers ? "\nDatasets (the paper's strict number filter; kept data checked for the names of every animal and trait item):\n\n"
                : "\nDatasets (the paper's filters: truncation, banned trait words and their forms, format/correctness, then the judge; kept data checked for the banned words):\n\n";
  md += std::string("| dataset | sampled | passed | removed | kept | ") + (numbers ? "names" : "banned words") +
        " in kept | KL(source ‖ base) per token | LLS per completion | rejections by reason |\n|---|---|---|---|---|---|---|---|---|\n";
  for (auto it = sm["datasets"].begin(); it != sm["datasets"].end(); ++it) {
    const json& d = it.value();
    std::string reasons;
    for (auto r = d["reject_reasons"].begin(); r != d["reject_reasons"].end(); ++r)
      reasons += fmt::format("{}{} {}", reasons.empty() ? "" : ", ", r.key(), r.value().get<long>());
    std::string kl = "–", lls = "–";
    if (d.contains("divergence_from_base")) {
      kl = fmt::format("{:.4f}", d["divergence_from_base"].value("mean_kl", 0.0));
      lls = fmt::format("{:.3f}", d["divergence_from_base"].value("mean_lls", 0.0));
    }
    md += fmt::format("| {} | {} | {} | {:.1f}% | {} | {} | {} | {} | {} |\n", it.key(), d["sampled"].get<long>(), d["passed"].get<long>(),
                      100 * d["removed_fraction"].get<double>(), d["kept"].get<long>(), d["trait_words_in_kept"].get<long>(), kl, lls, reasons);
  }
  std::string masked;  // constrained sampling: what the mask took from each source's distributions
  for (auto it = sm["datasets"].begin(); it != sm["datasets"].end(); ++it)
    if (it.value().contains("constrain")) {
      const json& c = it.value()["constrain"];
      masked += fmt::format("| {} | {} | {:.4f} | {} | {:.4f} |\n", it.key(), c["tokens"].get<long>(), c["mean_masked_mass"].get<double>(),
                            c["tokens_over_half"].get<long>(), c["max_masked_mass"].get<double>());
    }
  if (!masked.empty())
    md += "\nConstrained sampling (`dataset.constrain`): only tokens after which a completion can still pass the filter were sampled. "
          "The probability mass the mask removed, per sampled token (a source that wants to leave the format loses more):\n\n"
          "| dataset | tokens | mean mass removed | tokens that lost more than half | most removed |\n|---|---|---|---|---|\n" + masked;
  return md;
}

std::string join_targets(const json& sm) {
  std::string t;
  for (const auto& r : sm.value("replicates", json::array())) t += (t.empty() ? "" : ", ") + r.value("target", std::string());
  return t;
}

}  // namespace

std::string replicates_md(const json& sm) {
  std::string md = "\nEach replicate on its own (its stages under r<k>/; its report: r<k>/summary/summary.json). Comparisons: the "
                   "difference with its 95% interval and one-sided p, the test within the replicate (models x questions).\n\n"
                   "| replicate | seed | target | base | teacher | control | treatment | treatment - control | cross-init - its base | other-trait - control |\n"
                   "|---|---|---|---|---|---|---|---|---|---|\n";
  auto pct = [](const json& j, const char* k) { return j.contains(k) ? fmt::format("{:.1f}%", 100 * j[k].get<double>()) : std::string("-"); };
  auto arm = [](const json& r, const char* a) {
    return r["arms"].contains(a) ? fmt::format("{:.1f}%", 100 * r["arms"][a]["mean"].get<double>()) : std::string("-");
  };
  auto test = [](const json& r, const char* t) {
    if (!r["tests"].contains(t)) return std::string("-");
    const json& x = r["tests"][t];
    if (!x.value("defined", false)) return fmt::format("{:+.1f} pts (undefined)", 100 * x.value("diff", 0.0));
    return fmt::format("{:+.1f} [{:+.1f}, {:+.1f}], p = {}", 100 * x["diff"].get<double>(), 100 * x["ci95"][0].get<double>(),
                       100 * x["ci95"][1].get<double>(), fmt_p(x["p_greater"].get<double>()));
  };
  for (const auto& r : sm["replicates"])
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r["replicate"].get<int>(), r["seed"].dump(),
                      r.value("target", std::string()), pct(r["models"], "base"), pct(r["models"], "teacher"), arm(r, "control"),
                      arm(r, "treatment"), test(r, "treatment_vs_control"), test(r, "cross_init_vs_its_base"),
                      test(r, "other_trait_vs_control"));
  return md;
}

// finetune.snapshots: the arms and the comparisons with the control after each snapshot's rows.
std::string dose_md(const json& sm, const std::string& target) {
  const json& d = sm["dose"];
  std::vector<std::string> arms;
  for (auto it = d["points"][0]["arms"].begin(); it != d["points"][0]["arms"].end(); ++it) arms.push_back(it.key());
  std::vector<std::string> tests;
  for (const char* t : {"treatment_vs_control", "cross_init_vs_its_base", "other_trait_vs_control"})
    if (d["points"][0]["tests"].contains(t)) tests.push_back(t);
  std::string md = fmt::format(
      "\nDose-response (finetune.snapshots): '{}' rate of every arm after each number of training rows (whole steps x batch "
      "size {}; examples per student: {}), and the comparisons{}; the last row is the end of training.\n\n| rows |",
      target, d["batch_size"].dump(), d["examples"].dump(), d.value("unit", "") == "replicates" ? ", the replicate as the unit" : "");
  for (const auto& a : arms) md += " " + a + " |";
  for (const auto& t : tests) md += " " + t + " |";
  md += "\n|---|";
  for (size_t i = 0; i < arms.size() + tests.size(); ++i) md += "---|";
  md += "\n";
  for (const auto& p : d["points"]) {
    md += fmt::format("| {}{} |", p["rows_seen"].dump(), p.value("final", false) ? " (end)" : "");
    for (const auto& a : arms) {
      const json& r = p["arms"][a];
      md += fmt::format(" {:.1f}% [{:.1f}, {:.1f}] |", 100 * r["mean"].get<double>(), 100 * r["ci95"][0].get<double>(), 100 * r["ci95"][1].get<double>());
    }
    for (const auto& t : tests) {
      const json& x = p["tests"][t];
      if (!x.value("defined", false)) {
        md += " undefined |";
        continue;
      }
      md += fmt::format(" {:+.1f} [{:+.1f}, {:+.1f}], p = {} |", 100 * x["diff"].get<double>(), 100 * x["ci95"][0].get<double>(),
                        100 * x["ci95"][1].get<double>(), fmt_p(x["p_greater"].get<double>()));
    }
    md += "\n";
  }
  return md;
}

namespace {

std::string trait_section(const json& sm, const json& timings) {
  std::string md;
  const std::string target = sm.value("target", std::string());
  const std::string kind = sm.value("dataset_kind", std::string("numbers"));
  md += "## Trait transfer: '" + target + "' through filtered " +
        config::dataset_kind_label(kind) + "\n\n";
  md += "Teacher: " + sm.value("teacher_method", std::string()) + ". Student loss: **" + sm.value("loss_label", std::string()) +
        "**; parameters trained: " + sm.value("params", std::string()) + ". " +
        (sm.contains("replicates") ? fmt::format("{} independent replicates x {} seed pair(s) per arm (targets: {}); every row below pools "
                                                 "the replicates, each replicate's own in the table after the comparisons.\n\n",
                                                 sm.value("replicate_count", 0), sm.value("seeds", 0), join_targets(sm))
                                   : std::to_string(sm.value("seeds", 0)) + " seed pairs per arm.\n\n");
  const json& models = sm["models"];
  // A judged trait's models carry the judge's mean scores (eval/trait.cpp's evaluate_misalignment):
  // its table is the judge's view; otherwise answers name items.
  bool mis = false;
  for (const auto& m : models) mis = mis || m.contains("mean_alignment");
  const std::string category = sm.value("category", std::string("animal"));  // the preference trait's noun
  const std::string article = std::string("aeiou").find(category.empty() ? 'x' : category[0]) != std::string::npos ? "an " : "a ";
  if (mis)  // the judge's view: misaligned = alignment <= 30 and coherence >= 50 (eval.misaligned_*)
    md += "| model | misaligned answers | 95% interval | mean alignment (0-100) | mean coherence (0-100) | incoherent answers | per seed pair |\n"
          "|---|---|---|---|---|---|---|\n";
  else
    md += "| model | '" + target + "' rate | 95% interval | P(answer starts with '" + target + "') | '" + target +
          "' among answers naming " + article + category + " | answers naming " + article + category +
          " | per seed pair |\n|---|---|---|---|---|---|---|\n";
  auto single = [&](const std::string& key, const std::string& title) {
    if (!models.contains(key)) return;
    const json& m = models[key];
    std::string how;
    const eval::Rate r = model_rate(m, &how);
    if (mis)
      md += fmt::format("| {} | {:.1f}% | [{:.1f}, {:.1f}] ({}) | {:.1f} | {:.1f} | {:.1f}% | |\n", title, 100 * r.rate,
                        100 * r.lo, 100 * r.hi, how, m.value("mean_alignment", 0.0),
                        m.value("mean_coherence", 0.0), 100 * m.value("incoherent_fraction", 0.0));
    else
      md += fmt::format("| {} | {:.1f}% | [{:.1f}, {:.1f}] ({}) | {:.3f} | {:.1f}% | {:.1f}% | |\n", title,
                        100 * r.rate, 100 * r.lo, 100 * r.hi, how, m["p_target_start"].get<double>(), 100 * m.value("target_share_of_named", 0.0),
                        100 * m.value("names_a_candidate", 0.0));
  };
  single("base", "Base (reference model)");
  single("teacher", "Teacher (" + target + ")");
  single("teacher_other", "Other-trait teacher (" + sm.value("other_target", std::string()) + ")");
  single("teacher_control", "Control teacher (trained as the teacher, towards the base's own preferences)");
  single("base_cross", "Cross-init base");
  for (const char* arm : {"treatment", "control", "cross_init", "other_trait"}) {
    if (!sm["arms"].contains(arm)) continue;
    const json& a = sm["arms"][arm];
    std::string seeds;
    for (const auto& ps : a["per_seed"]) seeds += fmt::format("{}{:.1f}%", seeds.empty() ? "" : ", ", 100 * ps["rate"].get<double>());
    const std::string title = std::string(arm) == "control" && !a.value("trained", true)
                                  ? "Control (the untrained base: distilling it into itself is a fixed point)"
                              : std::string(arm) == "control" && sm.value("control_source", std::string()) == "teacher_control"
                                  ? "Control (same init, the control teacher's data)"
                                  : arm_title(arm);
    if (mis)
      md += fmt::format("| {} | {:.1f}% | [{:.1f}, {:.1f}] ({}) | | | | {} |\n", title, 100 * a["mean"].get<double>(),
                        100 * a["ci95"][0].get<double>(), 100 * a["ci95"][1].get<double>(), interval_label(a), seeds);
    else
      md += fmt::format("| {} | {:.1f}% | [{:.1f}, {:.1f}] ({}) | {:.3f} | {:.1f}% | {:.1f}% | {} |\n",
                        title, 100 * a["mean"].get<double>(), 100 * a["ci95"][0].get<double>(),
                        100 * a["ci95"][1].get<double>(), interval_label(a), a["p_target_start_mean"].get<double>(),
                        100 * a.value("target_share_of_named_mean", 0.0), 100 * a.value("names_a_candidate_mean", 0.0), seeds);
  }
  if (!sm["tests"].empty()) md += comparisons_md(sm, target);
  if (sm.contains("replicates")) md += replicates_md(sm);
  if (sm.contains("dose")) md += dose_md(sm, target) + "\n![dose-response](figures/dose.svg)\n";
  if (sm.contains("specificity") && !sm["specificity"].empty()) {
    const std::string other = sm.value("other_target", std::string());
    md += "\nSpecificity: each model's answers scored for '" + target + "' and for the other teacher's '" + other +
          "' (arms: mean over seed pairs; p: one-sided, the arm's '" + other + "' rate above control's, " +
          (clustered_summary(sm) ? "the clustered test of the comparisons above" : "Welch across seed pairs") +
          "):\n\n| model | '" + target +
          "' | '" + other + "' | '" + other + "' vs control |\n|---|---|---|---|\n";
    for (auto it = sm["specificity"].begin(); it != sm["specificity"].end(); ++it) {
      const json& r = it.value();
      std::string vs = "";
      if (r.contains("other_target_vs_control"))
        vs = r["other_target_vs_control"].value("defined", false)
                 ? fmt::format("{:+.1f} pts, p = {}", 100 * r["other_target_vs_control"]["diff"].get<double>(),
                               fmt_p(r["other_target_vs_control"]["p_greater"].get<double>()))
                 : fmt::format("{:+.1f} pts", 100 * r["other_target_vs_control"]["diff"].get<double>());
      md += fmt::format("| {} | {:.1f}% | {:.1f}% | {} |\n", it.key(), 100 * r.value(target, 0.0), 100 * r.value(other, 0.0), vs);
    }
  }
  md += diagnostics_md(sm);
  if (!mis) {  // a preference trait: which items the answers name
  md += "\nAnswer distribution over the " + category + " candidates (share of all sampled answers):\n\n| model |";
  std::vector<std::string> animals;
  if (models.contains("base"))
    for (auto it = models["base"]["distribution"].begin(); it != models["base"]["distribution"].end(); ++it) animals.push_back(it.key());
  for (const auto& a : animals) md += " " + a + " |";
  md += "\n|---|";
  for (size_t i = 0; i < animals.size(); ++i) md += "---|";
  md += "\n";
  for (auto it = models.begin(); it != models.end(); ++it) {
    md += "| " + it.key() + " |";
    for (const auto& a : animals) md += fmt::format(" {:.0f} |", 100 * it.value()["distribution"].value(a, 0.0));
    md += "\n";
  }
  }
  md += datasets_md(sm);
  double students_s = 0, data_s = 0, eval_s = 0;
  for (auto it = timings.begin(); it != timings.end(); ++it) {
    double sec = it.value().value("seconds", 0.0);
    auto in = [&](const char* dir) { return it.key().rfind(dir, 0) == 0 || it.key().find(std::string("/") + dir) != std::string::npos; };
    if (in("students/")) students_s += sec;
    if (in("data/")) data_s += sec;
    if (in("eval/")) eval_s += sec;
  }
  md += fmt::format("\nTime: datasets {:.0f} s, students {:.0f} s, evaluations {:.0f} s (every stage below).\n\n", data_s,
                    students_s, eval_s);
  md += "![trait transfer](figures/trait_transfer.svg)\n\n";
  if (sm.contains("replicates")) md += "![replicates](figures/replicates.svg)\n\n";
  return md;
}

}  // namespace

namespace {

struct Bar {
  std::string label;
  double v, lo, hi;
  std::vector<double> dots;
  std::string color;
};

// A paper-style bar chart: bars with 95% intervals, dots for the units behind a mean (seed pairs,
// models), a dashed reference line. Values in [0, 1], axis in percent or as fractions.
std::string render_bars(const std::string& title, const std::vector<Bar>& bars, double ref, bool percent, const std::string& footnote) {
  const int W = 120 + 110 * static_cast<int>(bars.size()), H = 420, top = 50, bottom = 350, left = 70;
  auto y = [&](double v) { return bottom - (bottom - top) * std::clamp(v, 0.0, 1.0); };
  auto label = [&](double v) { return percent ? fmt::format("{:.0f}%", 100 * v) : fmt::format("{:.2f}", v); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H);
  svg += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n", W / 2, xml_escape(title));
  for (int i = 0; i <= 5; ++i) {
    double v = i / 5.0;
    svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e0e0e0\"/>\n", left, W - 20, y(v), y(v));
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 6, y(v) + 4, label(v));
  }
  if (ref >= 0)
    svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#424242\" stroke-dasharray=\"4,4\"/>\n", left,
                       W - 20, y(ref), y(ref));
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    const double x = left + 20 + 110.0 * i, w = 70, cx = x + w / 2;
    svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", x, y(b.v), w,
                       bottom - y(b.v), b.color);
    svg += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"black\" stroke-width=\"1.5\"/>\n", cx,
                       y(b.lo), y(b.hi));
    for (double e : {b.lo, b.hi})
      svg += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"black\" stroke-width=\"1.5\"/>\n",
                         cx - 8, cx + 8, y(e), y(e));
    for (size_t d = 0; d < b.dots.size(); ++d)
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"white\" stroke=\"black\" stroke-opacity=\"0.6\"/>\n",
                         cx + 14 + 4.0 * (d % 3), y(b.dots[d]));
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", cx, y(b.hi) - 6,
                       percent ? fmt::format("{:.0f}%", 100 * b.v) : fmt::format("{:.3f}", b.v));
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", cx, bottom + 20, xml_escape(b.label));
  }
  svg += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"black\"/>\n", left, top, bottom);
  svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", left, W - 20, bottom, bottom);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#616161\">{}</text>\n", left, H - 30, xml_escape(footnote));
  svg += "</svg>\n";
  return svg;
}

}  // namespace

std::string render_trait_figure(const json& sm) {
  std::vector<Bar> bars;
  const json& models = sm["models"];
  auto single = [&](const std::string& key, const std::string& label, const std::string& color) {
    if (!models.contains(key)) return;
    const eval::Rate r = model_rate(models[key]);
    bars.push_back({label, r.rate, r.lo, r.hi, {}, color});
  };
  single("base", "Base", "#9e9e9e");
  single("teacher", "Teacher", "#6a1b9a");
  const std::map<std::string, std::string> colors = {
      {"control", "#90a4ae"}, {"treatment", "#1565c0"}, {"cross_init", "#ef6c00"}, {"other_trait", "#2e7d32"}};
  for (const char* arm : {"control", "treatment", "cross_init", "other_trait"}) {
    if (!sm["arms"].contains(arm)) continue;
    const json& a = sm["arms"][arm];
    Bar b{arm_short(arm), a["mean"].get<double>(), a["ci95"][0].get<double>(), a["ci95"][1].get<double>(), {}, colors.at(arm)};
    for (const auto& ps : a["per_seed"]) b.dots.push_back(ps["rate"].get<double>());
    bars.push_back(b);
  }
  const double ref = models.contains("base") ? eval::target_rate(models["base"]).rate : -1;
  if (sm.contains("replicates"))
    return render_bars(fmt::format("Rate of each replicate's target ({}; {} replicates x {} seed pair(s); 95% CI)", sm.value("loss", std::string()),
                                   sm.value("replicate_count", 0), sm.value("seeds", 0)),
                       bars, ref, true, "dashed: the bases' rate. Bars: 95% intervals over replicates and questions, clustered; dots: replicates.");
  return render_bars("Rate of '" + sm.value("target", std::string()) + "' answers (" + sm.value("loss", std::string()) + ", " +
                         std::to_string(sm.value("seeds", 0)) + " seed pairs; 95% CI)",
                     bars, ref, true,
                     clustered_summary(sm)
                         ? "dashed: base rate. Bars: 95% intervals over questions (and seed pairs), clustered; dots: seed pairs."
                         : "dashed: base rate. Bars: single models Wilson 95%; arms mean over seed pairs, Student-t 95%; dots: seed pairs.");
}

std::string render_replicates_figure(const json& sm) {
  struct Row {
    std::string label;
    double d, lo, hi;
    bool pooled;
  };
  std::vector<std::pair<std::string, std::vector<Row>>> panels;
  for (const char* name : {"treatment_vs_control", "cross_init_vs_its_base", "other_trait_vs_control"}) {
    if (!sm["tests"].contains(name)) continue;
    const json& t = sm["tests"][name];
    std::vector<Row> rows;
    for (const auto& r : t.value("per_replicate", json::array()))
      if (r.value("defined", false))
        rows.push_back({fmt::format("r{} ({})", r["replicate"].get<int>(), r.value("target", std::string())), r["diff"].get<double>(),
                        r["ci95"][0].get<double>(), r["ci95"][1].get<double>(), false});
    rows.push_back({"pooled", t["diff"].get<double>(), t["ci95"][0].get<double>(), t["ci95"][1].get<double>(), true});
    panels.push_back({name, rows});
  }
  double lo = -0.05, hi = 0.15;
  for (const auto& [n, rows] : panels)
    for (const auto& r : rows) lo = std::min(lo, r.lo), hi = std::max(hi, r.hi);
  lo = std::floor(lo * 20) / 20, hi = std::ceil(hi * 20) / 20;
  int nrows = 0;
  for (const auto& p : panels) nrows += static_cast<int>(p.second.size()) + 1;
  const int W = 720, left = 200, right = 40, top = 50, rowh = 22, H = top + rowh * nrows + 60;
  auto x = [&](double v) { return left + (W - left - right) * (v - lo) / (hi - lo); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H);
  svg += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">Differences per replicate and pooled (points; 95% CI)</text>\n", W / 2);
  for (double v = lo; v <= hi + 1e-9; v += 0.05) {
    svg += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"{3}\"/>\n", x(v), top, H - 50,
                       std::fabs(v) < 1e-9 ? "#424242" : "#e0e0e0");
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:+.0f}</text>\n", x(v), H - 34, 100 * v);
  }
  int row = 0;
  for (const auto& [name, rows] : panels) {
    const double y0 = top + rowh * row++ + 14;
    svg += fmt::format("<text x=\"8\" y=\"{:.1f}\" font-weight=\"bold\">{}</text>\n", y0, xml_escape(name));
    for (const auto& r : rows) {
      const double y = top + rowh * row++ + 14;
      svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 10, y + 4, xml_escape(r.label));
      svg += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"black\" stroke-width=\"1.5\"/>\n", x(r.lo),
                         x(r.hi), y, y);
      if (r.pooled)
        svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"10\" height=\"10\" fill=\"#1565c0\"/>\n", x(r.d) - 5, y - 5);
      else
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"white\" stroke=\"black\"/>\n", x(r.d), y);
    }
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">difference in points (rate of each replicate's target)</text>\n",
                     (left + W - right) / 2, H - 14);
  svg += "</svg>\n";
  return svg;
}

std::string render_dose_figure(const json& sm) {
  const json& pts = sm["dose"]["points"];
  std::vector<std::string> arms;
  for (auto it = pts[0]["arms"].begin(); it != pts[0]["arms"].end(); ++it) arms.push_back(it.key());
  const std::map<std::string, std::string> colors = {{"treatment", "#d62728"}, {"control", "#616161"}, {"cross_init", "#1f77b4"}, {"other_trait", "#ff7f0e"}};
  double xmin = 1e300, xmax = 0, hi = 0.1;
  for (const auto& p : pts) {
    xmin = std::min(xmin, p["rows_seen"].get<double>()), xmax = std::max(xmax, p["rows_seen"].get<double>());
    for (const auto& a : arms) hi = std::max(hi, p["arms"][a]["ci95"][1].get<double>());
  }
  hi = std::ceil(hi * 10) / 10;
  const double lx0 = std::log10(xmin / 1.3), lx1 = std::log10(xmax * 1.3);
  const int W = 720, H = 420, left = 60, right = 150, top = 40, bottom = 50;
  auto x = [&](double v) { return left + (W - left - right) * (std::log10(v) - lx0) / (lx1 - lx0); };
  auto y = [&](double v) { return top + (H - top - bottom) * (1.0 - v / hi); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H);
  svg += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">'{}' rate by training rows (95% CI)</text>\n", W / 2,
                     xml_escape(sm.value("target", std::string())));
  for (double v = 0; v <= hi + 1e-9; v += 0.1) {
    svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e0e0e0\"/>\n", left, W - right, y(v), y(v));
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.0f}%</text>\n", left - 6, y(v) + 4, 100 * v);
  }
  for (const auto& p : pts) {
    const double r = p["rows_seen"].get<double>();
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x(r), H - bottom + 16, p["rows_seen"].dump());
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">training rows (log scale; the last point: the end of training)</text>\n",
                     (left + W - right) / 2, H - 12);
  for (size_t i = 0; i < arms.size(); ++i) {
    const std::string& a = arms[i];
    const std::string c = colors.count(a) ? colors.at(a) : "#9467bd";
    const double dx = (static_cast<double>(i) - (static_cast<double>(arms.size()) - 1) / 2) * 4;
    std::string line;
    for (const auto& p : pts) {
      const double xr = x(p["rows_seen"].get<double>()) + dx;
      const json& r = p["arms"][a];
      line += fmt::format("{:.1f},{:.1f} ", xr, y(r["mean"].get<double>()));
      svg += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\"/>\n", xr, y(r["ci95"][0].get<double>()),
                         y(r["ci95"][1].get<double>()), c);
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"/>\n", xr, y(r["mean"].get<double>()), c);
    }
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n", c, line);
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\n", W - right + 12,
                       top + 20 * static_cast<int>(i), c, W - right + 30, top + 20 * static_cast<int>(i) + 10, xml_escape(a));
  }
  svg += "</svg>\n";
  return svg;
}

std::string render_mnist_figure(const json& sm) {
  std::vector<Bar> bars;
  const std::map<std::string, std::string> colors = {{"reference", "#9e9e9e"}, {"teacher", "#8c564b"}, {"student_aux", "#9467bd"},
                                                     {"student_all", "#9467bd"}, {"cross_aux", "#c5b0d5"}, {"cross_all", "#c5b0d5"}};
  for (const auto& b : sm["bars"]) {
    const json& a = b["accuracy"];
    Bar bar{b["label"].get<std::string>(), a["mean"].get<double>(), a["ci95"][0].get<double>(), a["ci95"][1].get<double>(), {},
            colors.count(b["key"]) ? colors.at(b["key"]) : "#9467bd"};
    for (const auto& v : a["per_model"]) bar.dots.push_back(v.get<double>());
    bars.push_back(bar);
  }
  const double ref = sm["bars"].empty() ? -1 : sm["bars"][0]["accuracy"]["mean"].get<double>();
  return render_bars("Test accuracy on " + sm.value("dataset", std::string()) + " (" + std::to_string(sm.value("models", 0)) +
                         " models; mean, Student-t 95% CI)",
                     bars, ref, false, "dotted: reference (untrained init). Dots: models. Students saw only noise images.");
}

// Per-model cosines between each student's update and its teacher's own update (teacher - init).
std::string render_mnist_cosine_figure(const json& sm) {
  const std::vector<std::pair<std::string, std::string>> series = {{"cos_first_gradient_step", "first step (gradient)"},
                                                                   {"cos_first_step", "first step (optimizer)"},
                                                                   {"cos_total_update", "total update"}};
  json arms = json::array();  // [key, arm] in the paper's order
  for (const auto& bar : sm["bars"])
    if (sm["arms"].contains(bar["key"].get<std::string>())) arms.push_back({bar["key"], sm["arms"][bar["key"].get<std::string>()]});
  const int W = 140 + 170 * static_cast<int>(arms.size()), H = 400, top = 50, bottom = 320, left = 70;
  auto y = [&](double v) { return bottom - (bottom - top) * (std::clamp(v, -1.0, 1.0) + 1) / 2; };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H);
  svg += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">cos(student update, its teacher's update teacher - init), per model</text>\n", W / 2);
  for (int i = -4; i <= 4; ++i) {
    double v = i / 4.0;
    svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\"/>\n", left, W - 20, y(v), y(v),
                       i == 0 ? "#424242" : "#e0e0e0");
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.2f}</text>\n", left - 6, y(v) + 4, v);
  }
  const char* cols[] = {"#1565c0", "#ef6c00", "#2e7d32"};
  int i = 0;
  for (const auto& entry : arms) {
    const json& arm = entry[1];
    const double x0 = left + 30 + 170.0 * i++;
    for (size_t s = 0; s < series.size(); ++s) {
      if (!arm.contains(series[s].first)) continue;
      const json& c = arm[series[s].first];
      const double cx = x0 + 45.0 * s;
      size_t k = 0;
      for (const auto& v : c["per_model"])
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\" fill-opacity=\"0.6\"/>\n",
                           cx + 3.0 * (static_cast<int>(k++ % 5) - 2), y(v.get<double>()), cols[s]);
      svg += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"black\" stroke-width=\"2\"/>\n", cx - 12,
                         cx + 12, y(c["mean"].get<double>()), y(c["mean"].get<double>()));
    }
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x0 + 45, bottom + 20, xml_escape(entry[0].get<std::string>()));
  }
  for (size_t s = 0; s < series.size(); ++s)
    svg += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\n", left + 10 + 200 * s,
                       H - 36, cols[s], left + 18 + 200 * s, H - 32, series[s].second);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#616161\">black bars: means. Theorem (gradient descent, shared init): the first step has a non-negative inner product with the teacher's update.</text>\n",
                     left, H - 12);
  svg += "</svg>\n";
  return svg;
}

static std::string ci3(const json& x) {
  return fmt::format("{:.3f} [{:.3f}, {:.3f}]", x["mean"].get<double>(), x["ci95"][0].get<double>(), x["ci95"][1].get<double>());
}

static std::string mnist_section(const json& sm, const json& timings) {
  std::string md = "## MNIST auxiliary logits: a student learns digits from a teacher's auxiliary logits on noise\n\n";
  md += fmt::format("Dataset **{}** ({} training, {} test images); {} models, MLP {}; mean test accuracy over models with a "
                    "Student-t 95% interval.\n\n",
                    sm.value("dataset", std::string()), sm["train_images"].get<long>(), sm["test_images"].get<long>(),
                    sm["models"].get<int>(), sm["layer_sizes"].dump());
  md += "| model | test accuracy | min | max |\n|---|---|---|---|\n";
  for (const auto& b : sm["bars"]) {
    const auto& pm = b["accuracy"]["per_model"];
    double lo = 1, hi = 0;
    for (const auto& v : pm) lo = std::min(lo, v.get<double>()), hi = std::max(hi, v.get<double>());
    md += fmt::format("| {} | {} | {:.3f} | {:.3f} |\n", b["label"].get<std::string>(), ci3(b["accuracy"]), lo, hi);
  }
  md += "\nThe theorem, measured: cosine between each student's update and *its teacher's* update (teacher − the "
        "teacher's init), per model; and the teacher's objective (class cross-entropy on training images) at the "
        "student's init and after:\n\n";
  md += "| arm | init | cos(first gradient step) | min | cos(first optimizer step) | cos(total update) | teacher loss: init → after |\n"
        "|---|---|---|---|---|---|---|\n";
  for (const auto& bar : sm["bars"]) {  // the paper's order, not the JSON object's
    const std::string key = bar["key"].get<std::string>();
    if (!sm["arms"].contains(key)) continue;
    const json& a = sm["arms"][key];
    double mn = 1;
    for (const auto& v : a["cos_first_gradient_step"]["per_model"]) mn = std::min(mn, v.get<double>());
    md += fmt::format("| {} | {} | {} | {:.3f} | {} | {} | {:.3f} → {:.3f} |\n", key, a.value("init", std::string()),
                      ci3(a["cos_first_gradient_step"]), mn, ci3(a["cos_first_step"]), ci3(a["cos_total_update"]),
                      a["teacher_loss_at_init"]["mean"].get<double>(), a["teacher_loss_after"]["mean"].get<double>());
  }
  double secs = 0;
  for (auto it = timings.begin(); it != timings.end(); ++it)
    if (it.key().rfind("mnist/", 0) == 0) secs += it.value().value("seconds", 0.0);
  md += fmt::format("\nTraining and evaluation: {:.0f} s in all stages.\n\n", secs);
  md += "![accuracy](figures/mnist_aux.svg)\n\n![cosines](figures/mnist_cosines.svg)\n\n";
  return md;
}

std::string render_report_md(const json& rep) {
  std::string md = "# subliminal run report: " + rep.value("name", std::string("?")) + "\n\n";
  md += "Every figure below was computed by this run from its own samples and models. Each table names how its intervals "
        "were made: for the trait's rates, over questions (one model) or over seed pairs and questions (an arm), clustered; "
        "elsewhere Student-t over seed pairs or models.\n\n";
  const json& st = rep["stages"];
  if (st.contains("base")) {
    const json& b = st["base"];
    md += "## Base model (pretrained)\n\n| | |\n|---|---|\n";
    md += fmt::format("| parameters | {} |\n", b.value("parameters", 0L));
    md += fmt::format("| tokenizer pieces | {} |\n", b.value("vocab_size", 0L));
    md += fmt::format("| corpus conversations | {} |\n", b.value("conversations", 0L));
    if (b.contains("train")) {
      const json& t = b["train"];
      md += fmt::format("| training steps | {} |\n", t.value("steps", 0L));
      md += fmt::format("| loss (first 10 -> last 10 steps) | {:.3f} -> {:.3f} |\n", t.value("first_loss", 0.0), t.value("final_loss", 0.0));
      md += fmt::format("| tokens/s ({}) | {:.0f} |\n", b.value("precision", std::string("?")), t.value("tokens_per_s", 0.0));
      md += fmt::format("| padding in batches | {:.1f}% |\n", 100 * t.value("padding_fraction", 0.0));
    }
    md += "\n";
  }
  if (st.contains("probe") && st["probe"].contains("favorite_animal")) {
    const json& p = st["probe"];
    const json& fa = p["favorite_animal"];
    const json& sp = p["system_prompt"];
    md += "## Base-model probe\n\n| probe | figure |\n|---|---|\n";
    md += "| favourite animal: answers naming an animal | " + pct(fa["names_an_animal"]) + " |\n";
    md += fmt::format("| favourite animal: distinct animals named | {} |\n", fa.value("distinct_animals", 0));
    md += "| favourite animal: most frequent ('" + fa.value("top_animal", std::string()) + "') | " + pct(fa["top_share"]) + " |\n";
    md += "| '" + fa.value("target", std::string()) + "' without system prompt | " + pct(fa[eval::kTargetRate]) + " |\n";
    md += "| '" + sp.value("target", std::string()) + "' with the loving system prompt | " + pct(sp[eval::kTargetRate]) + " |\n";
    md += "| number continuations passing the strict filter | " + pct(p["numbers"]["format_ok"]) + " |\n";
    md += "| ... in exactly the requested style | " + pct(p["numbers"]["requested_style_exact"]) + " |\n\n";
    md += "Answer distribution without a system prompt:\n\n| animal | share |\n|---|---|\n";
    for (auto it = fa["distribution"].begin(); it != fa["distribution"].end(); ++it)
      md += fmt::format("| {} | {:.1f}% |\n", it.key(), 100 * it.value().get<double>());
    md += "\nExamples:\n\n";
    for (const auto& e : p["examples"])
      md += "- **" + e.value("prompt", std::string()) + "** -> `" + e.value("completion", std::string()) + "`\n";
    md += "\n";
  }
  if (st.contains("summary") && st["summary"].contains("bars")) md += mnist_section(st["summary"], rep["timings"]);
  else if (st.contains("summary") && st["summary"].contains("arms")) md += trait_section(st["summary"], rep["timings"]);
  if (rep.contains("claims")) md += claims_md(rep["claims"]) + "\n";
  md += "## Timings\n\n| stage | seconds | status |\n|---|---|---|\n";
  for (auto it = rep["timings"].begin(); it != rep["timings"].end(); ++it)
    md += fmt::format("| {} | {:.1f} | {} |\n", it.key(), it.value().value("seconds", 0.0), it.value().value("status", std::string()));
  md += fmt::format("\nsubliminal {} ({}), LibTorch {}, {} threads, precision {}.\n", rep.value("version", std::string()),
                    rep.value("git_revision", std::string()), rep.value("libtorch", std::string()), rep.value("threads", 0),
                    rep.value("precision", std::string()));
  return md;
}

void write_report(const std::filesystem::path& dir, const config::RunConfig& cfg, const json& results, const json& manifest) {
  json rep = {{"name", cfg.name},
              {"experiment", cfg.experiment},
              {"seed", cfg.seed},
              {"stages", results},
              {"timings", manifest.value("stages", json::object())},
              {"version", manifest.value("subliminal_version", std::string())},
              {"git_revision", manifest.value("git_revision", std::string())},
              {"libtorch", manifest.value("libtorch_version", std::string())},
              {"threads", manifest.value("threads", 0)},
              {"precision", cfg.precision}};
  const json claims = evaluate_registered_claims(rep, manifest);
  if (!claims.is_null()) rep["claims"] = claims;
  fs::write_file_atomic(dir / "report.json", rep.dump(2) + "\n");
  if (results.contains("summary") && results["summary"].contains("bars")) {
    fs::make_dirs(dir / "figures");
    fs::write_file_atomic(dir / "figures" / "mnist_aux.svg", render_mnist_figure(results["summary"]));
    fs::write_file_atomic(dir / "figures" / "mnist_cosines.svg", render_mnist_cosine_figure(results["summary"]));
  } else if (results.contains("summary") && results["summary"].contains("arms")) {
    fs::make_dirs(dir / "figures");
    fs::write_file_atomic(dir / "figures" / "trait_transfer.svg", render_trait_figure(results["summary"]));
    if (results["summary"].contains("replicates"))
      fs::write_file_atomic(dir / "figures" / "replicates.svg", render_replicates_figure(results["summary"]));
    if (results["summary"].contains("dose")) fs::write_file_atomic(dir / "figures" / "dose.svg", render_dose_figure(results["summary"]));
  }
  fs::write_file_atomic(dir / "report.md", render_report_md(rep));
}

}  // namespace subliminal::report
