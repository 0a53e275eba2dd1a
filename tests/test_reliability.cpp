// Reliability (issue 9): one writer per run directory, SIGTERM checkpoints and exits 75 and --resume
// finishes bit-identically, `subliminal verify` and the pre-stage check find changed artifacts.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include <spdlog/fmt/fmt.h>

#include "subliminal/config/config.h"
#include "subliminal/data/chat.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/text/bpe.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/run/runner.h"
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

namespace {
// report.json without what may differ between a run that was killed and resumed and one that was not:
// wall-clock timings, whether a stage resumed, timestamps
json comparable(const json& j) {
  if (j.is_object()) {
    json o = json::object();
    for (auto it = j.begin(); it != j.end(); ++it) {
      static const std::set<std::string> drop = {"timings", "resumed", "resumed_from", "finished", "started", "seconds", "git_revision",
                                                 "tokens_per_s", "elapsed_s", "prefill_s", "decode_s", "new_tokens_per_s"};
      if (!drop.count(it.key())) o[it.key()] = comparable(it.value());
    }
    return o;
  }
  if (j.is_array()) {
    json a = json::array();
    for (const auto& v : j) a.push_back(comparable(v));
    return a;
  }
  return j;
}
// every stage's recorded outputs (stage/file -> sha256), checked against the files
std::map<std::string, std::string> artifacts(const sfs::path& run) {
  std::map<std::string, std::string> out;
  for (auto it = sfs::recursive_directory_iterator(run); it != sfs::recursive_directory_iterator(); ++it) {
    const std::string p = it->path().string();
    if (it->is_directory() && (p.find(".partial") != std::string::npos || p.find(".stale-") != std::string::npos)) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->path().filename() != "stage.json") continue;
    const auto dir = it->path().parent_path();
    const json rec = read_json(it->path());
    for (auto o = rec["outputs"].begin(); o != rec["outputs"].end(); ++o) {
      const auto key = sfs::relative(dir / o.key(), run).string();
      out[key] = o.value().get<std::string>();
      EXPECT_EQ(fs::sha256_file(dir / o.key()), out[key]) << key;
    }
  }
  return out;
}

