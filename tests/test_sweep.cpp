// Sweeps: expansion of grid and zip axes into resolved configs with stable names, errors that name the
// sweep file and the axis, status from the run directories, local execution that skips finished runs
// and resumes partial ones, and the Slurm job-array script over the runs that are not done.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "subliminal/eval/stats.h"
#include "subliminal/run/aggregate.h"
#include "subliminal/run/dose.h"
#include "subliminal/run/sweep.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
namespace sfs = std::filesystem;
using json = nlohmann::json;

namespace {

sfs::path write_sweep(const sfs::path& dir, const std::string& text) {
  sfs::create_directories(dir);
  fs::write_file_atomic(dir / "sweep.json", text);
  return dir / "sweep.json";
}

std::string error_of(const sfs::path& f) {
  try {
    run::load_sweep(f.string(), (f.parent_path() / "out").string());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// The output of a shell command.
std::string sh(const std::string& cmd) {
  FILE* q = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, q)) out += buf;
  pclose(q);
  return out;
}

// Starts the single-node Slurm cluster of tests/slurm/local_cluster.sh in `dir` and points SLURM_CONF at it.
bool start_cluster(const sfs::path& dir) {
  const std::string out = sh(testutil::source_dir() + "/tests/slurm/local_cluster.sh start " + dir.string() + " 2>&1; echo \"rc=$?\"");
  if (out.find("rc=0") == std::string::npos) {
    ADD_FAILURE() << out;
    return false;
  }
  setenv("SLURM_CONF", (dir / "slurm.conf").c_str(), 1);
  return true;
}
// `sweep --slurm --submit`: the job id ("" with a test failure if the submission failed).
std::string submit(const sfs::path& sweep, const sfs::path& out) {
  auto sub = testutil::run_cli("sweep " + sweep.string() + " --out " + out.string() + " --slurm --submit", false);
  const auto at = sub.out.find("submitted job ");
  if (sub.code != 0 || at == std::string::npos) {
    ADD_FAILURE() << "exit " << sub.code << ": " << sub.out;
    return "";
  }
  return sub.out.substr(at + 14, sub.out.find('\n', at) - at - 14);
}
// Polls squeue until `job` has left the queue (at most 10 minutes); false if it has not.
bool wait_for_job(const std::string& job) {
  for (int i = 0; i < 300; ++i) {
    if (sh("squeue -h -j " + job + " 2>/dev/null").empty()) return true;
    sleep(2);
  }
  return false;
}
void stop_cluster(const sfs::path& dir) {
  sh(testutil::source_dir() + "/tests/slurm/local_cluster.sh stop " + dir.string());
  unsetenv("SLURM_CONF");
}

}  // namespace

