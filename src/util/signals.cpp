#include "subliminal/util/signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace subliminal::signals {

namespace {
volatile sig_atomic_t g_signal = 0;
volatile sig_atomic_t g_hard = 0;  // SIGTERM/SIGINT seen so far

void on_signal(int sig) {
  if (sig == SIGTERM || sig == SIGINT) {
    if (g_hard) {  // the second: leave now
      ::signal(sig, SIG_DFL);
      ::raise(sig);
      _exit(128 + sig);
    }
    g_hard = 1;
  }
  if (!g_signal) g_signal = sig;
}
}  // namespace

void install() {
  static std::atomic<bool> done{false};
  if (done.exchange(true)) return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaction(s, &sa, nullptr);
  ::signal(SIGXFSZ, SIG_IGN);
}

bool stop_requested() { return g_signal != 0; }

std::string stop_signal_name() {
  switch (g_signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return g_signal ? "signal " + std::to_string(g_signal) : "";
  }
}

void throw_if_stopped(const std::string& where, const std::string& saved) {
  if (!stop_requested()) return;
  throw Interrupted(where + ": stopped by " + stop_signal_name() + (saved.empty() ? "" : "; " + saved),
                    "run the same command again with --resume to continue");
}

}  // namespace subliminal::signals
