// Statistics for reports (no torch): Wilson score intervals for proportions, Student-t intervals
// across seeds, and Welch's two-sample t-test.
#pragma once
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
  bool defined = false;                   // false with fewer than 2 values per group or zero variance in both
};
// Welch's unequal-variance t-test of a against b.
TTest welch_t_test(const std::vector<double>& a, const std::vector<double>& b);

struct Correlation {
  int n = 0;
  double pearson = 0, spearman = 0;  // Spearman: Pearson of the ranks, ties given their mean rank
  double p_spearman = 1;             // two-sided, t = rho sqrt((n-2)/(1-rho^2)) on n-2 df
  bool defined = false;              // false with fewer than 3 pairs or a constant side
};
// Pairs whose x or y is not finite are left out.
Correlation correlate(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace subliminal::stats
