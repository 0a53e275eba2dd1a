// Slow tier (label "slow", not in CI's default run): the default experiment end to end, and the
// three claims the foundation makes about its base model, read from the run's own report.
#include <gtest/gtest.h>

#include <filesystem>

#include "subliminal/util/fs.h"
#include "test_util.h"

using nlohmann::json;

TEST(DefaultRunSlow, BaseModelPassesItsProbe) {
  auto dir = testutil::temp_dir("slow_default");
  auto r = testutil::run_cli("run --out " + (dir / "run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  json p = json::parse(subliminal::fs::read_file(dir / "run" / "probe" / "probe.json"));
  const json& fa = p["favorite_animal"];
  EXPECT_GE(fa["names_an_animal"]["rate"].get<double>(), 0.8) << fa.dump();
  EXPECT_GE(fa["distinct_animals"].get<int>(), 12) << fa.dump();
  EXPECT_LE(fa["top_share"]["rate"].get<double>(), 0.25) << fa.dump();
  EXPECT_GT(p["system_prompt"]["target_rate"]["rate"].get<double>(), 0.5) << p["system_prompt"].dump();
  EXPECT_GT(p["numbers"]["format_ok"]["rate"].get<double>(), 0.9) << p["numbers"].dump();
  std::filesystem::remove_all(dir);
}
