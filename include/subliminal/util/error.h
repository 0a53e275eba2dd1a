// Error hierarchy used below main: every message names the file / JSON path / line and what was expected.
#pragma once
#include <stdexcept>
#include <string>

namespace subliminal {

// Base of all our errors; `hint` is an optional "what to do" line printed after the message.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg, std::string hint = "")
      : std::runtime_error(msg), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }
  virtual int exit_code() const { return 1; }

 private:
  std::string hint_;
};

// Usage or configuration problems: exit code 2.
class ConfigError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

// Files that cannot be read/written, or are corrupt.
class IoError : public Error {
 public:
  using Error::Error;
};

// Not enough memory (or another resource) for what was asked: exit code 1, with a hint.
class ResourceError : public Error {
 public:
  using Error::Error;
};

// Malformed data (JSONL lines, datasets, model files).
class DataError : public Error {
 public:
  using Error::Error;
};

}  // namespace subliminal
