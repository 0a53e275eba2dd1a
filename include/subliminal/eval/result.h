// The typed results of an evaluation, in the one place that spells their keys: the eval stages and
// the probe write them (eval.json, probe.json, the summary's "models"), the summary, the dose sweep,
// the aggregate and the report read them. No torch here: report/ includes it.
#pragma once
#include <nlohmann/json.hpp>

#include <utility>

namespace subliminal::eval {

// A proportion with its 95% interval: {"rate", "count", "n", "ci95": [lo, hi]}.
struct Rate {
  double rate = 0;
  long count = 0;
  long n = 0;
  double lo = 0, hi = 0;
};
inline void to_json(nlohmann::json& j, const Rate& r) {
  j = {{"rate", r.rate}, {"count", r.count}, {"n", r.n}, {"ci95", {r.lo, r.hi}}};
}
// "rate" is required; a reader that needs the others checks them (older and hand-made summaries
// may hold the rate alone).
inline void from_json(const nlohmann::json& j, Rate& r) {
  r.rate = j.at("rate").get<double>();
  r.count = j.value("count", 0L);
  r.n = j.value("n", 0L);
  if (j.contains("ci95")) {
    r.lo = j["ci95"].at(0).get<double>();
    r.hi = j["ci95"].at(1).get<double>();
  } else {
    r.lo = r.hi = r.rate;
  }
}

// The key of an evaluated model's headline rate: the target's (a preference trait's item in the
// answers, or the judge's misaligned answers).
inline constexpr const char* kTargetRate = "target_rate";
// An eval summary's (or a probe's) headline rate.
inline Rate target_rate(const nlohmann::json& summary) { return summary.at(kTargetRate).get<Rate>(); }

}  // namespace subliminal::eval
