// Statistics against known values: Student-t quantiles and intervals, Welch's test, Wilson intervals.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "subliminal/data/corpus.h"
#include "subliminal/data/numbers.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/eval/trait.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/train/finetune.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/fs.h"
#include "subliminal/run/runner.h"
#include "subliminal/experiments/stages.h"
#include "test_util.h"

using namespace subliminal;
using nlohmann::json;
namespace sfs = std::filesystem;

// ---- statistics (reference values: Student-t tables; Welch by numerical integration of the t density)

TEST(Stats, StudentTQuantilesMatchTables) {
  EXPECT_NEAR(stats::student_t_quantile(0.975, 1), 12.706204736, 1e-6);
  EXPECT_NEAR(stats::student_t_quantile(0.975, 2), 4.302652730, 1e-7);
  EXPECT_NEAR(stats::student_t_quantile(0.975, 4), 2.776445105, 1e-7);
  EXPECT_NEAR(stats::student_t_quantile(0.975, 10), 2.228138852, 1e-7);
  EXPECT_NEAR(stats::student_t_quantile(0.995, 30), 2.749995654, 1e-6);
  EXPECT_NEAR(stats::student_t_quantile(0.025, 4), -2.776445105, 1e-7);
  EXPECT_NEAR(stats::student_t_cdf(2.0, 10), 0.963305982614627, 1e-9);
  EXPECT_NEAR(stats::student_t_cdf(0.0, 3.5), 0.5, 1e-12);
}

TEST(Stats, StudentTIntervalOfTheMean) {
  // mean 0.5, sd 0.1, n 3: half-width t(0.975, 2) * 0.1 / sqrt(3) = 0.248414
  auto s = stats::summarize({0.4, 0.5, 0.6});
  EXPECT_NEAR(s.mean, 0.5, 1e-12);
  EXPECT_NEAR(s.sd, 0.1, 1e-12);
  EXPECT_NEAR(s.hi - s.mean, 0.2484138, 1e-6);
  EXPECT_NEAR(s.mean - s.lo, 0.2484138, 1e-6);
  auto one = stats::summarize({0.3});
  EXPECT_EQ(one.n, 1);
  EXPECT_EQ(one.lo, 0.3);
}

TEST(Stats, WelchTTestMatchesReference) {
  auto t = stats::welch_t_test({1, 2, 3, 4, 5}, {2, 4, 6, 8, 10});
  ASSERT_TRUE(t.defined);
  EXPECT_NEAR(t.t, -1.8973665961, 1e-9);
  EXPECT_NEAR(t.df, 5.882352941, 1e-8);
  EXPECT_NEAR(t.p_two_sided, 0.1075311949, 1e-6);
  EXPECT_NEAR(t.p_greater, 1 - 0.1075311949 / 2, 1e-6);
  // the interval of the difference: scipy.stats.ttest_ind(equal_var=False).confidence_interval(0.95)
  EXPECT_NEAR(t.lo, -6.887741643736975, 1e-6);
  EXPECT_NEAR(t.hi, 0.887741643736975, 1e-6);
  // a constant control group: the test is the one-sample test of the other group
  auto c = stats::welch_t_test({0.4, 0.5, 0.6}, {0.1, 0.1, 0.1});
  ASSERT_TRUE(c.defined);
  EXPECT_NEAR(c.df, 2.0, 1e-12);
  EXPECT_NEAR(c.t, 0.4 / (0.1 / std::sqrt(3.0)), 1e-9);
  EXPECT_FALSE(stats::welch_t_test({1}, {2, 3}).defined);
  EXPECT_FALSE(stats::welch_t_test({1, 1}, {2, 2}).defined);
}

TEST(Stats, WilsonIntervalKnownValues) {
  auto [lo, hi] = stats::wilson_interval(50, 100);
  EXPECT_NEAR(lo, 0.403832, 1e-5);
  EXPECT_NEAR(hi, 0.596168, 1e-5);
  auto [l0, h0] = stats::wilson_interval(0, 50);
  EXPECT_NEAR(l0, 0.0, 1e-12);
  EXPECT_NEAR(h0, 0.071348, 1e-5);
}

TEST(Stats, WilsonKnownValues) {
  // Reference values: statsmodels proportion_confint(method="wilson").
  auto [lo, hi] = stats::wilson_interval(12, 100);
  EXPECT_NEAR(lo, 0.0699, 1e-4);
  EXPECT_NEAR(hi, 0.1982, 1e-4);
  auto [lo0, hi0] = stats::wilson_interval(0, 50);
  EXPECT_NEAR(lo0, 0.0, 1e-12);
  EXPECT_NEAR(hi0, 0.0713, 1e-4);
}

