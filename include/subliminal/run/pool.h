// The one worker pool: child processes of this binary, at most `slots` at once. A run's stages
// (Runner, `jobs` > 1) and a sweep's local runs (`subliminal sweep --local`) both go through it.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace subliminal::run {

class WorkerPool {
 public:
  explicit WorkerPool(int slots);
  bool full() const { return static_cast<int>(workers_.size()) >= slots_; }
  bool empty() const { return workers_.empty(); }
  // Starts `args` (args[0]: the program), its output to `log_path` ("" : inherited); `tag` names it
  // to the caller when it exits.
  pid_t start(const std::vector<std::string>& args, size_t tag, const std::string& log_path = "");
  struct Exit {
    size_t tag = 0;
    pid_t pid = 0;
    int code = 0;          // exit status; 128 + signal when killed; -1 when it could not be waited for
    double seconds = 0.0;  // since start()
  };
  // Waits until one of this pool's workers exits (never reaping another child of this process: a
  // test process may have others). `poll` runs every 50 ms while none has (e.g. to pass on a stop
  // request). Needs a worker running.
  Exit wait_one(const std::function<void()>& poll = {});
  void signal_all(int sig);  // e.g. SIGUSR1: each worker checkpoints at its next safe point
  void wait_all();           // waits for every worker to exit

 private:
  struct Worker {
    pid_t pid;
    size_t tag;
    std::chrono::steady_clock::time_point started;
  };
  int slots_;
  std::vector<Worker> workers_;
};

}  // namespace subliminal::run
