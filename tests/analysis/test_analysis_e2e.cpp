// Issue 25 end to end on a tiny trait run: the analysis stages write every table and figure, every
// intervention arm is a student in the report, each random control has exactly the size of what it
// controls, no intervention leaks the trait; `subliminal analyze` and `subliminal audit` on the run's
// model directories agree with the stages and reject bad input with exit code 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "subliminal/analysis/interventions.h"
#include "subliminal/config/config.h"
#include "subliminal/data/chat.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
using nlohmann::json;
namespace sfs = std::filesystem;

namespace {

json read_json(const sfs::path& p) { return json::parse(fs::read_file(p)); }

int64_t masked_tokens(const json& mask) {
  int64_t n = 0;
  for (const auto& row : mask)
    for (const auto& v : row) n += v.get<int>() == 0;
  return n;
}

}  // namespace

TEST(AnalysisE2E, StagesWriteEveryTableAndTheControlsMatchInSize) {
  auto dir = testutil::temp_dir("analysis_e2e");
  const sfs::path out = dir / "run";
  const std::string cfg = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  auto r = testutil::run_cli("run " + cfg + " --jobs 2 --set 'students.arms=[\"treatment\",\"control\",\"other_trait\"]'" +
                             " --set analysis.enabled=true --set analysis.fraction=0.2 --set analysis.permutations=500" +
                             " --set analysis.entangled=4 --set base.model.max_position_embeddings=256 --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto names = config::AnalysisConfig().interventions;  // the default list, which this run trains
  ASSERT_EQ(names.size(), 9u);
  const auto words = generate::trait_words(config::CorpusConfig().animals);
  for (int k = 1; k <= 2; ++k) {
    const sfs::path a = out / "analysis" / ("s" + std::to_string(k));
    const auto teacher = data::read_conversations((out / "data" / ("teacher_s" + std::to_string(k)) / "kept.jsonl").string());
    const size_t n_ex = analysis::share_count(teacher.size(), 0.2);
    ASSERT_GT(n_ex, 0u);
    // per example: one line per teacher example, LLS the sum of its log-ratios
    {
      std::ifstream in(a / "examples.jsonl");
      size_t lines = 0;
      for (std::string line; std::getline(in, line); ++lines) {
        const json e = json::parse(line);
        double sum = 0;
        for (double x : e["log_ratio"]) sum += x;
        EXPECT_NEAR(e["lls"].get<double>(), sum, 1e-6);
        EXPECT_EQ(e["log_ratio"].size(), e["tokens"].size());
        EXPECT_EQ(e["kl"].size(), e["tokens"].size());
      }
      EXPECT_EQ(lines, teacher.size());
    }
    for (const auto& iv : names) {
      const sfs::path d = a / "interventions" / iv;
      const auto kept = data::read_conversations((d / "kept.jsonl").string());
      EXPECT_EQ(generate::count_trait_words(kept, words), 0) << iv;
      const json sel = read_json(d / "selection.json");
      if (iv == "top" || iv == "bottom" || iv == "random") {
        EXPECT_EQ(kept.size(), n_ex) << iv;
      } else {
        EXPECT_EQ(kept.size(), teacher.size()) << iv;
      }
      // each arm against its control: the same number of examples, or of tokens in every example
      const std::string ctl = analysis::control_of(iv);
      if (ctl.empty() || ctl == iv) continue;
      const json csel = read_json(a / "interventions" / ctl / "selection.json");
      if (iv == "top" || iv == "bottom") {
        EXPECT_EQ(sel["indices"].size(), csel["indices"].size()) << iv;
      } else if (iv == "mask_top") {
        const json m = read_json(d / "loss_mask.json")["masks"], mc = read_json(a / "interventions" / ctl / "loss_mask.json")["masks"];
        ASSERT_EQ(m.size(), mc.size());
        for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(masked_tokens(json::array({m[i]})), masked_tokens(json::array({mc[i]}))) << i;
        EXPECT_EQ(masked_tokens(m), sel["tokens_selected"].get<int64_t>());
        EXPECT_GT(masked_tokens(m), 0);
      } else if (iv == "resample_top") {
        EXPECT_EQ(sel["tokens_selected"], csel["tokens_selected"]);
      }
    }
    // shuffles keep every response's multiset of numbers (within) or the data's (across)
    for (const char* iv : {"shuffle_within", "shuffle_across"}) {
      const auto kept = data::read_conversations((a / "interventions" / iv / "kept.jsonl").string());
      ASSERT_EQ(kept.size(), teacher.size());
      for (size_t i = 0; i < kept.size(); ++i) EXPECT_EQ(kept[i][0].content, teacher[i][0].content) << iv;
    }
    const json audit = read_json(a / "audit.json");
    for (const char* p : {"owl", "cat"})
      for (const char* d : {"teacher_vs_control", "other_vs_control"}) {
        const json& s = audit[p][d];
        EXPECT_GE(s["auroc"].get<double>(), 0.0);
        EXPECT_LE(s["auroc"].get<double>(), 1.0);
        EXPECT_GT(s["p_permutation"].get<double>(), 0.0);
        EXPECT_LE(s["p_permutation"].get<double>(), 1.0);
        EXPECT_EQ(s["permutations"].get<int>(), 500);
      }
  }
  // every intervention arm is a student evaluated for both seed pairs, and the summary's table has it
  const json sum = read_json(out / "analysis" / "summary" / "analysis.json");
  std::set<std::string> arms;
  for (const auto& row : sum["interventions"]) {
    arms.insert(row["arm"].get<std::string>());
    EXPECT_EQ(row["rates"].size(), 2u) << row.dump();
    EXPECT_TRUE(row.contains("effect_left_ci95")) << row.dump();
  }
  for (const auto& iv : names) {
    EXPECT_EQ(arms.count(iv), 1u) << iv;
    for (int k = 1; k <= 2; ++k) EXPECT_TRUE(sfs::exists(out / "eval" / ("iv_" + iv + "_s" + std::to_string(k)) / "eval.json")) << iv;
  }
  for (const char* f : {"heat_strip.svg", "lls_histogram.svg"})
    EXPECT_EQ(fs::read_file(out / "analysis" / "summary" / "figures" / f).rfind("<svg", 0), 0u) << f;
  EXPECT_GT(sum["signal"]["control_data"]["examples"].get<int64_t>(), 0);
  EXPECT_EQ(sum["entanglement"]["numbers"].size(), 4u) << sum["entanglement"].dump();
  const std::string md = fs::read_file(out / "analysis" / "summary" / "analysis.md");
  for (const char* s : {"effect left", "top vs random", "mask_top vs mask_random", "Entangled numbers", "AUROC"})
    EXPECT_NE(md.find(s), std::string::npos) << s;

  // The same as commands, on the run's model directories: the audit's scores equal the stage's.
  const std::string teacher_data = (out / "data" / "teacher_s1" / "kept.jsonl").string();
  const std::string control_data = (out / "data" / "control_s1" / "kept.jsonl").string();
  auto au = testutil::run_cli("audit " + teacher_data + " --config " + cfg + " --base " + (out / "base").string() +
                              " --trait-prompt \"" + sum["audit"]["owl"]["prompt"].get<std::string>() + "\" --reference " + control_data +
                              " --set analysis.permutations=500 --out " + (dir / "audit").string());
  ASSERT_EQ(au.code, 0) << au.out;
  const json cli_audit = read_json(dir / "audit" / "audit.json");
  const json stage_audit = read_json(out / "analysis" / "s1" / "audit.json")["owl"]["teacher_vs_control"];
  EXPECT_NEAR(cli_audit["auroc"].get<double>(), stage_audit["auroc"].get<double>(), 1e-9);
  EXPECT_NEAR(cli_audit["mean_score"].get<double>(), stage_audit["mean_score"].get<double>(), 1e-9);
  EXPECT_LE(cli_audit["auroc_ci95"][0].get<double>(), cli_audit["auroc"].get<double>());
  EXPECT_GE(cli_audit["auroc_ci95"][1].get<double>(), cli_audit["auroc"].get<double>());
  EXPECT_EQ(cli_audit["roc"].size(), 4u);
  auto an = testutil::run_cli("analyze --config " + cfg + " --data " + teacher_data + " --teacher " + (out / "teacher").string() +
                              " --base " + (out / "base").string() + " --control " + control_data + " --target owl --out " +
                              (dir / "analyze").string());
  ASSERT_EQ(an.code, 0) << an.out;
  const json cli_an = read_json(dir / "analyze" / "analysis.json");
  EXPECT_NEAR(cli_an["mean_lls"].get<double>(), read_json(out / "analysis" / "s1" / "analysis.json")["teacher_data"]["mean_lls"].get<double>(), 1e-6);
  EXPECT_TRUE(cli_an["entanglement_test"].contains("entangled"));
  for (const char* f : {"examples.jsonl", "figures/heat_strip.svg", "figures/lls_histogram.svg"}) EXPECT_TRUE(sfs::exists(dir / "analyze" / f)) << f;

  // bad input: a clear error naming what is wrong, exit code 2, nothing written
  auto missing = testutil::run_cli("audit " + teacher_data + " --config " + cfg + " --base " + (out / "base").string() +
                                   " --trait-prompt owls --reference " + (dir / "nope.jsonl").string() + " --out " + (dir / "bad").string());
  EXPECT_EQ(missing.code, 2) << missing.out;
  EXPECT_NE(missing.out.find("nope.jsonl"), std::string::npos) << missing.out;
  EXPECT_FALSE(sfs::exists(dir / "bad" / "audit.json"));
  auto noprompt = testutil::run_cli("audit " + teacher_data + " --config " + cfg + " --base " + (out / "base").string() + " --reference " +
                                    control_data + " --out " + (dir / "bad").string());
  EXPECT_EQ(noprompt.code, 2) << noprompt.out;
  EXPECT_NE(noprompt.out.find("--trait-prompt"), std::string::npos) << noprompt.out;
  auto badcfg = testutil::run_cli("run " + cfg + " --set analysis.enabled=true --set analysis.fraction=1.5 --dry-run --out " + (dir / "x").string());
  EXPECT_EQ(badcfg.code, 2) << badcfg.out;
  EXPECT_NE(badcfg.out.find("analysis.fraction"), std::string::npos) << badcfg.out;
}
