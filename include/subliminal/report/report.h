// report.json and report.md at the top of a run directory, computed from the stages' results.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>

#include "subliminal/config/config.h"
#include "subliminal/eval/result.h"

namespace subliminal::report {
// Shared by the reports: "Treatment", "Cross-init", ...; p-values as 0.0045 or 8.7e-05; SVG text.
const char* arm_short(const std::string& arm);
std::string fmt_p(double p);
std::string xml_escape(const std::string& s);
// A single model's rate in a summary with the interval made for it: over questions where the summary
// has one (`how` says which), else the eval's Wilson interval.
eval::Rate model_rate(const nlohmann::json& m, std::string* how = nullptr);

void write_report(const std::filesystem::path& dir, const config::RunConfig& cfg, const nlohmann::json& results,
                  const nlohmann::json& manifest);
std::string render_report_md(const nlohmann::json& report);
// The paper-style bar chart of a trait-transfer summary (SVG): base, teacher, and each student arm
// (mean across seed pairs with its Student-t 95% interval, seeds as dots), dotted line at the base rate.
std::string render_trait_figure(const nlohmann::json& summary);
// A pooled summary over replicates: a table of each replicate on its own (seed, target, rates, its
// comparisons with the test inside the replicate).
std::string replicates_md(const nlohmann::json& summary);
// A pooled summary over replicates: each replicate's comparisons and the pooled one, as a forest plot.
std::string render_replicates_figure(const nlohmann::json& summary);
// finetune.snapshots: every arm's rate (95% CI) against the training rows, log scale.
std::string render_dose_figure(const nlohmann::json& summary);
// The MNIST experiment's figures: test accuracy per arm (the paper's bar chart) and the per-model
// cosines between student and teacher updates.
std::string render_mnist_figure(const nlohmann::json& summary);
std::string render_mnist_cosine_figure(const nlohmann::json& summary);
}  // namespace subliminal::report