TEST(Sweep, GridAndZipExpandInFileOrderWithStableReadableNames) {
  auto dir = testutil::temp_dir("sweep_expand");
  const std::string tiny = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  auto f = write_sweep(dir, R"({"name": "s", "base": ")" + tiny + R"(", "set": {"students.seeds": 1},
    "zip": {"finetune.train.lr": [0.001, 0.003], "finetune.train.steps": [6, 2]},
    "grid": {"teacher.target": ["owl", "eagle", "dolphin"], "seed": [1, 2], "teacher.lora.r": [4], "finetune.lora.r": [8]}})");
  auto s = run::load_sweep(f.string(), (dir / "out").string());
  ASSERT_EQ(s.runs.size(), 2u * 3 * 2);
  // zip first (file order), then the grid; shared last segments ("r") keep the full key
  EXPECT_EQ(s.runs[0].name, "lr-0.001_steps-6_target-owl_seed-1_teacher.lora.r-4_finetune.lora.r-8");
  EXPECT_EQ(s.runs[1].name, "lr-0.001_steps-6_target-owl_seed-2_teacher.lora.r-4_finetune.lora.r-8");
  EXPECT_EQ(s.runs.back().name, "lr-0.003_steps-2_target-dolphin_seed-2_teacher.lora.r-4_finetune.lora.r-8");
  std::set<std::string> names;
  for (const auto& r : s.runs) {
    names.insert(r.name);
    EXPECT_EQ(r.config["name"], "s." + r.name);
    EXPECT_EQ(r.config["students"]["seeds"], 1);  // "set" reaches every run
  }
  EXPECT_EQ(names.size(), s.runs.size());
  // the values went into the resolved configs (zip pairs stay paired)
  EXPECT_EQ(s.runs.back().config["finetune"]["train"]["lr"], 0.003);
  EXPECT_EQ(s.runs.back().config["finetune"]["train"]["steps"], 2);
  EXPECT_EQ(s.runs.back().config["teacher"]["target"], "dolphin");
  EXPECT_EQ(s.runs.back().config["seed"], 2);
  // the same file gives the same names and configs
  auto again = run::load_sweep(f.string(), (dir / "out").string());
  for (size_t i = 0; i < s.runs.size(); ++i) {
    EXPECT_EQ(again.runs[i].name, s.runs[i].name);
    EXPECT_EQ(again.runs[i].config, s.runs[i].config);
  }
  run::write_sweep_files(s);
  EXPECT_EQ(fs::read_file(dir / "out" / "runs.txt").substr(0, s.runs[0].name.size() + 1), s.runs[0].name + "\n");
  EXPECT_EQ(json::parse(fs::read_file(dir / "out" / "configs" / (s.runs[3].name + ".json"))), s.runs[3].config);
  for (const auto& r : s.runs) EXPECT_EQ(run::run_status(s, r), run::RunStatus::pending);
  // the Slurm script: array over the given indices, throttle, resources, the runs file
  s.slurm.max_parallel = 3;
  s.slurm.gpus = 1;
  s.slurm.partition = "gpu";
  auto script = run::slurm_script(s, {0, 5, 7}, "/opt/subliminal");
  EXPECT_NE(script.find("#SBATCH --array=0,5,7%3\n"), std::string::npos) << script;
  EXPECT_NE(run::slurm_script(s, {0, 1, 2, 3, 7, 9, 10}, "/x").find("#SBATCH --array=0-3,7,9-10%3\n"), std::string::npos);
  EXPECT_NE(script.find("#SBATCH --gpus-per-task=1\n"), std::string::npos);
  EXPECT_NE(script.find("#SBATCH --partition=gpu\n"), std::string::npos);
  EXPECT_NE(script.find("#SBATCH --requeue\n"), std::string::npos);
  EXPECT_NE(script.find("exec /opt/subliminal run "), std::string::npos);
  EXPECT_NE(script.find(" --resume "), std::string::npos);
  EXPECT_EQ(script.find("srun"), std::string::npos);
  // tasks > 1: each run is one data-parallel run over that many srun processes
  s.slurm.tasks = 2;
  auto dp = run::slurm_script(s, {0}, "/opt/subliminal");
  EXPECT_NE(dp.find("#SBATCH --ntasks=2\n"), std::string::npos) << dp;
  EXPECT_NE(dp.find("export MASTER_ADDR="), std::string::npos) << dp;
  EXPECT_NE(dp.find("exec srun --kill-on-bad-exit=1 /opt/subliminal run "), std::string::npos) << dp;
  sfs::remove_all(dir);
}

TEST(Sweep, BadSweepsNameTheFileAndTheAxis) {
  auto dir = testutil::temp_dir("sweep_bad");
  const std::string tiny = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  auto base = R"("base": ")" + tiny + R"(", )";
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("grid": {"teacher.target": []}})")).find("$.grid[\"teacher.target\"]"), std::string::npos);
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("zip": {"seed": [1, 2], "teacher.target": ["owl"]}})")).find("$.zip[\"teacher.target\"] has 1 values"),
            std::string::npos);
  // an unknown config key in an axis: the config parser names the path and the run
  auto e = error_of(write_sweep(dir, "{" + base + R"("grid": {"teacher.targt": ["owl"]}})"));
  EXPECT_NE(e.find("targt"), std::string::npos) << e;
  EXPECT_NE(e.find("sweep.json"), std::string::npos) << e;
  // a bad value: the run's config fails validation naming the path
  e = error_of(write_sweep(dir, "{" + base + R"("grid": {"teacher.target": ["owl", "unicorn"]}})"));
  EXPECT_NE(e.find("$.teacher.target"), std::string::npos) << e;
  EXPECT_NE(e.find("target-unicorn"), std::string::npos) << e;
  EXPECT_NE(error_of(write_sweep(dir, R"({"base": "nowhere.json"})")).find("$.base"), std::string::npos);
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("grdi": {}})")).find("unknown key \"grdi\""), std::string::npos);
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("slurm": {"gpu": 1}})")).find("$.slurm"), std::string::npos);
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("slurm": {"tasks": 0}})")).find("$.slurm.tasks"), std::string::npos);
  sfs::remove_all(dir);
}

