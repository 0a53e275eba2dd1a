// Statistics for reports (no torch): Wilson score intervals for proportions, Student-t intervals
// across seeds, and Welch's two-sample t-test.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace subliminal::stats {

// 95% (z = 1.959964) Wilson score interval for k successes of n.
std::pair<double, double> wilson_interval(long k, long n, double z = 1.959963984540054);

// Regularized incomplete beta I_x(a, b) (continued fraction, Numerical Recipes 6.4).
double incomplete_beta(double a, double b, double x);
// Student-t with `df` degrees of freedom (df may be fractional): CDF and quantile.
double student_t_cdf(double t, double df);
double student_t_quantile(double p, double df);

struct Summary {
  int n = 0;
  double mean = 0, sd = 0;   // sd with n-1 in the denominator (0 when n < 2)
  double lo = 0, hi = 0;     // 95% Student-t interval of the mean (= mean when n < 2)
};
Summary summarize(const std::vector<double>& xs, double level = 0.95);

struct TTest {
  double t = 0, df = 0;
  double p_two_sided = 1, p_greater = 1;  // H1: mean(a) != mean(b); H1: mean(a) > mean(b)
  double diff = 0;
  double lo = 0, hi = 0;                  // 95% Welch interval of diff (= diff when not defined)
  bool defined = false;                   // false with fewer than 2 values per group or zero variance in both
};
// Welch's unequal-variance t-test of a against b.
TTest welch_t_test(const std::vector<double>& a, const std::vector<double>& b);

struct Correlation {
  int n = 0;
  double pearson = 0, spearman = 0;  // Spearman: Pearson of the ranks, ties given their mean rank
  double p_spearman = 1;             // two-sided: exact (permutations) for n <= 10, else t = rho sqrt((n-2)/(1-rho^2)) on n-2 df
  bool p_spearman_exact = false;
  bool defined = false;              // false with fewer than 3 pairs or a constant side
};
inline constexpr int kSpearmanExactMax = 10;
// Pairs whose x or y is not finite are left out.
Correlation correlate(const std::vector<double>& x, const std::vector<double>& y);

// Area under the ROC curve of a score that should rank `pos` above `neg`: the Mann-Whitney
// probability P(score_pos > score_neg) + 0.5 P(tie), from the ranks (ties given their mean rank).
// NaN when a side is empty.
double auroc(const std::vector<double>& pos, const std::vector<double>& neg);

// One-sided permutation test of H1: mean(a) > mean(b). The pooled values are re-split at random
// `permutations` times (a std::mt19937_64 seeded with `seed`: the same call gives the same p);
// p = (1 + #{permuted difference >= observed}) / (1 + permutations), the add-one estimate that is
// never 0 and is valid (P(p <= alpha) <= alpha under exchangeability).
struct PermutationTest {
  double diff = 0;          // mean(a) - mean(b)
  double p_greater = 1;
  int permutations = 0;
  bool defined = false;     // false when a side is empty
};
PermutationTest permutation_test(const std::vector<double>& a, const std::vector<double>& b, int permutations, uint64_t seed);

// The q-quantile (0..1) of xs by linear interpolation between order statistics (numpy's default).
double quantile(std::vector<double> xs, double q);

// Percentile-bootstrap 95% interval of f over resamples of each group (every group resampled with
// replacement, `reps` times, seeded): for ratios of means across seeds, where no closed form holds.
std::pair<double, double> bootstrap_interval(const std::vector<std::vector<double>>& groups,
                                             double (*f)(const std::vector<std::vector<double>>&), int reps, uint64_t seed);

}  // namespace subliminal::stats
