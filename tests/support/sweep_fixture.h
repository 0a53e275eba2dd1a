#pragma once
// Shared by the tests split out of tests/test_sweep.cpp.
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

#include "subliminal/util/stats.h"
#include "subliminal/report/aggregate.h"
#include "subliminal/report/dose.h"
#include "subliminal/experiments/sweep.h"
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
    experiments::load_sweep(f.string(), (f.parent_path() / "out").string());
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