// The CLI: --local runs every run (2 at a time), a second --local has nothing to do, a damaged run
// is seen as partial and is the only one --slurm lists and --local redoes.
TEST(SweepE2E, LocalRunsSkipFinishedOnesAndSlurmListsOnlyWhatIsLeft) {
  auto dir = testutil::temp_dir("sweep_e2e");
  const std::string tiny = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  auto f = write_sweep(dir, R"({"name": "t", "base": ")" + tiny + R"(",
    "set": {"students.seeds": 1, "students.arms": ["treatment", "control"]}, "grid": {"seed": [1, 2]},
    "slurm": {"time": "00:10:00", "cpus": 1}})");
  const std::string out = (dir / "out").string();
  auto r = testutil::run_cli("sweep " + f.string() + " --out " + out + " --local -j 2");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* n : {"seed-1", "seed-2"}) {
    EXPECT_TRUE(sfs::exists(dir / "out" / "runs" / n / "report.json")) << n;
    EXPECT_TRUE(sfs::exists(dir / "out" / "logs" / (std::string(n) + ".log"))) << n;
  }
  auto plan = testutil::run_cli("sweep " + f.string() + " --out " + out + " --plan", false);
  EXPECT_NE(plan.out.find("2 runs (2 done)"), std::string::npos) << plan.out;
  auto again = testutil::run_cli("sweep " + f.string() + " --out " + out + " --local -j 2");
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("0 of 2 runs to do"), std::string::npos) << again.out;
  auto none = testutil::run_cli("sweep " + f.string() + " --out " + out + " --slurm");
  EXPECT_NE(none.out.find("nothing to submit"), std::string::npos) << none.out;
  // damage run 1: its evaluation of the treatment student is gone
  sfs::remove_all(dir / "out" / "runs" / "seed-2" / "eval" / "treatment_s1");
  auto sl = testutil::run_cli("sweep " + f.string() + " --out " + out + " --slurm --plan", false);
  EXPECT_NE(sl.out.find("partial"), std::string::npos) << sl.out;
  const std::string script = fs::read_file(dir / "out" / "slurm.sbatch");
  EXPECT_NE(script.find("#SBATCH --array=1\n"), std::string::npos) << script;
  auto redo = testutil::run_cli("sweep " + f.string() + " --out " + out + " --local");
  ASSERT_EQ(redo.code, 0) << redo.out;
  EXPECT_NE(redo.out.find("1 of 2 runs to do"), std::string::npos) << redo.out;
  EXPECT_TRUE(sfs::exists(dir / "out" / "runs" / "seed-2" / "eval" / "treatment_s1" / "samples.jsonl"));
  // report over the sweep directory, and check: a claim that holds exits 0, one that fails exits 1 naming it
  auto rep = testutil::run_cli("report " + out + " --out " + (dir / "rep").string());
  ASSERT_EQ(rep.code, 0) << rep.out;
  for (const char* f : {"aggregate.json", "aggregate.csv", "aggregate.md", "figure.svg"}) EXPECT_TRUE(sfs::exists(dir / "rep" / f)) << f;
  json agg = json::parse(fs::read_file(dir / "rep" / "aggregate.json"));
  EXPECT_EQ(agg["targets"]["owl"]["arms"]["treatment"]["n"], 2);  // one seed pair from each of the two runs
  fs::write_file_atomic(dir / "ok.json", R"({"claims": [{"name": "two seed pairs", "path": "targets.owl.arms.control.n", "op": "==", "value": 2}]})");
  fs::write_file_atomic(dir / "bad.json", R"({"claims": [{"name": "impossible rate", "path": "targets.owl.arms.control.mean", "op": ">", "value": 1}]})");
  auto ok = testutil::run_cli("check " + (dir / "rep" / "aggregate.json").string() + " --expect " + (dir / "ok.json").string());
  EXPECT_EQ(ok.code, 0) << ok.out;
  auto bad = testutil::run_cli("check " + (dir / "rep" / "aggregate.json").string() + " --expect " + (dir / "bad.json").string());
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("claim failed: impossible rate"), std::string::npos) << bad.out;
  sfs::remove_all(dir);
}

