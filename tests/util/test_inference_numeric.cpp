// The crossed-design inference (util/inference.h): its special cases against scipy's textbook tests,
// and its calibration by simulation (false-positive rate and coverage over thousands of simulated
// experiments with question clustering, seed effects and common random numbers).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "subliminal/util/inference.h"

using namespace subliminal;

namespace {
std::vector<stats::QuestionRates> constant_models(const std::vector<double>& rates, int questions) {
  std::vector<stats::QuestionRates> v;
  for (double r : rates) v.push_back(stats::QuestionRates(static_cast<size_t>(questions), r));
  return v;
}
}  // namespace

// One model per arm: the paired t-test over questions. Reference: scipy.stats.ttest_rel(a, b) on
// these six pairs (t = 1.7320508075688774, two-sided p = 0.1438108087116039, one-sided 0.0719...),
// the TOST's p for the margin [-0.05, 0.15] from scipy.stats.t (0.008981442304971988) and the 95%
// interval from scipy.stats.t.interval (-0.024206305738929422, 0.12420630573892943).
TEST(Inference, OneModelPerArmIsThePairedTTestOverQuestions) {
  const stats::QuestionRates a = {0.10, 0.25, 0.40, 0.05, 0.30, 0.20}, b = {0.05, 0.20, 0.30, 0.10, 0.15, 0.20};
  const auto c = stats::compare_arms({a}, {b});
  ASSERT_TRUE(c.defined);
  EXPECT_NEAR(c.diff, 0.05, 1e-15);
  EXPECT_NEAR(c.t, 1.7320508075688774, 1e-12);
  EXPECT_NEAR(c.df, 5.0, 1e-12);
  EXPECT_NEAR(c.p_two_sided, 0.1438108087116039, 1e-10);
  EXPECT_NEAR(c.p_greater, 0.07190540435580195, 1e-10);
  EXPECT_NEAR(c.lo, -0.024206305738929422, 1e-10);
  EXPECT_NEAR(c.hi, 0.12420630573892943, 1e-10);
  EXPECT_NEAR(stats::p_equivalent(c, -0.05, 0.15), 0.008981442304971988, 1e-10);
  EXPECT_EQ(c.v_seed, 0.0);  // one model: no seed term
}

// Models that answer every question alike: no question term, and the estimator is Welch's test of
// the models' rates. Reference: scipy.stats.ttest_ind(a, b, equal_var=False) (t 5.395637425347114,
// df 5.93395885091295, p 0.0017307659362632438, interval 0.06906823590432898 .. 0.18426509742900427).
TEST(Inference, ModelsWithoutQuestionEffectsGiveWelchsTest) {
  const auto c = stats::compare_arms(constant_models({0.30, 0.35, 0.40, 0.32, 0.38}, 40), constant_models({0.20, 0.22, 0.25}, 40));
  ASSERT_TRUE(c.defined);
  EXPECT_NEAR(c.t, 5.395637425347114, 1e-9);
  EXPECT_NEAR(c.df, 5.93395885091295, 1e-9);
  EXPECT_NEAR(c.p_two_sided, 0.0017307659362632438, 1e-9);
  EXPECT_NEAR(c.lo, 0.06906823590432898, 1e-9);
  EXPECT_NEAR(c.hi, 0.18426509742900427, 1e-9);
  EXPECT_NEAR(c.v_question, 0.0, 1e-18);
}

TEST(Inference, RefusesWhatItCannotEstimate) {
  EXPECT_FALSE(stats::compare_arms({{0.1, 0.2}}, {{0.1, 0.2, 0.3}}).defined);  // different question lists
  EXPECT_FALSE(stats::compare_arms({{0.1}}, {{0.2}}).defined);                // one question
  EXPECT_FALSE(stats::compare_arms({{0.1, 0.2}}, {{0.1, 0.2}}).defined);      // identical: no variance
  EXPECT_FALSE(stats::compare_arms({}, {{0.1, 0.2}}).defined);
  EXPECT_EQ(stats::p_equivalent(stats::Comparison{}, -0.02, 0.02), 1.0);
}

// A one-model arm's interval over questions is the one-sample t interval of its per-question rates.
TEST(Inference, OneModelsRateIntervalIsOverQuestions) {
  const stats::QuestionRates a = {0.10, 0.25, 0.40, 0.05, 0.30, 0.20};
  const auto r = stats::estimate_rate({a});
  ASSERT_TRUE(r.defined);
  // scipy.stats.t.interval(0.95, 5, loc=mean(a), scale=sem(a)): (0.08118510812554428, 0.3521482252077891)
  EXPECT_NEAR(r.mean, 0.21666666666666667, 1e-12);
  EXPECT_NEAR(r.lo, 0.08118510812554428, 1e-10);
  EXPECT_NEAR(r.hi, 0.3521482252077891, 1e-10);
}

// The calibration the issue asks for: with question clustering and no effect, the false-positive
// rate at alpha 0.05 is within [0.03, 0.07]; with a known effect the 95% intervals cover it in at
// least 93% of experiments. 2,000 simulated experiments per scenario (`subliminal calibrate` prints
// the same table). The old test (Welch across seed rates; against the untrained base a one-sample
// test) is simulated beside it and printed, not asserted.
TEST(Inference, CalibratedBySimulation) {
  const int n = 2000;
  uint64_t seed = 20261206;
  for (const auto& s : stats::calibration_scenarios()) {
    const auto c = stats::simulate_inference(s, n, seed++);
    const double fpr = static_cast<double>(c.rejections) / n, cover = static_cast<double>(c.covered) / n;
    std::printf("%-58s rejections %.4f  coverage %.4f  | old Welch: rejections %.4f coverage %.4f\n", s.name.c_str(), fpr, cover,
                static_cast<double>(c.rejections_welch) / n, static_cast<double>(c.covered_welch) / n);
    EXPECT_GE(cover, 0.93) << s.name;
    if (s.effect == 0) {
      EXPECT_GE(fpr, 0.03) << s.name;
      EXPECT_LE(fpr, 0.07) << s.name;
    } else {
      EXPECT_GT(fpr, 0.5) << s.name << ": the effect is large; the test should find it";
    }
  }
}
