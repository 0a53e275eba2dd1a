// Version facts.
#include "subliminal/util/version.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace subliminal {

std::string version() { return SUBLIMINAL_VERSION; }

std::string command_output(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 256> buf{};
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string git_revision() {
  static std::string rev = [] {
    std::string src = SUBLIMINAL_SOURCE_DIR;
    std::string r = command_output("git -C '" + src + "' rev-parse --short=12 HEAD 2>/dev/null");
    if (r.empty()) return std::string(SUBLIMINAL_GIT_REV) + " (build time)";
    if (!command_output("git -C '" + src + "' status --porcelain --untracked-files=no 2>/dev/null").empty()) r += "+dirty";
    return r;
  }();
  return rev;
}

std::string compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "g++ " __VERSION__;
#else
  return "unknown";
#endif
}

nlohmann::json host_info() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  nlohmann::json j = {{"hostname", host}, {"hardware_concurrency", std::thread::hardware_concurrency()}, {"pid", getpid()}};
  for (const char* k : {"SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID", "SLURM_NTASKS",
                        "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS"})
    if (const char* v = std::getenv(k)) j["env"][k] = v;
  return j;
}

}  // namespace subliminal