// Kills `subliminal run` with SIGKILL at `kills` random moments of an uninterrupted run's duration
// (one fresh run directory each), resumes each to the end, and compares every artifact's checksum and
// the report with the uninterrupted run's.
void crash_test(const std::string& config, const std::string& args, int kills, const std::string& name) {
  auto dir = testutil::temp_dir(name);
  auto ref = dir / "ref";
  const auto t0 = std::chrono::steady_clock::now();
  auto r = testutil::run_cli("run " + config + " --out " + ref.string() + args);
  ASSERT_EQ(r.code, 0) << r.out;
  const double T = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto want = artifacts(ref);
  const json want_report = comparable(read_json(ref / "report.json"));
  ASSERT_GT(want.size(), 5u);
  // When the stages run one after another, kill k aims at stage k mod n: once the manifest shows it
  // running, after a uniform fraction of its duration in the reference run (a stage too short to be
  // seen running is killed in whatever comes next); with --jobs 2, anywhere in [0, T).
  std::vector<std::pair<std::string, double>> stages;  // in run order (the manifest's map is sorted by name)
  if (args.find("--jobs 2") == std::string::npos) {
    const json man = read_json(ref / "manifest.json");
    for (const auto& st : run::make_stages(config::load_config((ref / "config.resolved.json").string(), {})))
      stages.emplace_back(st->name(), man["stages"][st->name()].value("seconds", 0.0));
  }
  std::mt19937 rng(20261126);
  std::map<std::string, int> hit;  // stage running at the kill -> kills
  int journal_resumes = 0;          // resumes that read sampled batches back (generation / evaluation journals)
  for (int k = 0; k < kills; ++k) {
    auto out = dir / ("k" + std::to_string(k));
    pid_t pid = start_run(config + " --out " + out.string() + args, dir / "log.txt");
    const auto started = std::chrono::steady_clock::now();
    double at = 0;
    if (stages.empty()) {
      at = std::uniform_real_distribution<double>(0.0, T)(rng);
      std::this_thread::sleep_for(std::chrono::duration<double>(at));
    } else {
      const auto& [target, secs] = stages[static_cast<size_t>(k) % stages.size()];
      const double frac = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      while (std::chrono::steady_clock::now() - started < std::chrono::seconds(60)) {
        std::string status;
        try {
          status = read_json(out / "manifest.json")["stages"][target].value("status", "");
        } catch (const std::exception&) {
        }
        if (status == "running") {
          std::this_thread::sleep_for(std::chrono::duration<double>(frac * secs));
          break;
        }
        if (!status.empty()) break;  // missed it: kill now
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      at = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    }
    kill(pid, SIGKILL);
    wait_exit(pid);
    std::string where = "(finished)";
    try {
      json man = read_json(out / "manifest.json");
      where = man["status"] == "complete" ? "(finished)" : "(between stages)";
      for (auto it = man["stages"].begin(); it != man["stages"].end(); ++it)
        if (it.value().value("status", "") == "running") where = it.key();
    } catch (const std::exception&) {
      where = "(before the manifest)";
    }
    hit[where] += 1;
    // resume to the end (a worker that outlived its parent by a moment holds the lock: exit 3, retry)
    for (int attempt = 0; attempt < 50; ++attempt) {
      r = testutil::run_cli("run " + config + " --out " + out.string() + args + " --resume");
      if (r.code != 3) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(r.code, 0) << "kill " << k << " at " << at << " s (" << where << "): " << r.out;
    journal_resumes += r.out.find(" read back from ") != std::string::npos;
    const auto got = artifacts(out);
    std::string differ;
    for (const auto& [f, h] : want)
      if (!got.count(f) || got.at(f) != h) differ += " " + f;
    for (const auto& [f, h] : got)
      if (!want.count(f)) differ += " +" + f;
    EXPECT_EQ(differ, "") << "kill " << k << " at " << at << " s (" << where << "); run kept in " << out.string();
    if (!differ.empty()) {  // keep the evidence
      sfs::rename(out, dir.parent_path() / (name + "_failed_k" + std::to_string(k)));
      continue;
    }
    EXPECT_EQ(comparable(read_json(out / "report.json")), want_report) << "kill " << k << " at " << at << " s (" << where << ")";
    EXPECT_EQ(testutil::run_cli("verify " + out.string()).code, 0) << "kill " << k;
    sfs::remove_all(out);
  }
  std::string summary;
  for (const auto& [w, n] : hit) summary += " " + w + " x" + std::to_string(n);
  std::cout << "[ crash test ] " << kills << " kills over " << T << " s:" << summary << "; " << journal_resumes
            << " resumes read sampled batches back from a journal\n";
  int stages_hit = 0;
  for (const auto& [w, n] : hit) stages_hit += w[0] != '(';
  EXPECT_GE(stages_hit, 2) << summary;
  if (hit["probe"] >= 3) EXPECT_GE(journal_resumes, 1) << summary;  // a sampling stage resumed mid-stage
  sfs::remove_all(dir);
}
}  // namespace

TEST(ReliabilityE2E, KillNineAtTwentyRandomMomentsResumesToTheSameArtifacts) {
  // the probe in batches of 8: its sampling calls resume from their journals batch by batch
  crash_test(tiny(), " --set base.train.steps=60 --set base.train.checkpoint_every=7 --set probe.batch_size=8", 20, "crash_tiny");
}

TEST(ReliabilitySlow, KillNineAcrossTheWholeOwlGraphResumesToTheSameArtifacts) {
  crash_test(testutil::source_dir() + "/tests/configs/tiny_trait.json", " --jobs 2", 20, "crash_owl");
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

// Inputs the fuzzers found (scripts/fuzz.sh), kept as regression tests: each must be refused with one
// of our errors naming the file (and line), never escape as another exception.
TEST(HostileInput, FuzzerFindingsAreCleanErrors) {
  const auto dir = sfs::path(testutil::source_dir()) / "tests" / "fuzz_regressions";
  // a number beyond double's range: nlohmann throws out_of_range (406), not a parse error
  const auto f = (dir / "jsonl-number-overflow.jsonl").string();
  const std::string msg = testutil::error_of([&] { data::read_conversations(f); });
  EXPECT_NE(msg.find(f + ":1: invalid JSON"), std::string::npos) << msg;
  EXPECT_NE(msg.find("number overflow"), std::string::npos) << msg;
  // the same in a config file
  auto tmp = testutil::temp_dir("hostile");
  fs::write_file_atomic(tmp / "c.json", R"({"name": "x", "seed": 1e999})");
  auto r = testutil::run_cli("validate " + (tmp / "c.json").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find((tmp / "c.json").string()), std::string::npos) << r.out;
  // a sharded checkpoint's index naming a shard by a number (nlohmann's type_error escaped)
  sfs::create_directories(tmp / "model");
  sfs::copy_file(dir / "safetensors-index-shard-not-a-string.json", tmp / "model" / "model.safetensors.index.json");
  std::string e = testutil::error_of([&] { model::read_model_weights((tmp / "model").string()); });
  EXPECT_NE(e.find("model.safetensors.index.json: weight_map[\"metadattotal_size\"] is 44; expected a shard file name"), std::string::npos) << e;
  // a tokenizer.json added token without its id (out_of_range escaped), and ids out of range
  const auto tj = (dir / "tokenizer-json-added-token-without-id.json").string();
  e = testutil::error_of([&] { text::Tokenizer::load(tj); });
  EXPECT_NE(e.find(tj + ": unexpected tokenizer.json structure"), std::string::npos) << e;
  EXPECT_NE(e.find("'id' not found"), std::string::npos) << e;
  // a Sequence pre-tokenizer or normalizer without its list of steps (a missing key read through
  // nlohmann's const operator[], an assertion in debug builds and undefined behaviour in release ones)
  const auto seq = (dir / "tokenizer-json-sequence-without-steps.json").string();
  e = testutil::error_of([&] { text::Tokenizer::load(seq); });
  EXPECT_NE(e.find(seq + ": unexpected tokenizer.json structure"), std::string::npos) << e;
  EXPECT_NE(e.find("'pretokenizers' not found"), std::string::npos) << e;
  fs::write_file_atomic(tmp / "n.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Sequence"},
                                           "pre_tokenizer": {"type": "ByteLevel"}})");
  e = testutil::error_of([&] { text::Tokenizer::load((tmp / "n.json").string()); });
  EXPECT_NE(e.find("'normalizers' not found"), std::string::npos) << e;
  for (const char* id : {"-5", "2000000000"}) {
    fs::write_file_atomic(tmp / "t.json", std::string(R"({"model": {"type": "BPE", "vocab": {"a": )") + id +
                                              R"(}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})");
    e = testutil::error_of([&] { text::Tokenizer::load((tmp / "t.json").string()); });
    EXPECT_NE(e.find("token \"a\" has id " + std::string(id) + "; expected an integer 0 .. 16777215"), std::string::npos) << e;
  }
  // an id that is a float far beyond int (narrowing it was undefined behaviour), in tokenizer.json and vocab.json
  const auto fl = (dir / "tokenizer-json-float-id.json").string();
  e = testutil::error_of([&] { text::Tokenizer::load(fl); });
  EXPECT_NE(e.find(fl + ": token \"9\" has id 2.46666"), std::string::npos) << e;
  sfs::create_directories(tmp / "vm");
  fs::write_file_atomic(tmp / "vm" / "vocab.json", R"({"a": 0, "b": 1e30})");
  fs::write_file_atomic(tmp / "vm" / "merges.txt", "a b\n");
  e = testutil::error_of([&] { text::BpeTokenizer::from_vocab_merges((tmp / "vm").string(), "gpt2", {}); });
  EXPECT_NE(e.find("vocab.json: token \"b\" has id 1e+30; expected an integer"), std::string::npos) << e;
  // tokenizer_config.json's added_tokens_decoder keyed by something that is not an id
  fs::write_file_atomic(tmp / "vm" / "vocab.json", R"({"a": 0, "b": 1})");
  fs::write_file_atomic(tmp / "vm" / "tokenizer_config.json", R"({"added_tokens_decoder": {"99999999999": {"content": "<x>"}}})");
  e = testutil::error_of([&] { text::BpeTokenizer::from_vocab_merges((tmp / "vm").string(), "gpt2", {}); });
  EXPECT_NE(e.find("tokenizer_config.json: token \"<x>\" has id \"99999999999\"; expected an integer"), std::string::npos) << e;
  sfs::remove_all(tmp);
}

