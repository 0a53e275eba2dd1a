// Reliability of a run: locks, verify, SIGTERM and kill -9 resumes, a full disk.
#include "crash_fixture.h"


TEST(ReliabilityE2E, SecondWriterIsRefusedAndAStaleLockIsTakenOver) {
  auto dir = testutil::temp_dir("lock");
  auto out = dir / "run";
  {
    fs::DirLock held(out, "a test holding the run directory");
    auto r = testutil::run_cli("run " + tiny() + " --out " + out.string());
    EXPECT_EQ(r.code, 3) << r.out;
    EXPECT_NE(r.out.find("in use by pid " + std::to_string(::getpid())), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("a test holding the run directory"), std::string::npos) << r.out;
    EXPECT_FALSE(sfs::exists(out / "corpus")) << "the refused run wrote a stage";
    // a second lock in this process is refused too (flock is per open file)
    EXPECT_THROW(fs::DirLock(out, "again"), fs::LockedError);
  }
  // released cleanly: not stale
  {
    fs::DirLock again(out, "next");
    EXPECT_EQ(again.stale_owner(), "");
  }
  // a record left by a process that died (never released): detected as stale and taken over
  fs::write_file_atomic(out / ".lock", json({{"pid", 999999}, {"host", "gone"}, {"started", "2026-01-01T00:00:00Z"}, {"command", "x"}}).dump());
  auto r = testutil::run_cli("run " + tiny() + " --out " + out.string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("stale lock of pid 999999 on host gone"), std::string::npos) << r.out;
  EXPECT_TRUE(read_json(out / ".lock").value("released", false));
  sfs::remove_all(dir);
}

