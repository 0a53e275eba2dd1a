#include "subliminal/util/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

#include "subliminal/util/fs.h"

namespace subliminal::fs {

namespace {
std::string read_fd(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  if (::lseek(fd, 0, SEEK_SET) < 0) return s;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}
std::string hostname() {
  char h[256] = {0};
  ::gethostname(h, sizeof h - 1);
  return h;
}
std::string owner_text(const std::string& rec) {
  try {
    auto j = nlohmann::json::parse(rec);
    return "pid " + std::to_string(j.value("pid", 0)) + " on host " + j.value("host", std::string("?")) + " since " +
           j.value("started", std::string("?")) + " (" + j.value("command", std::string("?")) + ")";
  } catch (...) {
    return "an unknown process";
  }
}
}  // namespace

DirLock::DirLock(const std::filesystem::path& dir, const std::string& what) {
  make_dirs(dir);
  const auto path = dir / ".lock";
  // not close-on-exec: worker processes inherit the descriptor, so the lock stays held until the last
  // of them is gone even if the parent is killed first
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd_ < 0) throw IoError("cannot create the lock file " + path.string() + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string rec = read_fd(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw LockedError("run directory " + dir.string() + " is in use by " + owner_text(rec) + " (lock " + path.string() + ")",
                        "wait for it to finish, or use another --out; one process writes a run directory at a time");
    throw IoError("cannot lock " + path.string() + ": " + std::strerror(err));
  }
  // ours now; a record left in the file is a previous owner that died without cleaning up
  std::string prev = read_fd(fd_);
  if (!prev.empty()) {
    try {
      auto j = nlohmann::json::parse(prev);
      if (!j.value("released", false)) stale_ = owner_text(prev);
    } catch (...) {
      stale_ = "an unreadable record";
    }
  }
  char ts[32];
  std::time_t now = std::time(nullptr);
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  const std::string rec = nlohmann::json({{"pid", static_cast<int64_t>(::getpid())}, {"host", hostname()}, {"started", ts}, {"command", what}}).dump() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, rec.data(), rec.size(), 0) != static_cast<ssize_t>(rec.size()))
    throw IoError("cannot write the lock file " + path.string() + ": " + std::strerror(errno));
  ::fsync(fd_);
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  // a clean exit marks the record released (a crash leaves it as it was: stale, detected next time)
  std::string rec = read_fd(fd_);
  try {
    auto j = nlohmann::json::parse(rec);
    j["released"] = true;
    const std::string out = j.dump() + "\n";
    if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, out.data(), out.size(), 0);
  } catch (...) {
  }
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

}  // namespace subliminal::fs