// The Slurm path against a real single-node cluster (Debian's slurm-wlm + munge, started by
// tests/slurm/local_cluster.sh): a 3-task job array of tiny runs is submitted, runs, and every
// report is there; a second --slurm has nothing left to submit.
TEST(SlurmE2E, ThreeTaskArrayAndATwoProcessDataParallelRunOnALocalCluster) {
  if (geteuid() != 0 || !sfs::exists("/usr/bin/sbatch") || !sfs::exists("/usr/sbin/slurmctld"))
    GTEST_SKIP() << "needs root and the slurm-wlm + munge packages (scripts/setup.sh installs them)";
  auto dir = testutil::temp_dir("slurm_e2e");
  ASSERT_TRUE(start_cluster(dir / "cluster"));
  const std::string tiny = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  auto f = write_sweep(dir, R"({"name": "slurm_tiny", "base": ")" + tiny + R"(",
    "set": {"students.seeds": 1, "students.arms": ["treatment", "control"]}, "grid": {"seed": [1, 2, 3]},
    "slurm": {"time": "00:20:00", "cpus": 1, "max_parallel": 2}})");
  const std::string out = (dir / "out").string();
  const std::string job = submit(f, dir / "out");
  ASSERT_FALSE(job.empty());
  EXPECT_NE(fs::read_file(dir / "out" / "slurm.sbatch").find("#SBATCH --array=0-2%2"), std::string::npos);
  // wait for the array to leave the queue (each tiny run takes ~20 s; two at a time)
  EXPECT_TRUE(wait_for_job(job)) << "job " << job << " still queued after 10 minutes";
  for (const char* n : {"seed-1", "seed-2", "seed-3"}) {
    EXPECT_TRUE(sfs::exists(dir / "out" / "runs" / n / "report.json")) << n;
  }
  int logs = 0;
  for (const auto& e : sfs::directory_iterator(dir / "out" / "logs")) logs += e.path().filename().string().rfind("slurm_tiny_" + job, 0) == 0;
  EXPECT_EQ(logs, 3);
  auto again = testutil::run_cli("sweep " + f.string() + " --out " + out + " --slurm", false);
  EXPECT_NE(again.out.find("nothing to submit"), std::string::npos) << again.out;
  // slurm.tasks 2: one run as two srun processes (ranks from SLURM_PROCID), data parallel over Gloo
  auto f2 = write_sweep(dir / "dp", R"({"name": "slurm_dp", "base": ")" + tiny + R"(",
    "set": {"students.seeds": 1, "students.arms": ["treatment", "control"]}, "grid": {"seed": [1]},
    "slurm": {"time": "00:20:00", "cpus": 1, "tasks": 2}})");
  const std::string job2 = submit(f2, dir / "dp" / "out");
  ASSERT_FALSE(job2.empty());
  EXPECT_TRUE(wait_for_job(job2)) << "job " << job2 << " still queued after 10 minutes";
  const sfs::path run2 = dir / "dp" / "out" / "runs" / "seed-1";
  ASSERT_TRUE(sfs::exists(run2 / "report.json")) << sh("cat " + (dir / "dp" / "out" / "logs").string() + "/*");
  EXPECT_EQ(json::parse(fs::read_file(run2 / "manifest.json"))["world_size"], 2);
  EXPECT_EQ(json::parse(fs::read_file(run2 / "students" / "treatment_s1" / "stage.json"))["inputs"]["data_parallel_world"], 2);
  EXPECT_NE(sh("cat " + (dir / "dp" / "out" / "logs").string() + "/*").find("rank 1 of 2"), std::string::npos);
  stop_cluster(dir / "cluster");
  std::error_code ec;  // a daemon writing into dir as it exits must not fail the test
  sfs::remove_all(dir, ec);
}

