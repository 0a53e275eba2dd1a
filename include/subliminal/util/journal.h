// Resumable work inside a stage: an append-only JSONL journal of finished units.
//
// The first line is a header naming the work (a fingerprint of every input that decides the
// result); each later line is one finished unit (a sampled batch, a judged chunk), written with one
// write(2) and fsynced before the next unit starts. Re-opening a journal keeps its complete lines
// when the header matches, cuts off a torn last line (a process killed mid-write), and starts over
// when the header differs. The number of entries is the completed count.
//
// A stage opens a JournalScope on a folder of its partial directory; code deep inside it (the
// sampler, a judge) asks the scope for its next journal path, so the k-th sampling call of a
// resumed stage reads the k-th call's journal of the interrupted one (the header check makes a
// mismatch start over, never mix). Outside a scope nothing is journaled.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace subliminal::fs {

class Journal {
 public:
  Journal(std::filesystem::path path, nlohmann::json header);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Entries found on opening (complete lines after a matching header), in order.
  const std::vector<nlohmann::json>& entries() const { return entries_; }
  // Keeps only the first `n` entries found (the caller found entry n unusable): the file is cut there.
  void keep(size_t n);
  // Appends one entry (one line, fsynced). An IoError names the file.
  void append(const nlohmann::json& entry);
  const std::filesystem::path& path() const { return path_; }
  // Why the existing file was not continued ("" when it was, or there was none).
  const std::string& restarted_because() const { return restarted_; }

 private:
  void write_all(const std::string& data);
  std::filesystem::path path_;
  std::vector<nlohmann::json> entries_;
  std::vector<size_t> ends_;  // byte offset after each entry's line
  size_t header_end_ = 0;
  std::string restarted_;
  int fd_ = -1;
};

class JournalScope {
 public:
  explicit JournalScope(std::filesystem::path dir);
  ~JournalScope();
  JournalScope(const JournalScope&) = delete;
  JournalScope& operator=(const JournalScope&) = delete;
  // "<dir>/<kind>-<k>.jsonl" for the k-th request of `kind` in the innermost scope of this thread;
  // empty outside any scope.
  static std::filesystem::path next(const std::string& kind);

 private:
  std::filesystem::path dir_;
  std::map<std::string, int> counts_;
  JournalScope* outer_;
};

}  // namespace subliminal::fs
