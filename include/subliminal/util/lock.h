// One writer per run directory: `<dir>/.lock`, held with flock(2) for the life of the process (the
// kernel drops it when the process dies, however it dies) and naming its owner (pid, host, start
// time, command). A second process refuses with the owner's name; a lock file whose owner is gone is
// stale, reported and taken over.
#pragma once
#include <filesystem>
#include <string>

#include "subliminal/util/error.h"

namespace subliminal::fs {

// Another live process owns the run directory: exit code 3.
class LockedError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 3; }
};

class DirLock {
 public:
  // Takes `<dir>/.lock` (creating dir); throws LockedError naming the owner when another process holds
  // it, IoError when the file cannot be created. `what` is written into the lock (the command).
  DirLock(const std::filesystem::path& dir, const std::string& what);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  // The previous owner's record when the lock was stale (its process gone), else "".
  const std::string& stale_owner() const { return stale_; }

 private:
  int fd_ = -1;
  std::string stale_;
};

}  // namespace subliminal::fs