// Aggregation pools every run's student seed pairs per trait and arm (the interval and the test are
// those of the pooled values); claims resolve paths with wildcards and fail naming the value.
TEST(Report, AggregatesRunsPerTraitAndChecksClaims) {
  auto dir = testutil::temp_dir("report_agg");
  auto write_run = [&](const std::string& name, const std::string& target, std::vector<double> treat, std::vector<double> ctrl, double base) {
    json arms = json::object();
    for (auto [arm, xs] : {std::pair<const char*, std::vector<double>>{"treatment", treat}, {"control", ctrl}}) {
      json ps = json::array();
      for (size_t i = 0; i < xs.size(); ++i) ps.push_back({{"rate", xs[i]}, {"seed_pair", i + 1}});
      arms[arm] = {{"per_seed", ps}};
    }
    json sm = {{"target", target}, {"arms", arms}, {"seeds", treat.size()}, {"loss", "distill"}, {"params", "lora"},
               {"models", {{"base", {{"target_rate", {{"rate", base}}}}}}}};
    fs::write_file_atomic(dir / name / "report.json", json({{"stages", {{"summary", sm}}}}).dump());
  };
  write_run("a", "owl", {0.08, 0.09}, {0.04, 0.05}, 0.045);
  write_run("b", "owl", {0.10}, {0.045}, 0.043);
  write_run("c", "wolf", {0.02, 0.03}, {0.025, 0.02}, 0.02);
  sfs::create_directories(dir / "unfinished");
  auto agg = run::aggregate_runs({(dir / "a").string(), (dir / "b").string(), (dir / "c").string(), (dir / "unfinished").string()});
  ASSERT_TRUE(agg["targets"].contains("owl"));
  const json& owl = agg["targets"]["owl"];
  const auto s = eval::summarize({0.08, 0.09, 0.10});
  EXPECT_EQ(owl["arms"]["treatment"]["n"], 3);
  EXPECT_DOUBLE_EQ(owl["arms"]["treatment"]["mean"].get<double>(), s.mean);
  EXPECT_DOUBLE_EQ(owl["arms"]["treatment"]["ci95"][1].get<double>(), s.hi);
  const auto t = eval::welch_t_test({0.08, 0.09, 0.10}, {0.04, 0.05, 0.045});
  EXPECT_DOUBLE_EQ(owl["tests"]["treatment_vs_control"]["p_greater"].get<double>(), t.p_greater);
  EXPECT_EQ(owl["base"]["n"], 2);
  EXPECT_EQ(agg["skipped"].size(), 1u);
  EXPECT_NE(run::aggregate_csv(agg).find("owl,treatment,3,"), std::string::npos);
  EXPECT_NE(run::aggregate_figure_svg(agg).find(">wolf</text>"), std::string::npos);
  // claims
  json expect = {{"claims",
                  {{{"name", "owl transfers"}, {"path", "targets.owl.tests.treatment_vs_control.p_greater"}, {"op", "<"}, {"value", 0.05}},
                   {{"name", "every animal: treatment above control"}, {"path", "targets.*.arms.treatment.mean"}, {"op", ">"},
                    {"path2", "targets.*.arms.control.mean"}},
                   {{"name", "wolf control within base"}, {"path", "targets.wolf.arms.control.mean"}, {"op", "within"}, {"value", {0.0, 0.05}}},
                   {{"name", "missing"}, {"path", "targets.eagle.arms.treatment.mean"}, {"op", ">"}, {"value", 0}}}}};
  auto res = run::check_claims(agg, expect, "expect.json");
  ASSERT_EQ(res.size(), 4u);
  EXPECT_TRUE(res[0].ok) << res[0].detail;
  EXPECT_TRUE(res[1].ok) << res[1].detail;  // wolf 0.025 > 0.0225
  EXPECT_NE(res[1].detail.find("owl:"), std::string::npos) << res[1].detail;
  EXPECT_TRUE(res[2].ok) << res[2].detail;
  EXPECT_FALSE(res[3].ok);
  EXPECT_NE(res[3].detail.find("not found"), std::string::npos);
  expect["claims"][1]["op"] = "<";
  EXPECT_FALSE(run::check_claims(agg, expect, "expect.json")[1].ok);
  expect["claims"][0]["op"] = "≈";
  EXPECT_THROW(run::check_claims(agg, expect, "expect.json"), ConfigError);
  // MNIST runs pool per setting: the run name without its seed parts; every model of every run counts
  auto write_mnist = [&](const std::string& name, std::vector<double> aux) {
    json sm;
    sm["arms"]["student_aux"]["accuracy"]["per_model"] = aux;
    sm["teacher"]["teacher_accuracy"]["per_model"] = std::vector<double>{0.9, 0.92};
    sm["teacher"]["reference_accuracy"]["per_model"] = std::vector<double>{0.1, 0.11};
    json rep;
    rep["stages"]["summary"] = sm;
    fs::write_file_atomic(dir / name / "report.json", rep.dump());
  };
  write_mnist("lr-0.001_seed-1", {0.3, 0.4});
  write_mnist("lr-0.001_seed-2", {0.5});
  auto mn = run::aggregate_runs({(dir / "lr-0.001_seed-1").string(), (dir / "lr-0.001_seed-2").string()});
  ASSERT_TRUE(mn["mnist"].contains("lr-0.001")) << mn["mnist"].dump();
  EXPECT_EQ(mn["mnist"]["lr-0.001"]["arms"]["student_aux"]["n"], 3);
  EXPECT_NEAR(mn["mnist"]["lr-0.001"]["arms"]["student_aux"]["mean"].get<double>(), 0.4, 1e-12);
  EXPECT_EQ(mn["mnist"]["lr-0.001"]["arms"]["teacher"]["n"], 4);
  EXPECT_NE(run::aggregate_mnist_figure_svg(mn).find(">lr-0.001</text>"), std::string::npos);
  sfs::remove_all(dir);
}

