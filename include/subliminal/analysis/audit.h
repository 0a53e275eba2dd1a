// `subliminal audit`: does a dataset carry a suspected trait? Every example is scored by its
// likelihood ratio under the base with and without the trait's system prompt
//   score = log P_base(response | trait prompt) - log P_base(response | no prompt),
// summed over the response tokens. The dataset's statistic is the mean score, tested against a
// reference set (data the base writes without the trait) by a one-sided permutation test; the
// examples above the reference's `flag_quantile` are flagged; the AUROC says how well the score
// tells the two sets apart example by example.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "subliminal/analysis/signal.h"

namespace subliminal::analysis {

std::vector<double> audit_scores(model::LlamaForCausalLM base, const std::string& trait_prompt, const text::Tokenizer& tok,
                                 const std::string& chat_template, const std::vector<data::Conversation>& convs, bool bf16);

// Points of the ROC curve: for each target false-positive rate f, the threshold is the reference's
// (1 - f) quantile; tpr is the share of `data` above it, fpr the share of `reference` above it.
nlohmann::json roc_points(const std::vector<double>& data, const std::vector<double>& reference,
                          const std::vector<double>& fprs = {0.01, 0.05, 0.1, 0.2});

// Bags of k examples: an auditor who sees k examples at once scores their mean. For each k, each set
// is cut at random into floor(n / k) disjoint bags; the AUROC of data bags against reference bags and
// the ROC points (thresholds at the reference bags' quantiles) are averaged over `partitions` random
// cuts; the 95% interval is a percentile bootstrap over examples (each set resampled, then cut
// again). A k that leaves either set fewer than 2 bags is reported as undefined.
nlohmann::json bag_audit(const std::vector<double>& data, const std::vector<double>& reference, const std::vector<int>& ks, uint64_t seed,
                         int partitions = 20, int resamples = 400);

// The statistic, p-value, AUROC and flags of `data` against `reference` (no model: tested on its own);
// with `bags`, bag_audit's table under "bags".
nlohmann::json audit_summary(const std::vector<double>& data, const std::vector<double>& reference, int permutations, uint64_t seed,
                             double flag_quantile, const std::vector<int>& bags = {});

}  // namespace subliminal::analysis
