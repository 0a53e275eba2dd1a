// Sweeps end to end: local runs skip finished ones; a Slurm array and a data-parallel run on a local cluster.
#include "sweep_fixture.h"


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