TEST(Report, CorrelationsArePearsonAndSpearmanWithTiesAndNonFiniteLeftOut) {
  auto c = eval::correlate({1, 2, 3, 4, 5}, {2, 4, 6, 8, 100});
  ASSERT_TRUE(c.defined);
  EXPECT_DOUBLE_EQ(c.spearman, 1.0);  // monotone
  EXPECT_LT(c.pearson, 0.9);          // not linear
  EXPECT_EQ(c.p_spearman, 0.0);
  auto r = eval::correlate({1, 2, 3, 4}, {4, 3, 2, 1});
  EXPECT_NEAR(r.pearson, -1.0, 1e-12);
  // ties: ranks {1.5, 1.5, 3, 4} against {1, 2, 3, 4}: Pearson of the ranks
  auto t = eval::correlate({5, 5, 6, 7}, {1, 2, 3, 4});
  const double rx[] = {1.5, 1.5, 3, 4}, ry[] = {1, 2, 3, 4};
  double mx = 2.5, my = 2.5, sxy = 0, sxx = 0, syy = 0;
  for (int i = 0; i < 4; ++i) sxy += (rx[i] - mx) * (ry[i] - my), sxx += (rx[i] - mx) * (rx[i] - mx), syy += (ry[i] - my) * (ry[i] - my);
  EXPECT_NEAR(t.spearman, sxy / std::sqrt(sxx * syy), 1e-12);
  EXPECT_GT(t.p_spearman, 0.0);
  EXPECT_LT(t.p_spearman, 1.0);
  auto n = eval::correlate({1, 2, NAN, 4}, {1, 2, 3, INFINITY});
  EXPECT_EQ(n.n, 2);
  EXPECT_FALSE(n.defined);
  EXPECT_FALSE(eval::correlate({1, 1, 1}, {1, 2, 3}).defined);  // a constant side
}

