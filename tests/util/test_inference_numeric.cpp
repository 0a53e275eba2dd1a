// The crossed-design inference (util/inference.h): its special cases against scipy's textbook tests,
// and its calibration by simulation (false-positive rate and coverage over thousands of simulated
// experiments with question clustering, seed effects and common random numbers).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

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

// Replicates that differ only in their difference (the same question pattern in both sides of
// every replicate, which cancels): the replicate test is the one-sample t-test of the replicates'
// differences. Reference: scipy.stats.ttest_1samp([0.10, 0.14, 0.21, 0.12], 0) (t 5.953455833684868,
// two-sided p 0.009478103470277893, greater 0.0047390517351389464), scipy.stats.t.interval at 95%
// (0.06632599095855941, 0.21867400904144063) and 90% (0.0861706513279542, 0.1988293486720458).
// Each replicate's own level (0.05 .. 0.30) differs: paired by replicate, it cancels too.
TEST(Inference, ReplicatesWithoutQuestionEffectsGiveTheOneSampleTTestOfTheirDifferences) {
  const std::vector<double> delta = {0.10, 0.14, 0.21, 0.12}, level = {0.05, 0.30, 0.12, 0.20};
  const std::vector<double> pattern = {0.00, 0.10, 0.05, 0.20, 0.15, 0.02};
  std::vector<stats::QuestionRates> a, b;
  for (size_t r = 0; r < delta.size(); ++r) {
    stats::QuestionRates ar, br;
    for (double p : pattern) {
      br.push_back(level[r] + p);
      ar.push_back(level[r] + p + delta[r]);
    }
    a.push_back(ar);
    b.push_back(br);
  }
  const auto c = stats::compare_replicates(a, b);
  ASSERT_TRUE(c.defined);
  EXPECT_NEAR(c.diff, 0.1425, 1e-12);
  EXPECT_NEAR(c.t, 5.953455833684868, 1e-9);
  EXPECT_NEAR(c.df, 3.0, 1e-9);
  EXPECT_NEAR(c.p_two_sided, 0.009478103470277893, 1e-9);
  EXPECT_NEAR(c.p_greater, 0.0047390517351389464, 1e-9);
  EXPECT_NEAR(c.lo, 0.06632599095855941, 1e-9);
  EXPECT_NEAR(c.hi, 0.21867400904144063, 1e-9);
  EXPECT_NEAR(c.lo90, 0.0861706513279542, 1e-9);
  EXPECT_NEAR(c.hi90, 0.1988293486720458, 1e-9);
  // not paired by replicate (compare_arms over the replicate means) the levels' spread swamps it
  EXPECT_GT(stats::compare_arms(a, b).p_two_sided, c.p_two_sided);
}

// Replicates that agree exactly: no replicate term, and the test is the one-sample t-test over
// questions of the common difference. Reference: scipy.stats.ttest_1samp([0.05, 0.15, 0.10, 0.20,
// 0.00], 0) (t 2.8284271247461903, two-sided p 0.04742065558431959).
TEST(Inference, AgreeingReplicatesGiveTheTTestOverQuestions) {
  const stats::QuestionRates e = {0.05, 0.15, 0.10, 0.20, 0.00};
  std::vector<stats::QuestionRates> a, b;
  for (double level : {0.1, 0.3}) {
    stats::QuestionRates ar, br;
    for (double x : e) {
      br.push_back(level);
      ar.push_back(level + x);
    }
    a.push_back(ar);
    b.push_back(br);
  }
  const auto c = stats::compare_replicates(a, b);
  ASSERT_TRUE(c.defined);
  EXPECT_NEAR(c.t, 2.8284271247461903, 1e-9);
  EXPECT_NEAR(c.df, 4.0, 1e-9);
  EXPECT_NEAR(c.p_two_sided, 0.04742065558431959, 1e-9);
}

TEST(Inference, TheReplicateTestRefusesOneReplicateAndUnpairedSides) {
  EXPECT_FALSE(stats::compare_replicates({{0.3, 0.4}}, {{0.1, 0.2}}).defined);                 // one replicate
  EXPECT_FALSE(stats::compare_replicates({{0.3, 0.4}, {0.3, 0.5}}, {{0.1, 0.2}}).defined);     // sides of different replicates
  EXPECT_FALSE(stats::compare_replicates({{0.3, 0.4}, {0.3}}, {{0.1, 0.2}, {0.1}}).defined);   // different question lists
}

// Calibration of the replicate test by simulation, independent of simulate_inference: R replicates
// with a replicate effect on the difference (sd 0.04: bases and animals differ), question
// difficulty, arm x question interaction and binomial sampling of m answers per question from one
// set of uniforms per replicate (common random numbers). Without an effect the two-sided test at
// 0.05 must reject in 3% to 7% of experiments; the 95% interval must cover the true effect in at
// least 93%. With R = 3 and 6.
TEST(Inference, ReplicateTestCalibratedBySimulation) {
  const int n = 2000, Q = 50, M = 20;
  std::mt19937_64 rng(20261207);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int R : {3, 6})
    for (double effect : {0.0, 0.08}) {
      int rejections = 0, covered = 0;
      for (int e = 0; e < n; ++e) {
        std::vector<double> difficulty(Q), inter(Q);
        for (int q = 0; q < Q; ++q) {
          difficulty[q] = 0.05 + 0.10 * unit(rng);
          inter[q] = 0.02 * normal(rng);
        }
        std::vector<stats::QuestionRates> a, b;
        for (int r = 0; r < R; ++r) {
          const double u = 0.04 * normal(rng), level = 0.03 * normal(rng);
          stats::QuestionRates ar(Q, 0.0), br(Q, 0.0);
          for (int q = 0; q < Q; ++q) {
            const double pb = std::clamp(difficulty[q] + level + 0.02 * normal(rng), 0.0, 1.0);
            const double pa = std::clamp(pb + effect + u + inter[q] + 0.02 * normal(rng), 0.0, 1.0);
            for (int m = 0; m < M; ++m) {
              const double x = unit(rng);  // one uniform for both sides' m-th answer
              ar[q] += (x < pa) / static_cast<double>(M);
              br[q] += (x < pb) / static_cast<double>(M);
            }
          }
          a.push_back(ar);
          b.push_back(br);
        }
        const auto c = stats::compare_replicates(a, b);
        rejections += c.defined && c.p_two_sided < 0.05;
        covered += c.defined && c.lo <= effect && effect <= c.hi;
      }
      const double rate = static_cast<double>(rejections) / n, cover = static_cast<double>(covered) / n;
      std::printf("replicates %d effect %.2f: rejections %.4f coverage %.4f\n", R, effect, rate, cover);
      EXPECT_GE(cover, 0.93) << R << " replicates, effect " << effect;
      if (effect == 0) {
        EXPECT_GE(rate, 0.03) << R;
        EXPECT_LE(rate, 0.07) << R;
      }
    }
}
