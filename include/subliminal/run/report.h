// report.json and report.md at the top of a run directory, computed from the stages' results.
#pragma once
#include <nlohmann/json.hpp>

#include "subliminal/run/runner.h"

namespace subliminal::run {
void write_report(const RunContext& ctx, const nlohmann::json& results, const nlohmann::json& manifest);
std::string render_report_md(const nlohmann::json& report);
}  // namespace subliminal::run
