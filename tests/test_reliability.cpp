// Reliability (issue 9): one writer per run directory, SIGTERM checkpoints and exits 75 and --resume
// finishes bit-identically, `subliminal verify` and the pre-stage check find changed artifacts.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <spdlog/fmt/fmt.h>

#include "subliminal/util/fs.h"
#include "subliminal/util/lock.h"
#include "test_util.h"

using nlohmann::json;
namespace sfs = std::filesystem;
using namespace subliminal;

namespace {
std::string tiny() { return testutil::source_dir() + "/tests/configs/tiny.json"; }
json read_json(const sfs::path& p) { return json::parse(fs::read_file(p)); }
int count_lines(const sfs::path& p) {
  std::ifstream in(p);
  std::string l;
  int n = 0;
  while (std::getline(in, l)) ++n;
  return n;
}
// Starts `subliminal run` in the background (output to log); returns its pid.
pid_t start_run(const std::string& args, const sfs::path& log) {
  std::vector<std::string> argv = {SUBLIMINAL_BIN, "run"};
  std::istringstream ss(args);
  for (std::string a; ss >> a;) argv.push_back(a);
  return fs::spawn(argv, log.string());
}
int wait_exit(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
}  // namespace

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
    auto r = testutil::run_cli("run " + tiny() + " --out " + out.string() + " --jobs " + jobs + set + " --resume");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_TRUE(read_json(out / "base" / "stage.json")["resumed"].get<bool>());
    // the same artifacts as the run that was never stopped
    for (const char* f : {"base/model.safetensors", "probe/probe.json", "probe/samples.jsonl"})
      EXPECT_EQ(fs::sha256_file(out / f), fs::sha256_file(ref / f)) << f << " (jobs " << jobs << ")";
    EXPECT_EQ(testutil::run_cli("verify " + out.string()).code, 0);
  }
  sfs::remove_all(dir);
}
