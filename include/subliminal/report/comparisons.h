// The comparisons of a trait run's summary in their one JSON form (written by the summary stage, read
// by report.md, `subliminal check` and the aggregate): what is compared (a trained arm, or the
// untrained base), the unit of replication, the test, the estimate with its intervals and p-values,
// the variance terms, and the old Welch test across seed pairs beside it for comparison.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "subliminal/util/inference.h"
#include "subliminal/util/stats.h"

namespace subliminal::report {

inline constexpr const char* kCrossedTest =
    "t-test, two-way cluster-robust variance over models (seed pairs) and questions (Cameron-Gelbach-Miller), "
    "paired by question, Satterthwaite df";

// One side of a comparison: an arm of trained students, or one untrained model.
struct Side {
  std::string name;     // "treatment", "control", "base", "base_cross", "teacher"
  int models = 0;       // seed pairs (1: one model)
  bool trained = true;  // false: an untrained model (the base, or a control that is a distillation fixed point)
  std::string note;     // why, when it matters ("the control's students are the base: ...")
};

nlohmann::json comparison_json(const stats::Comparison& c, const Side& a, const Side& b, const std::string& unit,
                               const stats::TTest* welch_across_seed_pairs);
// The estimate part of a comparison_json (diff, se, df, defined): what claim ops test.
stats::Comparison comparison_from_json(const nlohmann::json& j);
nlohmann::json rate_json(const stats::RateEstimate& r);
// "treatment students (5 seed pairs)" / "the untrained base (1 model)"
std::string side_label(const nlohmann::json& side);

}  // namespace subliminal::report