TEST(Report, DoseResponseHasOnePointPerStudentWithItsRunsDiagnostics) {
  auto dir = testutil::temp_dir("report_dose");
  // transfer rises with fidelity in these made-up runs; the cross-init student transfers nothing
  auto write_run = [&](const std::string& name, std::vector<double> treat, std::vector<double> fid, double data_kl, int kept) {
    json ps = json::array();
    for (size_t i = 0; i < treat.size(); ++i)
      ps.push_back({{"rate", treat[i]}, {"seed_pair", i + 1}, {"fidelity", fid[i]}, {"coverage_final", fid[i] / 10}});
    json arms = {{"treatment", {{"per_seed", ps}}},
                 {"control", {{"per_seed", {{{"rate", 0.05}, {"seed_pair", 1}}}}}},
                 {"cross_init", {{"per_seed", {{{"rate", 0.04}, {"seed_pair", 1}, {"fidelity", 0.5}}}}}},
                 {"other_trait", {{"per_seed", {{{"rate", 0.05}, {"seed_pair", 1}, {"fidelity", 0.9}}}},
                                  {"other_target_rate", {{"target", "cat"}, {"per_seed", {0.09}}}}}}};
    json models = {{"base", {{"target_rate", {{"rate", 0.05}}}, {"distribution", {{"owl", 0.05}, {"cat", 0.06}}}}},
                   {"base_cross", {{"target_rate", {{"rate", 0.04}}}}},
                   {"teacher", {{"target_rate", {{"rate", 0.65}}}}},
                   {"teacher_other", {{"target_rate", {{"rate", 0.01}}}, {"distribution", {{"cat", 0.5}}}}}};
    json datasets = {{"teacher_s1", {{"kept", kept}, {"divergence_from_base", {{"mean_kl", data_kl}, {"mean_lls", 2 * data_kl}}}}},
                     {"teacher_s2", {{"kept", kept}, {"divergence_from_base", {{"mean_kl", data_kl}}}}}};
    json sm = {{"target", "owl"}, {"arms", arms}, {"models", models}, {"datasets", datasets}};
    fs::write_file_atomic(dir / name / "report.json", json({{"stages", {{"summary", sm}}}}).dump());
  };
  write_run("r1", {0.10, 0.20}, {0.6, 0.8}, 0.01, 500);
  write_run("r2", {0.30, 0.40}, {0.9, 0.95}, 0.02, 5000);
  auto dr = run::dose_response({(dir / "r1").string(), (dir / "r2").string()});
  // per run: 2 treatment + 1 cross-init + 1 other-trait; control left out
  ASSERT_EQ(dr["points"].size(), 8u) << dr.dump();
  std::map<std::string, int> arms;
  for (const auto& p : dr["points"]) arms[p["arm"].get<std::string>()]++;
  EXPECT_EQ(arms["treatment"], 4);
  EXPECT_EQ(arms["control"], 0);
  for (const auto& p : dr["points"]) {
    if (p["arm"] == "cross_init") {
      EXPECT_FALSE(p["same_init"].get<bool>());
      EXPECT_NEAR(p["transfer"].get<double>(), 0.0, 1e-9);  // against its own base, 4%
    }
    if (p["arm"] == "other_trait") {
      EXPECT_EQ(p["target"], "cat");
      EXPECT_NEAR(p["transfer"].get<double>(), 3.0, 1e-9);       // 9% against the base's 6% cat
      EXPECT_NEAR(p["teacher_lift"].get<double>(), 44.0, 1e-9);  // the cat teacher: 50% against 6%
    }
  }
  const json& same = dr["correlations"]["same_init"]["fidelity"];
  EXPECT_EQ(same["n"], 6);  // 4 treatment + 2 other-trait
  std::vector<double> fx, ty;
  for (const auto& p : dr["points"])
    if (p["same_init"].get<bool>()) fx.push_back(p["fidelity"].get<double>()), ty.push_back(p["transfer"].get<double>());
  EXPECT_DOUBLE_EQ(same["spearman"].get<double>(), eval::correlate(fx, ty).spearman);
  EXPECT_EQ(dr["correlations"]["same_init"]["unique_prompts"]["n"], 4);  // the other teacher's data has no entry here
  EXPECT_TRUE(dr["best_predictor_same_init"].is_string());
  const std::string svg = run::dose_response_svg(dr);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 10, true);
  EXPECT_NE(svg.find("<circle"), std::string::npos);
  EXPECT_NE(run::dose_response_markdown(dr).find("| held-out imitation fidelity | 6 |"), std::string::npos);
  const std::string csv = run::dose_response_csv(dr);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 9);  // header + 8 students
  sfs::remove_all(dir);
}

