// Version and build facts for --version and the run manifest.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace subliminal {
std::string version();
std::string git_revision();  // at run time from the source tree when available ("+dirty" if modified), else build time
std::string compiler();
nlohmann::json host_info();  // hostname, cores, Slurm ids
// The standard output of a shell command, trailing newlines and spaces trimmed ("" when it cannot run).
std::string command_output(const std::string& cmd);
}  // namespace subliminal
