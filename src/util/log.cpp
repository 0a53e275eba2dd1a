// Logging setup and the progress line.
#include "subliminal/util/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace subliminal::log {

namespace {
std::shared_ptr<spdlog::sinks::basic_file_sink_mt> g_file;
bool g_interactive = true;
}

void set_interactive(bool on) { g_interactive = on; }

void init(bool verbose) {
  static bool done = false;
  if (!done) {
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto logger = std::make_shared<spdlog::logger>("subliminal", console);
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    done = true;
  }
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::info);
}

void attach_file(const std::string& path) {
  detach_file();
  g_file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  g_file->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  spdlog::default_logger()->sinks().push_back(g_file);
  spdlog::default_logger()->flush_on(spdlog::level::info);  // a killed run still has its whole log
}

void detach_file() {
  if (!g_file) return;
  auto& sinks = spdlog::default_logger()->sinks();
  for (auto it = sinks.begin(); it != sinks.end(); ++it)
    if (*it == g_file) {
      sinks.erase(it);
      break;
    }
  g_file->flush();
  g_file.reset();
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

Progress::Progress(std::string tag, long total, double period_s)
    : tag_(std::move(tag)), total_(total), period_s_(period_s), start_(now_seconds()),
      tty_(g_interactive && isatty(STDERR_FILENO) == 1) {}

static std::string fmt_eta(double s) {
  if (s < 0 || s > 1e7) return "?";
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

void Progress::update(long done, const std::string& extra) {
  double now = now_seconds();
  double el = now - start_;
  double eta = done > 0 ? el / done * (total_ - done) : -1;
  std::string line = fmt::format("{}/{} {}  elapsed {}  eta {}", done, total_, extra, fmt_eta(el), fmt_eta(eta));
  if (tty_) {
    if (now - last_print_ < 0.2 && done < total_) return;
    std::fprintf(stderr, "\r\033[K[%s] %s", tag_.c_str(), line.c_str());
    std::fflush(stderr);
    last_print_ = now;
    // the file sink still gets a periodic line
    if (spdlog::default_logger()->sinks().size() > 1 && now - file_last_ > period_s_) {
      file_last_ = now;
      spdlog::default_logger()->sinks().back()->log(spdlog::details::log_msg(
          "subliminal", spdlog::level::info, fmt::format("[{}] {}", tag_, line)));
    }
  } else if (now - last_print_ >= period_s_) {
    last_print_ = now;
    info(tag_.c_str(), "{}", line);
  }
}

void Progress::finish(const std::string& extra) {
  if (tty_) std::fprintf(stderr, "\r\033[K");
  info(tag_.c_str(), "done {} steps in {}  {}", total_, fmt_eta(now_seconds() - start_), extra);
}

}  // namespace subliminal::log
