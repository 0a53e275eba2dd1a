// Batch size fitted to free memory.
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


TEST(Generation, BatchSizeIsFittedToFreeMemory) {
  using generate::fit_generation_batch;
  EXPECT_EQ(fit_generation_batch(8, 100, 1000, "$.x"), 8);  // 90% of 1000 fits 9
  EXPECT_EQ(fit_generation_batch(9, 100, 1000, "$.x"), 9);
  try {
    fit_generation_batch(10, 100, 1000, "$.dataset.batch_size");
    ADD_FAILURE() << "an over-budget batch was accepted";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("$.dataset.batch_size 10"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.hint()).find("to 9 or less"), std::string::npos) << e.hint();
  }
  EXPECT_EQ(fit_generation_batch(0, 100, 1000, "$.x"), 9);        // auto
  EXPECT_EQ(fit_generation_batch(0, 1, int64_t(1) << 40, "$.x"), 4096);
  EXPECT_EQ(fit_generation_batch(0, 100, -1, "$.x"), 64);         // unknown: a fixed default
  EXPECT_EQ(fit_generation_batch(500, 100, -1, "$.x"), 500);
  EXPECT_THROW(fit_generation_batch(0, 2000, 1000, "$.x"), ResourceError);
  // the estimate grows with the sequence and is dominated by the KV cache for long ones
  model::LlamaConfig c = model::LlamaConfig::from(config::model_preset("small"), 1600);
  const auto a = generate::generation_bytes_per_sequence(c, 50, 50, false), b = generate::generation_bytes_per_sequence(c, 50, 500, false);
  EXPECT_GT(b, a);
  EXPECT_GE(b - a, 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim() * 450 * 4);
  EXPECT_LT(generate::generation_bytes_per_sequence(c, 50, 500, true), b);  // bf16 cache
}
