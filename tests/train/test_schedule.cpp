// LR schedules and batching.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "subliminal/data/chat.h"
#include "subliminal/data/corpus.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/train/schedule.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/llama.h"
#include "test_util.h"

using namespace subliminal;


TEST(Schedule, WarmupThenCosine) {
  config::TrainConfig c;
  c.steps = 100;
  c.warmup_steps = 10;
  c.lr = 1.0;
  c.min_lr_ratio = 0.1;
  EXPECT_NEAR(train::lr_at(0, c), 0.1, 1e-12);
  EXPECT_NEAR(train::lr_at(9, c), 1.0, 1e-12);
  EXPECT_NEAR(train::lr_at(10, c), 1.0, 1e-12);
  EXPECT_NEAR(train::lr_at(55, c), 0.55, 1e-12);  // half-way through the cosine
  EXPECT_NEAR(train::lr_at(100, c), 0.1, 1e-12);
  for (int s = 11; s < 100; ++s) EXPECT_LE(train::lr_at(s, c), train::lr_at(s - 1, c));
}

TEST(Schedule, BatchesCoverEveryExampleOnceWithLittlePadding) {
  std::vector<int> lens;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 5000; ++i) lens.push_back(20 + static_cast<int>(rng() % 100));
  auto b = train::make_batches(lens, 64, 3, 0);
  std::multiset<int64_t> seen;
  for (const auto& x : b) seen.insert(x.begin(), x.end());
  EXPECT_EQ(seen.size(), lens.size());
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), lens.size());
  double pad = train::padding_fraction(lens, b);
  std::vector<std::vector<int64_t>> naive;
  for (size_t s = 0; s < lens.size(); s += 64) {
    naive.emplace_back();
    for (size_t i = s; i < std::min(lens.size(), s + 64); ++i) naive.back().push_back(static_cast<int64_t>(i));
  }
  std::cout << "padding bucketed " << pad << " vs unsorted " << train::padding_fraction(lens, naive) << "\n";
  EXPECT_LT(pad, 0.05);
  EXPECT_LT(pad, train::padding_fraction(lens, naive) / 4);
  EXPECT_NE(train::make_batches(lens, 64, 3, 1), b);  // a fresh order each epoch
  EXPECT_EQ(train::make_batches(lens, 64, 3, 0), b);  // and reproducible
}

TEST(Schedule, LinearDecayAfterWarmup) {
  config::TrainConfig c;
  c.steps = 105;
  c.warmup_steps = 5;
  c.lr = 2e-4;
  c.min_lr_ratio = 0.0;
  c.schedule = "linear";
  EXPECT_DOUBLE_EQ(train::lr_at(0, c), 2e-4 / 5);
  EXPECT_DOUBLE_EQ(train::lr_at(4, c), 2e-4);
  EXPECT_DOUBLE_EQ(train::lr_at(5, c), 2e-4);
  EXPECT_NEAR(train::lr_at(55, c), 1e-4, 1e-12);   // halfway down
  EXPECT_NEAR(train::lr_at(105, c), 0.0, 1e-12);
  c.schedule = "cosine";
  EXPECT_NEAR(train::lr_at(55, c), 1e-4, 1e-12);   // cosine meets linear at the midpoint
  EXPECT_GT(train::lr_at(30, c), 2e-4 * 0.75);     // and is above it before
}
