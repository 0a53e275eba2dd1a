// Statistics against known values: Student-t quantiles and intervals, Welch's test, Wilson intervals.
#include <gtest/gtest.h>
#include <torch/torch.h>

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
