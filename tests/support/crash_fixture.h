#pragma once
// Shared by the tests split out of tests/test_reliability.cpp.
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
#include "subliminal/experiments/stages.h"
#include "subliminal/run/runner.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/lock.h"
#include "test_util.h"

using nlohmann::json;
namespace sfs = std::filesystem;
using namespace subliminal;

namespace {
std::string tiny() { return testutil::source_dir() + "/tests/configs/tiny.json"; }
// The tiny run the kill -9 tests crash: short pretraining with frequent checkpoints, the probe in
// batches of 8 (its sampling calls resume from their journals batch by batch).
const char* const kTinyCrashSets = " --set base.train.steps=60 --set base.train.checkpoint_every=7 --set probe.batch_size=8";
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
    for (const auto& st : experiments::make_stages(config::load_config((ref / "config.resolved.json").string(), {})))
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
