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

json audit_summary(const std::vector<double>& data, const std::vector<double>& reference, int permutations, uint64_t seed,
                   double flag_quantile) {
  const auto t = stats::permutation_test(data, reference, permutations, seed);
  const double thr = stats::quantile(reference, flag_quantile);
  auto above = [&](const std::vector<double>& xs) {
    return static_cast<int64_t>(std::count_if(xs.begin(), xs.end(), [&](double x) { return x > thr; }));
  };
  const int64_t flagged = above(data), ref_flagged = above(reference);
  const auto sd = stats::summarize(data), sr = stats::summarize(reference);
  const auto [flo, fhi] = stats::wilson_interval(flagged, static_cast<long>(data.size()));
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
          {"flag_quantile", flag_quantile},
          {"flag_threshold", thr},
          {"flagged", flagged},
          {"flagged_fraction", data.empty() ? 0.0 : static_cast<double>(flagged) / static_cast<double>(data.size())},
          {"flagged_fraction_ci95", {flo, fhi}},
          {"reference_flagged_fraction", reference.empty() ? 0.0 : static_cast<double>(ref_flagged) / static_cast<double>(reference.size())}};
}

}  // namespace subliminal::analysis