// Names a config turns into folders (runs/<name>, sweeps/<name>) cannot leave them or smuggle in a
// NUL; input paths (trait files, checkpoints, data) are the user's to choose and are only read.
TEST(HostileInput, NamesCannotEscapeTheirFolder) {
  for (const std::string& bad : std::vector<std::string>{"..", ".", "", "../elsewhere", "a/b", std::string("a\0b", 3), "a\\b", "tab\there"}) {
    const std::string msg = testutil::error_of([&] { config::parse_config({{"name", bad}}, "cfg.json"); });
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << json(bad).dump() << ": " << msg;
    EXPECT_NE(msg.find("$.name"), std::string::npos) << json(bad).dump() << ": " << msg;
  }
  EXPECT_EQ(testutil::error_of([] { config::parse_config({{"name", "owl-2026.v1"}}, "cfg.json"); }), "");
  auto tmp = testutil::temp_dir("hostile_names");
  for (const std::string body : {R"({"name": "..", "grid": {"seed": [1, 2]}})", R"({"name": 5, "grid": {"seed": [1, 2]}})",
                                 R"({"name": "x/y", "grid": {"seed": [1, 2]}})"}) {
    fs::write_file_atomic(tmp / "s.json", body);
    auto r = testutil::run_cli("sweep " + (tmp / "s.json").string() + " --plan");
    EXPECT_EQ(r.code, 2) << body << ": " << r.out;
    EXPECT_NE(r.out.find("$.name"), std::string::npos) << body << ": " << r.out;
  }
  EXPECT_FALSE(sfs::exists(tmp / "sweeps"));
  sfs::remove_all(tmp);
}
