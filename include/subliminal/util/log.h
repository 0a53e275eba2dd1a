// Logging: spdlog console (+ run.log file once a run directory exists), `[component]` tags.
#pragma once
#include <spdlog/spdlog.h>

#include <string>

namespace subliminal::log {

// Installs the console logger; idempotent.
void init(bool verbose = false);
// Adds (or replaces) the run-directory file sink.
void attach_file(const std::string& path);
void detach_file();
// false: progress is logged as periodic lines even on a TTY (worker processes share the terminal).
void set_interactive(bool on);

template <typename... Args>
void info(const char* tag, fmt::format_string<Args...> f, Args&&... args) {
  spdlog::info("[{}] {}", tag, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(const char* tag, fmt::format_string<Args...> f, Args&&... args) {
  spdlog::warn("[{}] {}", tag, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(const char* tag, fmt::format_string<Args...> f, Args&&... args) {
  spdlog::error("[{}] {}", tag, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(const char* tag, fmt::format_string<Args...> f, Args&&... args) {
  spdlog::debug("[{}] {}", tag, fmt::format(f, std::forward<Args>(args)...));
}

// A progress line for long loops: redraws in place on a TTY, otherwise logs every `period_s` seconds.
class Progress {
 public:
  Progress(std::string tag, long total, double period_s = 10.0);
  // `extra` is appended after "step/total" (e.g. "loss 2.31  812 tok/s").
  void update(long done, const std::string& extra);
  void finish(const std::string& extra);

 private:
  std::string tag_;
  long total_;
  double period_s_;
  double start_;
  double last_print_ = -1e9;
  double file_last_ = -1e9;
  bool tty_;
};

double now_seconds();  // monotonic

}  // namespace subliminal::log
