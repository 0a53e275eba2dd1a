// `subliminal bench --compare`: rates as ratios to the first file.
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


// `bench --compare`: every rate of the first file's presets with each other file's value and ratio;
// settings that are not rates are left out; a file that is not a bench result is refused by name.
TEST(BenchCompare, PrintsEveryRateAsARatioToTheFirstFileAndRefusesANonResult) {
  auto dir = testutil::temp_dir("bench_compare");
  const auto a = dir / "a.json", b = dir / "b.json", bad = dir / "bad.json";
  fs::write_file_atomic(a, R"({"libtorch": "LibTorch A", "presets": [{"preset": "small", "steps": 8,
    "train_fp32_tokens_per_s": 100.0, "eval_samples_per_s": 20.0, "peak_rss_mb": 50.0}]})");
  fs::write_file_atomic(b, R"({"libtorch": "LibTorch B", "presets": [{"preset": "small", "steps": 8,
    "train_fp32_tokens_per_s": 150.0, "peak_rss_mb": 40.0}]})");
  fs::write_file_atomic(bad, R"({"threads": 2})");
  auto r = testutil::run_cli("bench --compare " + a.string() + " " + b.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("LibTorch A"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("LibTorch B"), std::string::npos) << r.out;
  auto line = [&](const std::string& key) {
    const auto at = r.out.find(key);
    return at == std::string::npos ? std::string() : r.out.substr(at, r.out.find('\n', at) - at);
  };
  EXPECT_NE(line("train_fp32_tokens_per_s").find("(1.50x)"), std::string::npos) << r.out;
  EXPECT_NE(line("peak_rss_mb").find("(0.80x)"), std::string::npos) << r.out;
  EXPECT_NE(line("eval_samples_per_s"), "") << r.out;                      // only in the first file:
  EXPECT_EQ(line("eval_samples_per_s").find('x'), std::string::npos) << r.out;  // no ratio
  EXPECT_EQ(r.out.find("steps"), std::string::npos) << r.out;                // not a rate
  auto rb = testutil::run_cli("bench --compare " + a.string() + " " + bad.string());
  EXPECT_EQ(rb.code, 1) << rb.out;
  EXPECT_NE(rb.out.find(bad.string()), std::string::npos) << rb.out;
  EXPECT_NE(rb.out.find("not a bench result"), std::string::npos) << rb.out;
  std::filesystem::remove_all(dir);
}
