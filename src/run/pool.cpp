#include "subliminal/run/pool.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <thread>

#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::run {

WorkerPool::WorkerPool(int slots) : slots_(std::max(1, slots)) {}

pid_t WorkerPool::start(const std::vector<std::string>& args, size_t tag, const std::string& log_path) {
  const pid_t pid = fs::spawn(args, log_path);
  workers_.push_back({pid, tag, std::chrono::steady_clock::now()});
  return pid;
}

WorkerPool::Exit WorkerPool::wait_one(const std::function<void()>& poll) {
  if (workers_.empty()) throw Error("internal: waiting on an empty worker pool");
  while (true) {
    if (poll) poll();
    for (size_t w = 0; w < workers_.size(); ++w) {
      int st = 0;
      const pid_t r = waitpid(workers_[w].pid, &st, WNOHANG);
      if (r == 0) continue;
      Exit e;
      e.tag = workers_[w].tag;
      e.pid = workers_[w].pid;
      e.code = r < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
      e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - workers_[w].started).count();
      workers_.erase(workers_.begin() + static_cast<long>(w));
      return e;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void WorkerPool::signal_all(int sig) {
  for (const auto& w : workers_) kill(w.pid, sig);
}

void WorkerPool::wait_all() {
  for (const auto& w : workers_) {
    int st = 0;
    waitpid(w.pid, &st, 0);
  }
  workers_.clear();
}

}  // namespace subliminal::run