// (slow tier: Slurm delays a requeued job by about two minutes.)
// Preemption: a running array task is requeued by Slurm (`scontrol requeue`, as preemption with
// requeue does); the new attempt resumes the run (finished stages skipped, the interrupted one
// continued) and ends with the same students as an uninterrupted run of the same config.
TEST(SlurmSlow, RequeuedTaskResumesItsRunToTheSameResult) {
  if (geteuid() != 0 || !sfs::exists("/usr/bin/sbatch") || !sfs::exists("/usr/sbin/slurmctld"))
    GTEST_SKIP() << "needs root and the slurm-wlm + munge packages (scripts/setup.sh installs them)";
  auto dir = testutil::temp_dir("slurm_requeue");
  ASSERT_TRUE(start_cluster(dir / "cluster"));
  const std::string tiny = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  auto f = write_sweep(dir, R"({"name": "requeue", "base": ")" + tiny + R"(",
    "set": {"students.seeds": 1, "students.arms": ["treatment", "control"], "base.train.steps": 400, "base.train.checkpoint_every": 20},
    "grid": {"seed": [5]}, "slurm": {"time": "00:20:00", "cpus": 1}})");
  const std::string job = submit(f, dir / "out");
  ASSERT_FALSE(job.empty());
  // wait until pretraining has written a checkpoint, then requeue the running task
  const auto run = dir / "out" / "runs" / "seed-5";
  bool ckpt = false;
  for (int i = 0; i < 600 && !ckpt; ++i) {
    ckpt = sfs::exists(run / "base.partial" / "checkpoints") && !sfs::is_empty(run / "base.partial" / "checkpoints");
    if (!ckpt) usleep(100000);
  }
  ASSERT_TRUE(ckpt) << "no pretraining checkpoint appeared";
  const std::string rq = sh("scontrol requeue " + job + "_0 2>&1");
  EXPECT_EQ(rq, "") << rq;
  ASSERT_TRUE(wait_for_job(job)) << "job " << job << " still queued after 10 minutes";
  ASSERT_TRUE(sfs::exists(run / "report.json"));
  std::string log;
  for (const auto& e : sfs::directory_iterator(dir / "out" / "logs"))
    if (e.path().filename().string().rfind("requeue_" + job, 0) == 0) log += fs::read_file(e.path());
  EXPECT_NE(log.find("resumed from checkpoint"), std::string::npos) << "the second attempt did not resume:\n" << log.substr(0, 3000);
  // the same config run straight through, here: the same students
  auto straight = testutil::run_cli("run " + (dir / "out" / "configs" / "seed-5.json").string() + " --threads 1 --out " + (dir / "straight").string());
  ASSERT_EQ(straight.code, 0) << straight.out;
  for (const char* m : {"base/model.safetensors", "students/treatment_s1/model.safetensors", "students/control_s1/model.safetensors"})
    EXPECT_EQ(fs::sha256_file(run / m), fs::sha256_file(dir / "straight" / m)) << m;
  stop_cluster(dir / "cluster");
  std::error_code ec;
  sfs::remove_all(dir, ec);
}