TEST(ReliabilityE2E, VerifyAndTheNextStageFindAChangedArtifact) {
  auto dir = testutil::temp_dir("verify");
  auto out = dir / "run";
  ASSERT_EQ(testutil::run_cli("run " + tiny() + " --out " + out.string()).code, 0);
  auto r = testutil::run_cli("verify " + out.string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("3 of 3 stages done and intact; manifest status complete"), std::string::npos) << r.out;
  // one flipped byte in the base model
  const auto model = out / "base" / "model.safetensors";
  std::string bytes = fs::read_file(model);
  bytes[bytes.size() - 3] ^= 0x01;
  { std::ofstream(model, std::ios::binary) << bytes; }
  r = testutil::run_cli("verify " + out.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("corrupt"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(model.string() + ": sha256"), std::string::npos) << r.out;
  // a stage that reads it refuses to run on it
  sfs::remove_all(out / "probe");
  r = testutil::run_cli("run " + tiny() + " --out " + out.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("stage 'probe' reads stage 'base', whose files no longer match"), std::string::npos) << r.out;
  EXPECT_FALSE(sfs::exists(out / "probe" / "stage.json"));
  // an unrecorded file, a missing stage
  bytes[bytes.size() - 3] ^= 0x01;
  { std::ofstream(model, std::ios::binary) << bytes; }
  { std::ofstream(out / "base" / "notes.txt") << "x"; }
  r = testutil::run_cli("verify " + out.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("notes.txt: not a recorded output"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fmt::format("  {:<28} not done", "probe")), std::string::npos) << r.out;
  // not a run directory: a usage error
  EXPECT_EQ(testutil::run_cli("verify " + dir.string()).code, 2);
  sfs::remove_all(dir);
}

TEST(ReliabilityE2E, SigtermCheckpointsExits75AndResumeIsBitIdentical) {
  auto dir = testutil::temp_dir("sigterm");
  // long enough to be caught mid-training; no periodic checkpoint: the one found is the signal's
  const std::string set = " --set base.train.steps=300 --set base.train.checkpoint_every=0 --set base.train.log_every=1";
  auto ref = dir / "ref";
  ASSERT_EQ(testutil::run_cli("run " + tiny() + " --out " + ref.string() + set).code, 0);
  for (const char* jobs : {"1", "2"}) {  // in process, and in a worker process (the parent passes the stop on)
    auto out = dir / (std::string("run") + jobs);
    pid_t pid = start_run(tiny() + " --out " + out.string() + " --jobs " + jobs + set, dir / "log.txt");
    const auto metrics = out / "metrics" / "base.jsonl";
    const auto t0 = std::chrono::steady_clock::now();
    while (count_lines(metrics) < 20 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_GE(count_lines(metrics), 20) << fs::read_file(dir / "log.txt");
    kill(pid, SIGTERM);
    EXPECT_EQ(wait_exit(pid), 75) << fs::read_file(dir / "log.txt");
    const std::string log = fs::read_file(dir / "log.txt");
    EXPECT_NE(log.find("stopped by SIGTERM after step"), std::string::npos) << log;
    // nothing is marked done that is not complete; the checkpoint is complete
    EXPECT_FALSE(sfs::exists(out / "base" / "stage.json"));
    EXPECT_TRUE(sfs::exists(out / "base.partial"));
    EXPECT_EQ(read_json(out / "manifest.json")["status"], "interrupted");
    int ckpts = 0;
    for (const auto& e : sfs::directory_iterator(out / "base.partial" / "checkpoints")) {
      EXPECT_TRUE(sfs::exists(e.path() / "DONE")) << e.path();
      EXPECT_TRUE(sfs::exists(e.path() / "rng.pt")) << e.path();
      ++ckpts;
    }
    EXPECT_EQ(ckpts, 1);
    // what a write killed mid-way leaves (write_file_atomic's temp name): not an output of the stage
    { std::ofstream(out / "base.partial" / "config.json.tmp.12345") << "half"; }
    auto r = testutil::run_cli("run " + tiny() + " --out " + out.string() + " --jobs " + jobs + set + " --resume");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(read_json(out / "base" / "stage.json")["resumed"].get<bool>());
    EXPECT_FALSE(read_json(out / "base" / "stage.json")["outputs"].contains("config.json.tmp.12345"));
    EXPECT_FALSE(sfs::exists(out / "base" / "config.json.tmp.12345"));
    // the same artifacts as the run that was never stopped
    for (const char* f : {"base/model.safetensors", "probe/probe.json", "probe/samples.jsonl"})
      EXPECT_EQ(fs::sha256_file(out / f), fs::sha256_file(ref / f)) << f << " (jobs " << jobs << ")";
    EXPECT_EQ(testutil::run_cli("verify " + out.string()).code, 0);
  }
  sfs::remove_all(dir);
}

// Eight kills here keep the default tiers within their time; the slow tier kills the same run at
// twenty moments (ReliabilitySlow.KillNineAtTwentyRandomMoments...).
TEST(ReliabilityE2E, KillNineAtEightRandomMomentsResumesToTheSameArtifacts) {
  crash_test(tiny(), kTinyCrashSets, 8, "crash_tiny");
}

TEST(ReliabilityE2E, AFullDiskFailsCleanlyNamingTheFileAndResumeFinishes) {
  // A file-size limit (RLIMIT_FSIZE, ulimit -f) stands in for a full disk: writes past it fail with
  // EFBIG (SIGXFSZ is ignored), as writes to a full disk fail with ENOSPC, through the same code.
  auto dir = testutil::temp_dir("diskfull");
  auto out = dir / "run";
  const std::string set = " --set base.train.steps=20 --set base.train.checkpoint_every=7";
  // 300 KiB (bash counts ulimit -f in KiB): the corpus (~160 KB) fits, the base model (~430 KB) does not
  const std::string cmd = "bash -c 'ulimit -f 300; exec " + std::string(SUBLIMINAL_BIN) + " run " + tiny() + " --out " + out.string() +
                          set + "' 2>&1";
  std::string text;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  const int st = pclose(p);
  EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 1) << text;
  EXPECT_NE(text.find("model.safetensors': File too large"), std::string::npos) << text;
  EXPECT_NE(text.find("ulimit -f"), std::string::npos) << text;
  // nothing is marked done that is not complete
  EXPECT_TRUE(sfs::exists(out / "corpus" / "stage.json"));
  EXPECT_FALSE(sfs::exists(out / "base")) << "a stage directory appeared for an incomplete stage";
  EXPECT_TRUE(sfs::exists(out / "base.partial"));
  EXPECT_EQ(read_json(out / "manifest.json")["status"], "failed");
  for (const auto& e : sfs::recursive_directory_iterator(out))  // no checkpoint marked complete without its files
    if (e.path().filename() == "DONE") ADD_FAILURE() << "a checkpoint was marked done: " << e.path();
  auto r = testutil::run_cli("verify " + out.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(fmt::format("  {:<28} interrupted", "base")), std::string::npos) << r.out;
  // with room again, --resume finishes: the same model as a run that never hit the limit
  r = testutil::run_cli("run " + tiny() + " --out " + out.string() + set + " --resume");
  ASSERT_EQ(r.code, 0) << r.out;
  auto ref = dir / "ref";
  ASSERT_EQ(testutil::run_cli("run " + tiny() + " --out " + ref.string() + set).code, 0);
  EXPECT_EQ(fs::sha256_file(out / "base" / "model.safetensors"), fs::sha256_file(ref / "base" / "model.safetensors"));
  EXPECT_EQ(testutil::run_cli("verify " + out.string()).code, 0);
  sfs::remove_all(dir);
}
