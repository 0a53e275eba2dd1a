// Append-only JSONL journals (see journal.h).
#include "subliminal/util/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::fs {

using json = nlohmann::json;

namespace {
thread_local JournalScope* g_scope = nullptr;
}

Journal::Journal(std::filesystem::path path, json header) : path_(std::move(path)) {
  make_dirs(path_.parent_path());
  const std::string head = header.dump() + "\n";
  std::string have;
  if (std::filesystem::exists(path_)) have = read_file(path_);
  if (!have.empty()) {
    const size_t nl = have.find('\n');
    json h;
    bool same = nl != std::string::npos;
    if (same) {
      h = json::parse(have.substr(0, nl), nullptr, /*allow_exceptions=*/false);
      same = h == header;
    }
    if (!same) {
      restarted_ = "its header differs from this work's (other inputs, or a torn first line)";
    } else {
      header_end_ = nl + 1;
      size_t pos = header_end_;
      while (pos < have.size()) {
        const size_t end = have.find('\n', pos);
        if (end == std::string::npos) break;  // a torn last line: cut off below
        json e = json::parse(have.substr(pos, end - pos), nullptr, false);
        if (e.is_discarded() || !e.is_object()) break;
        entries_.push_back(std::move(e));
        ends_.push_back(end + 1);
        pos = end + 1;
      }
    }
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError("cannot open the journal '" + path_.string() + "': " + std::strerror(errno));
  if (header_end_ == 0) {  // new, or started over
    if (::ftruncate(fd_, 0) != 0) throw IoError("cannot truncate '" + path_.string() + "': " + std::strerror(errno));
    write_all(head);
    header_end_ = head.size();
  } else {
    keep(entries_.size());
  }
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

void Journal::keep(size_t n) {
  if (n > entries_.size()) n = entries_.size();
  entries_.resize(n);
  ends_.resize(n);
  const off_t end = static_cast<off_t>(n ? ends_.back() : header_end_);
  if (::ftruncate(fd_, end) != 0 || ::lseek(fd_, end, SEEK_SET) < 0 || ::fsync(fd_) != 0)
    throw IoError("cannot cut the journal '" + path_.string() + "': " + std::strerror(errno));
}

void Journal::write_all(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      throw IoError("cannot write the journal '" + path_.string() + "': " + std::strerror(e),
                    e == ENOSPC ? "the disk is full; free space and re-run with --resume"
                    : e == EFBIG ? "a file-size limit (ulimit -f) stopped this file; raise it and re-run with --resume"
                                 : "");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd_) != 0) throw IoError("cannot flush the journal '" + path_.string() + "': " + std::strerror(errno));
}

void Journal::append(const json& entry) {
  // One line: a kill mid-write leaves a line without its newline, which the next open cuts off.
  write_all(entry.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

JournalScope::JournalScope(std::filesystem::path dir) : dir_(std::move(dir)), outer_(g_scope) { g_scope = this; }

JournalScope::~JournalScope() { g_scope = outer_; }

std::filesystem::path JournalScope::next(const std::string& kind) {
  if (!g_scope) return {};
  const int k = g_scope->counts_[kind]++;
  return g_scope->dir_ / (kind + "-" + std::to_string(k) + ".jsonl");
}

}  // namespace subliminal::fs
