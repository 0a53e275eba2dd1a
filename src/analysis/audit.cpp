// The dataset audit: scores and their summary against a reference set.
#include "subliminal/analysis/audit.h"

#include <algorithm>
#include <numeric>
#include <random>

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

namespace {
// The means of consecutive k-blocks of a random permutation of xs (floor(n / k) bags).
std::vector<double> bag_means(const std::vector<double>& xs, int k, std::mt19937_64& rng) {
  std::vector<size_t> idx(xs.size());
  std::iota(idx.begin(), idx.end(), size_t(0));
  std::shuffle(idx.begin(), idx.end(), rng);
  std::vector<double> out(xs.size() / static_cast<size_t>(k), 0.0);
  for (size_t b = 0; b < out.size(); ++b) {
    for (int j = 0; j < k; ++j) out[b] += xs[idx[b * static_cast<size_t>(k) + static_cast<size_t>(j)]];
    out[b] /= k;
  }
  return out;
}
std::vector<double> resample(const std::vector<double>& xs, std::mt19937_64& rng) {
  std::uniform_int_distribution<size_t> u(0, xs.size() - 1);
  std::vector<double> out(xs.size());
  for (auto& x : out) x = xs[u(rng)];
  return out;
}
}  // namespace

json bag_audit(const std::vector<double>& data, const std::vector<double>& reference, const std::vector<int>& ks, uint64_t seed, int partitions,
               int resamples) {
  const std::vector<double> fprs = {0.01, 0.05, 0.1, 0.2};
  json out = json::array();
  for (int k : ks) {
    const size_t nd = data.size() / static_cast<size_t>(k), nr = reference.size() / static_cast<size_t>(k);
    json row = {{"k", k}, {"bags", nd}, {"reference_bags", nr}};
    if (nd < 2 || nr < 2) {
      row["defined"] = false;
      row["why"] = "fewer than 2 bags of " + std::to_string(k) + " in a set";
      out.push_back(row);
      continue;
    }
    std::mt19937_64 rng(seed ^ (0x5851f42d4c957f2dULL * static_cast<uint64_t>(k)));
    double auc = 0;
    std::vector<double> tpr(fprs.size(), 0.0), fpr(fprs.size(), 0.0);
    for (int p = 0; p < partitions; ++p) {
      const auto bd = bag_means(data, k, rng), br = bag_means(reference, k, rng);
      auc += stats::auroc(bd, br) / partitions;
      for (size_t i = 0; i < fprs.size(); ++i) {
        const double thr = stats::quantile(br, 1.0 - fprs[i]);
        tpr[i] += share_above(bd, thr) / partitions;
        fpr[i] += share_above(br, thr) / partitions;
      }
    }
    std::vector<double> boot;
    for (int b = 0; b < resamples; ++b) boot.push_back(stats::auroc(bag_means(resample(data, rng), k, rng), bag_means(resample(reference, rng), k, rng)));
    json roc = json::array();
    for (size_t i = 0; i < fprs.size(); ++i) roc.push_back({{"fpr_target", fprs[i]}, {"fpr", fpr[i]}, {"tpr", tpr[i]}});
    row.update({{"defined", true}, {"auroc", auc}, {"auroc_ci95", {stats::quantile(boot, 0.025), stats::quantile(boot, 0.975)}}, {"roc", roc}});
    out.push_back(row);
  }
  return out;
}

json audit_summary(const std::vector<double>& data, const std::vector<double>& reference, int permutations, uint64_t seed,
                   double flag_quantile, const std::vector<int>& bags) {
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
          {"reference_flagged_fraction", share_above(reference, thr)},
          {"bags", bags.empty() ? json::array() : bag_audit(data, reference, bags, seed ^ 0xb5ad4eceda1ce2a9ULL)},
          {"bags_method", "bags of k examples scored by their mean; disjoint random bags, AUROC and ROC points averaged over 20 random "
                          "partitions; 95% interval: percentile bootstrap over examples (400 resamples, each cut again)"}};
}

}  // namespace subliminal::analysis
