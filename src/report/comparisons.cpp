// The summary's comparisons as JSON: see comparisons.h.
#include "subliminal/report/comparisons.h"

#include <fmt/format.h>

namespace subliminal::report {

using json = nlohmann::json;

namespace {
json side_json(const Side& s) {
  json j = {{"name", s.name}, {"models", s.models}, {"trained", s.trained}};
  if (!s.note.empty()) j["note"] = s.note;
  return j;
}
}  // namespace

json comparison_json(const stats::Comparison& c, const Side& a, const Side& b, const std::string& unit, const stats::TTest* welch) {
  json j = {{"a", side_json(a)},
            {"b", side_json(b)},
            {"unit", unit},
            {"test", kCrossedTest},
            {"questions", c.questions},
            {"diff", c.diff},
            {"se", c.se},
            {"df", c.df},
            {"t", c.t},
            {"ci95", {c.lo, c.hi}},
            {"ci90", {c.lo90, c.hi90}},
            {"p_two_sided", c.p_two_sided},
            {"p_greater", c.p_greater},
            {"defined", c.defined},
            {"variance", {{"seed", c.v_seed}, {"question", c.v_question}, {"interaction", c.v_interaction}}}};
  j["compares"] = side_label(j["a"]) + " vs " + side_label(j["b"]);
  if (welch)
    j["welch_across_seed_pairs"] = {
        {"test", "Welch t-test of the seed pairs' rates (ignores question clustering; a one-model side counts its one rate once per seed pair)"},
        {"diff", welch->diff},
        {"t", welch->t},
        {"df", welch->df},
        {"ci95", {welch->lo, welch->hi}},
        {"p_two_sided", welch->p_two_sided},
        {"p_greater", welch->p_greater},
        {"defined", welch->defined}};
  return j;
}

stats::Comparison comparison_from_json(const json& j) {
  stats::Comparison c;
  c.diff = j.value("diff", 0.0);
  c.se = j.value("se", 0.0);
  c.df = j.value("df", 0.0);
  c.defined = j.value("defined", false) && c.se > 0 && c.df > 0;
  return c;
}

json rate_json(const stats::RateEstimate& r) {
  return {{"mean", r.mean}, {"se", r.se}, {"df", r.df}, {"ci95", {r.lo, r.hi}}, {"models", r.models},
          {"questions", r.questions}, {"defined", r.defined},
          {"interval", "t, two-way cluster-robust over models and questions"}};
}

std::string side_label(const json& s) {
  const std::string name = s.value("name", std::string("?"));
  const int n = s.value("models", 0);
  if (!s.value("trained", true)) return fmt::format("the untrained {} (1 model)", name == "control" ? "base, as control" : name);
  if (n == 1) return fmt::format("{} (1 model)", name);
  return fmt::format("{} students ({} seed pairs)", name, n);
}

}  // namespace subliminal::report