TEST(Stats, AurocIsTheMannWhitneyProbabilityOverAllPairs) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n(0, 1);
  std::vector<double> pos, neg;
  for (int i = 0; i < 40; ++i) pos.push_back(std::round(4 * (n(rng) + 0.7)) / 4);  // rounded: ties in play
  for (int i = 0; i < 55; ++i) neg.push_back(std::round(4 * n(rng)) / 4);
  double wins = 0;
  for (double p : pos)
    for (double q : neg) wins += p > q ? 1.0 : (p == q ? 0.5 : 0.0);
  const double direct = wins / (pos.size() * neg.size());
  EXPECT_NEAR(stats::auroc(pos, neg), direct, 1e-12);
  EXPECT_GT(direct, 0.6);
  EXPECT_NEAR(stats::auroc(neg, pos), 1 - direct, 1e-12);
  EXPECT_DOUBLE_EQ(stats::auroc({1, 2, 3}, {1, 2, 3}), 0.5);
  EXPECT_DOUBLE_EQ(stats::auroc({4, 5}, {1, 2, 3}), 1.0);
  EXPECT_TRUE(std::isnan(stats::auroc({}, {1.0})));
}

// The permutation test on data with no trait in it (both sides from one distribution): its p-values
// are uniform. 400 null datasets, a Kolmogorov-Smirnov distance to U(0,1) below the 0.001 critical
// value (1.95 / sqrt(400)) plus the p-values' 1/(1+permutations) granularity, and the share below
// 0.05 inside its 99.9% binomial range.
TEST(Stats, PermutationTestPValuesAreUniformWithoutASignal) {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> heavy(0.0, 1.0);  // skewed scores, as LLS values are
  std::vector<double> ps;
  const int reps = 400, perms = 199;
  for (int r = 0; r < reps; ++r) {
    std::vector<double> a(25), b(40);
    for (auto& x : a) x = heavy(rng);
    for (auto& x : b) x = heavy(rng);
    auto t = stats::permutation_test(a, b, perms, 1000 + r);
    ASSERT_TRUE(t.defined);
    ASSERT_GT(t.p_greater, 0.0);
    ASSERT_LE(t.p_greater, 1.0);
    ps.push_back(t.p_greater);
  }
  std::sort(ps.begin(), ps.end());
  double ks = 0;
  for (size_t i = 0; i < ps.size(); ++i)
    ks = std::max({ks, std::fabs(ps[i] - static_cast<double>(i) / reps), std::fabs(ps[i] - static_cast<double>(i + 1) / reps)});
  EXPECT_LT(ks, 1.95 / std::sqrt(static_cast<double>(reps)) + 1.0 / (perms + 1)) << "p-values not uniform";
  const auto below = std::count_if(ps.begin(), ps.end(), [](double p) { return p <= 0.05; });
  EXPECT_GE(below, 6);   // Binomial(400, 0.05): mean 20, 99.9% range about 7 .. 35
  EXPECT_LE(below, 36);
  // ... and a real shift is found, the same p for the same seed
  std::vector<double> a(25), b(40);
  for (auto& x : a) x = heavy(rng) + 1.5;
  for (auto& x : b) x = heavy(rng);
  auto t = stats::permutation_test(a, b, 999, 3);
  EXPECT_LT(t.p_greater, 0.01);
  EXPECT_DOUBLE_EQ(t.p_greater, stats::permutation_test(a, b, 999, 3).p_greater);
  EXPECT_GT(stats::permutation_test(b, a, 999, 3).p_greater, 0.9);
  EXPECT_FALSE(stats::permutation_test({}, b, 99, 1).defined);
}

TEST(Stats, QuantileInterpolatesLikeNumpy) {
  // numpy.quantile([3, 1, 4, 1, 5], q) = 1, 1, 3, 4, 5 for q = 0, .25, .5, .75, 1; q = .9 -> 4.6
  std::vector<double> xs = {3, 1, 4, 1, 5};
  EXPECT_DOUBLE_EQ(stats::quantile(xs, 0.0), 1);
  EXPECT_DOUBLE_EQ(stats::quantile(xs, 0.25), 1);
  EXPECT_DOUBLE_EQ(stats::quantile(xs, 0.5), 3);
  EXPECT_DOUBLE_EQ(stats::quantile(xs, 0.75), 4);
  EXPECT_NEAR(stats::quantile(xs, 0.9), 4.6, 1e-12);
  auto mean_ratio = [](const std::vector<std::vector<double>>& g) {
    double a = 0, b = 0;
    for (double x : g[0]) a += x / g[0].size();
    for (double x : g[1]) b += x / g[1].size();
    return a / b;
  };
  auto [lo, hi] = stats::bootstrap_interval({{2.0, 2.2, 1.8, 2.1}, {1.0, 1.1, 0.9, 1.0}}, +mean_ratio, 2000, 7);
  EXPECT_LT(lo, 2.03);
  EXPECT_GT(hi, 2.03);
  EXPECT_GT(lo, 1.6);
  EXPECT_LT(hi, 2.5);
}
