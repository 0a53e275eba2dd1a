// The dataset audit: scores and their summary against a reference set.
#include "subliminal/analysis/audit.h"

#include <algorithm>

#include "subliminal/util/stats.h"

namespace subliminal::analysis {

using json = nlohmann::json;

std::vector<double> audit_scores(model::LlamaForCausalLM base, const std::string& trait_prompt, const text::Tokenizer& tok,
                                 const std::string& chat_template, const std::vector<data::Conversation>& convs, bool bf16) {
  return score_signal({base, trait_prompt}, {base, ""}, tok, chat_template, convs, bf16).lls();
}

namespace {
int64_t count_above(const std::vector<double>& xs, double thr) {
  return static_cast<int64_t>(std::count_if(xs.begin(), xs.end(), [&](double x) { return x > thr; }));
}
double share_above(const std::vector<double>& xs, double thr) {
  return xs.empty() ? 0.0 : static_cast<double>(count_above(xs, thr)) / static_cast<double>(xs.size());
}
double auroc_of(const std::vector<std::vector<double>>& g) { return stats::auroc(g[0], g[1]); }
}  // namespace

json roc_points(const std::vector<double>& data, const std::vector<double>& reference, const std::vector<double>& fprs) {
  json out = json::array();
  if (reference.empty()) return out;
  for (double f : fprs) {
    const double thr = stats::quantile(reference, 1.0 - f);
    out.push_back({{"fpr_target", f}, {"threshold", thr}, {"fpr", share_above(reference, thr)}, {"tpr", share_above(data, thr)}});
  }
  return out;
}

json audit_summary(const std::vector<double>& data, const std::vector<double>& reference, int permutations, uint64_t seed,
                   double flag_quantile) {
  const auto t = stats::permutation_test(data, reference, permutations, seed);
  const double thr = stats::quantile(reference, flag_quantile);
  const int64_t flagged = count_above(data, thr);
  const auto sd = stats::summarize(data), sr = stats::summarize(reference);
  const auto [flo, fhi] = stats::wilson_interval(flagged, static_cast<long>(data.size()));
  std::pair<double, double> auc_ci{0.5, 0.5};
  if (!data.empty() && !reference.empty()) auc_ci = stats::bootstrap_interval({data, reference}, auroc_of, 2000, seed ^ 0x9e3779b97f4a7c15ULL);
  return {{"n", data.size()},
          {"reference_n", reference.size()},
          {"mean_score", sd.mean},
          {"mean_score_ci95", {sd.lo, sd.hi}},
          {"reference_mean_score", sr.mean},
          {"diff", t.diff},
          {"p_permutation", t.p_greater},
          {"permutations", permutations},
          {"test", "one-sided permutation test of mean(data) > mean(reference), p = (1 + #>=) / (1 + permutations)"},
          {"auroc", stats::auroc(data, reference)},
          {"auroc_ci95", {auc_ci.first, auc_ci.second}},
          {"auroc_interval", "percentile bootstrap, 2000 resamples of each set"},
          {"roc", roc_points(data, reference)},
          {"flag_quantile", flag_quantile},
          {"flag_threshold", thr},
          {"flagged", flagged},
          {"flagged_fraction", share_above(data, thr)},
          {"flagged_fraction_ci95", {flo, fhi}},
          {"reference_flagged_fraction", share_above(reference, thr)}};
}

}  // namespace subliminal::analysis
