// A requeued Slurm task resumes its run to the same result.
#include "sweep_fixture.h"


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
