// `subliminal report`: aggregates finished trait-transfer runs (several seeds, animals, settings)
// into one table per trait — every arm's mean over all student seed pairs of all runs with a
// Student-t 95% interval, the base and teacher rates, Welch tests against the control — written as
// JSON, CSV, Markdown and a grouped bar chart (SVG, and PNG where rsvg-convert exists).
// `subliminal check`: asserts claims about such a report (or a single run's report.json).
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace subliminal::report {

// `paths`: run directories, or sweep directories (their runs/*). Runs that are not finished
// trait-transfer or MNIST runs are listed under "skipped" with the reason. MNIST runs ("mnist") are
// pooled per setting: the run's name without its "seed-N" parts.
nlohmann::json aggregate_runs(const std::vector<std::string>& paths);
// The run directories behind `paths`: a sweep directory stands for its runs/* (sorted), any other
// directory for itself; a path that is not a directory is a ConfigError.
std::vector<std::filesystem::path> expand_run_dirs(const std::vector<std::string>& paths);
// A run directory's report.json "stages.summary" (null when the report has none); a missing
// report.json is recorded in `skipped` with its reason and gives null; invalid JSON is a DataError.
nlohmann::json read_run_summary(const std::filesystem::path& dir, nlohmann::json& skipped);
std::string aggregate_markdown(const nlohmann::json& agg);
std::string aggregate_csv(const nlohmann::json& agg);
std::string aggregate_figure_svg(const nlohmann::json& agg);        // per trait: base and arms
std::string aggregate_mnist_figure_svg(const nlohmann::json& agg);  // MNIST runs: accuracy per setting and arm

// Expectation file: {"claims": [{"name": "...", "path": "targets.owl.tests.treatment_vs_control.p_greater",
//   "op": "<", "value": 0.01}, {"path": "targets.*.arms.treatment.mean", "op": ">", "path2":
//   "targets.*.arms.control.mean"}, {"path": "...cross_init.mean", "op": "within", "path2": "...control.ci95"}]}
// ops: < <= > >= == within (value or path2 an interval [lo, hi]). "*" in a path: every key there
// (path2's "*" takes the same key). A missing path fails the claim.
struct ClaimResult {
  std::string name;
  bool ok = false;
  std::string detail;  // the values compared
};
std::vector<ClaimResult> check_claims(const nlohmann::json& report, const nlohmann::json& expect, const std::string& expect_file);

}  // namespace subliminal::report
