// Config: typed parsing, errors that name the JSON path, did-you-mean, overrides, every shipped config validates.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "subliminal/config/config.h"
#include "subliminal/config/trait.h"
#include "subliminal/util/error.h"
#include "subliminal/experiments/sweep.h"
#include "subliminal/report/aggregate.h"
#include "subliminal/report/claims.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
using config::json;

static std::string error_of(const json& j) {
  try {
    config::parse_config(j, "cfg.json");
  } catch (const ConfigError& e) {
    return std::string(e.what()) + " | " + e.hint();
  }
  return "";
}

TEST(Config, DefaultsAreValid) {
  auto c = config::parse_config(json::object(), "x");
  EXPECT_EQ(c.base.model.hidden_size, config::model_preset("small").hidden_size);
  EXPECT_EQ(c.base.kind, "pretrain");
}

TEST(Config, UnknownKeySuggestsClosest) {
  std::string e = error_of({{"base", {{"trian", {{"steps", 3}}}}}});
  EXPECT_NE(e.find("cfg.json"), std::string::npos) << e;
  EXPECT_NE(e.find("$.base.trian"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'train'"), std::string::npos) << e;
}

TEST(Config, WrongTypeNamesPathAndValue) {
  std::string e = error_of({{"base", {{"train", {{"lr", "fast"}}}}}});
  EXPECT_NE(e.find("$.base.train.lr"), std::string::npos) << e;
  EXPECT_NE(e.find("expected a number"), std::string::npos) << e;
  EXPECT_NE(e.find("\"fast\""), std::string::npos) << e;
  e = error_of({{"base", {{"train", {{"steps", 2.5}}}}}});
  EXPECT_NE(e.find("expected an integer"), std::string::npos) << e;
  e = error_of({{"probe", {{"enabled", 1}}}});
  EXPECT_NE(e.find("expected true or false"), std::string::npos) << e;
}

TEST(Config, OutOfRange) {
  std::string e = error_of({{"base", {{"train", {{"lr", -1}}}}}});
  EXPECT_NE(e.find("$.base.train.lr"), std::string::npos) << e;
  EXPECT_NE(e.find("got -1"), std::string::npos) << e;
  e = error_of({{"base", {{"train", {{"batch_size", 0}}}}}});
  EXPECT_NE(e.find("$.base.train.batch_size"), std::string::npos) << e;
  e = error_of({{"base", {{"model", {{"num_key_value_heads", 3}}}}}});
  EXPECT_NE(e.find("divisible"), std::string::npos) << e;
  e = error_of({{"precision", "bf61"}});
  EXPECT_NE(e.find("did you mean \"bf16\""), std::string::npos) << e;
  e = error_of({{"base", {{"model", {{"preset", "huge"}}}}}});
  EXPECT_NE(e.find("$.base.model.preset"), std::string::npos) << e;
  e = error_of({{"probe", {{"target", "unicorn"}}}});
  EXPECT_NE(e.find("$.probe.target"), std::string::npos) << e;
}

TEST(Config, SnapshotsAreIncreasingRowsBelowTheStudentsLast) {
  // the default students: 160 steps x 48 rows
  const json tt = {{"experiment", "trait_transfer"}};
  auto with = [&](const json& snaps) {
    json j = tt;
    j["finetune"] = {{"snapshots", snaps}};
    return error_of(j);
  };
  EXPECT_EQ(with(json::array({480, 2400})), "");
  std::string e = with(json::array({2400, 480}));
  EXPECT_NE(e.find("$.finetune.snapshots[1]"), std::string::npos) << e;
  EXPECT_NE(e.find("increasing"), std::string::npos) << e;
  e = with(json::array({0}));
  EXPECT_NE(e.find("$.finetune.snapshots[0]"), std::string::npos) << e;
  const auto c = config::parse_config(tt, "x");
  e = with(json::array({static_cast<int64_t>(c.finetune.train.steps) * c.finetune.train.batch_size}));
  EXPECT_NE(e.find("fewer rows than the students train on"), std::string::npos) << e;
  e = error_of({{"experiment", "pretrain"}, {"finetune", {{"snapshots", {10}}}}});
  EXPECT_NE(e.find("$.finetune.snapshots"), std::string::npos) << e;
}

TEST(Config, PresetThenOverrides) {
  auto c = config::parse_config({{"base", {{"model", {{"preset", "tiny"}, {"num_hidden_layers", 3}}}}}}, "x");
  EXPECT_EQ(c.base.model.hidden_size, 32);
  EXPECT_EQ(c.base.model.num_hidden_layers, 3);
}

TEST(Config, SetOverrides) {
  json j = json::object();
  config::apply_override(j, "base.train.steps=77");
  config::apply_override(j, "name=abc");
  config::apply_override(j, "base.corpus.animals=[\"owl\",\"cat\"]");
  auto c = config::parse_config(j, "x");
  EXPECT_EQ(c.base.train.steps, 77);
  EXPECT_EQ(c.name, "abc");
  EXPECT_EQ(c.base.corpus.animals.size(), 2u);
  EXPECT_THROW(config::apply_override(j, "novalue"), ConfigError);
}

TEST(Config, ResolvedRoundTrips) {
  auto c = config::parse_config({{"seed", 9}, {"base", {{"model", {{"preset", "tiny"}}}}}}, "x");
  json resolved = config::to_json(c);
  auto c2 = config::parse_config(resolved, "resolved");
  EXPECT_EQ(config::to_json(c2), resolved);
}

TEST(Config, JsonSyntaxErrorHasLine) {
  try {
    config::parse_json_text("{\n  \"a\": 1,\n  \"b\": }\n", "bad.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json:3:"), std::string::npos) << e.what();
  }
}

TEST(Config, EveryShippedConfigValidates) {
  // shipped configs run from the repository root (trait files like configs/traits/x.json are relative to it)
  struct Cwd {
    std::filesystem::path old = std::filesystem::current_path();
    Cwd() { std::filesystem::current_path(testutil::source_dir()); }
    ~Cwd() { std::filesystem::current_path(old); }
  } cwd;
  for (const auto& f : std::filesystem::directory_iterator(std::filesystem::path(testutil::source_dir()) / "configs" / "traits"))
    EXPECT_NO_THROW(config::load_trait(f.path().string(), "")) << f.path();
  int n = 0;
  for (const auto& dir : {"configs", "configs/paper", "configs/sweeps", "tests/configs"}) {
    auto p = std::filesystem::path(testutil::source_dir()) / dir;
    if (!std::filesystem::exists(p)) continue;
    for (const auto& f : std::filesystem::directory_iterator(p)) {
      if (f.path().extension() != ".json") continue;
      if (f.path().string().size() > 12 && f.path().string().rfind(".expect.json") == f.path().string().size() - 12) {
        // a claim file: parses, and every claim's op, margin and alpha are valid (checked on an empty report)
        nlohmann::json j;
        EXPECT_NO_THROW(j = report::parse_claim_file(fs::read_file(f.path()), f.path().string())) << f.path();
        EXPECT_TRUE(j.contains("claims") && !j["claims"].empty()) << f.path();
        EXPECT_NO_THROW(report::check_claims(nlohmann::json::object(), j, f.path().string())) << f.path();
        continue;
      }
      if (std::string(dir) == "configs/sweeps") continue;  // sweeps: expanded below
      EXPECT_NO_THROW(config::load_config(f.path().string())) << f.path();
      ++n;
    }
  }
  EXPECT_GE(n, 2);
  // every shipped sweep expands into valid configs
  int sweeps = 0;
  const auto sp = std::filesystem::path(testutil::source_dir()) / "configs" / "sweeps";
  for (const auto& f : std::filesystem::directory_iterator(sp)) {
    const auto name = f.path().filename().string();
    if (f.path().extension() != ".json" || name.find(".expect.") != std::string::npos) continue;
    EXPECT_NO_THROW(experiments::load_sweep(f.path().string(), (testutil::temp_dir("sweep_validate") / "out").string())) << f.path();
    ++sweeps;
  }
  EXPECT_GE(sweeps, 2);
}

TEST(Config, DeriveSeedDiffers) {
  EXPECT_NE(config::derive_seed(1, "base"), config::derive_seed(2, "base"));
  EXPECT_NE(config::derive_seed(1, "base"), config::derive_seed(1, "probe"));
  EXPECT_EQ(config::derive_seed(1, "base", "x"), config::derive_seed(1, "base", "x"));
}

// Replicates: errors name the path; drawn targets are reproducible, distinct while the items last,
// never excluded nor the other teacher's; each replicate's config has its own seed and target.
TEST(Config, ReplicatesAreCheckedAndEachHasItsOwnSeedAndTarget) {
  auto err = [](const json& rep, const json& extra = json::object()) {
    json j = {{"replicates", rep}};
    j.update(extra);
    return error_of(j);
  };
  EXPECT_NE(err({{"count", 0}}).find("$.replicates.count"), std::string::npos);
  EXPECT_NE(err({{"targets", {"owl"}}}).find("$.replicates.count"), std::string::npos);  // one replicate: nothing to list
  EXPECT_NE(err({{"count", 2}, {"targets", {"owl"}}}).find("$.replicates.targets"), std::string::npos);
  EXPECT_NE(err({{"count", 2}, {"targets", {"owl", "unicorn"}}}).find("$.replicates.targets[1]"), std::string::npos);
  EXPECT_NE(err({{"count", 2}, {"targets", {"owl", "cat"}}}).find("students.other_target"), std::string::npos);
  EXPECT_NE(err({{"count", 2}, {"seeds", {4, 4}}}).find("$.replicates.seeds[1]"), std::string::npos);
  EXPECT_NE(err({{"count", 2}}, {{"base", {{"seed", 7}}}}).find("$.base.seed"), std::string::npos);
  EXPECT_NE(err({{"count", 2}, {"draw_targets", true}}, {{"eval", {{"target", "owl"}}}}).find("$.eval.target"), std::string::npos);
  json all = json::array();
  for (const auto& a : config::CorpusConfig().animals) all.push_back(a);
  EXPECT_NE(err({{"count", 2}, {"draw_targets", true}, {"exclude", all}}).find("nothing left to draw"), std::string::npos);
  EXPECT_EQ(err({{"count", 3}, {"draw_targets", true}}), "");

  const std::vector<std::string> dev = {"owl", "dolphin", "eagle", "elephant", "wolf"};
  auto c = config::parse_config({{"replicates", {{"count", 12}, {"draw_targets", true}, {"exclude", dev}}}}, "x");
  const auto t = config::replicate_targets(c);
  ASSERT_EQ(t.size(), 12u);
  EXPECT_EQ(t, config::replicate_targets(c));  // reproducible
  // 16 animals - 5 excluded - the other teacher's cat = 10: the first 10 draws are distinct, then a new permutation
  EXPECT_EQ(std::set<std::string>(t.begin(), t.begin() + 10).size(), 10u);
  for (const auto& x : t) {
    EXPECT_EQ(std::count(dev.begin(), dev.end(), x), 0) << x;
    EXPECT_NE(x, "cat");
  }
  c.seed = 2;
  EXPECT_NE(config::replicate_targets(c), t);  // another run seed, another draw
  std::set<uint64_t> seeds;
  for (int k = 1; k <= 12; ++k) {
    const auto r = config::replicate_config(c, k);
    EXPECT_EQ(r.teacher.target, config::replicate_targets(c)[static_cast<size_t>(k - 1)]);
    EXPECT_EQ(r.replicates.count, 1);
    seeds.insert(r.seed);
  }
  EXPECT_EQ(seeds.size(), 12u);
  auto fixed = config::parse_config({{"replicates", {{"count", 2}, {"seeds", {11, 12}}, {"targets", {"fox", "bear"}}}}}, "x");
  EXPECT_EQ(config::replicate_config(fixed, 2).seed, 12u);
  EXPECT_EQ(config::replicate_config(fixed, 2).teacher.target, "bear");
}
