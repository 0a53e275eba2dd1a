// Graceful stop (Slurm preemption, Ctrl-C): the first SIGTERM or SIGINT asks the work to stop at its
// next safe point (a training step: checkpoint first; a generation or evaluation batch), which throws
// Interrupted: exit code 75 (EX_TEMPFAIL), and `subliminal run --resume` continues. A second SIGTERM
// or SIGINT exits at once (128 + signal). SIGUSR1 asks for the same stop and never escalates: a run
// forwards it to its worker processes, which may have had the terminal's or Slurm's signal already.
#pragma once
#include <string>

#include "subliminal/util/error.h"

namespace subliminal {

class Interrupted : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 75; }
};

namespace signals {
constexpr int kInterruptedExit = 75;
// Installs the handlers (idempotent). SIGXFSZ is ignored too, so that a file-size limit shows up as a
// write error naming the file instead of killing the process.
void install();
bool stop_requested();
// The signal that asked (SIGTERM, SIGINT or SIGUSR1), "" if none.
std::string stop_signal_name();
// Throws Interrupted ("<where>: stopped by SIGTERM; <what was saved>") when a stop was asked.
void throw_if_stopped(const std::string& where, const std::string& saved);
}  // namespace signals

}  // namespace subliminal
