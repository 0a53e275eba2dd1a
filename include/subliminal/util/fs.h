// Files: atomic writes (temp name + fsync + rename), whole-file reads, SHA-256.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace subliminal::fs {

namespace stdfs = std::filesystem;

std::string read_file(const stdfs::path& p);  // throws IoError naming the path
// A whole file mapped read-only (MAP_PRIVATE); unmapped when the last reference goes. IoError naming
// the path when it cannot be opened or mapped; an empty file maps to {nullptr, 0}.
struct MappedFile {
  const uint8_t* data = nullptr;
  size_t size = 0;
  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
};
std::shared_ptr<const MappedFile> map_file(const stdfs::path& p);
// Writes `data` to `p` via `p.tmp.<pid>`, fsyncs the file and the directory, renames into place.
void write_file_atomic(const stdfs::path& p, const std::string& data);
void fsync_dir(const stdfs::path& dir);
// Removes, under `dir`, the temporary files a write_file_atomic killed mid-way leaves behind
// (`<name>.tmp.<pid>`); returns how many.
int remove_temp_files(const stdfs::path& dir);
void make_dirs(const stdfs::path& p);
// `j` without wall-clock measurements (keys seconds, tokens_per_s, prefill_s, decode_s,
// new_tokens_per_s, at any depth): metadata written into artifacts leaves them out so that the same
// config and seed give byte-identical files (and the same digests downstream); timings go to
// stage.json's results and the report.
nlohmann::json without_timings(const nlohmann::json& j);
// This process's executable (/proc/self/exe resolved).
std::string self_exe();
// What to spawn to run this same binary again: "/proc/self/exe", which names the running file even
// after a rebuild replaced or deleted it at its path (so a run or sweep keeps one binary throughout;
// self_exe() would then read "<path> (deleted)").
std::string self_exe_for_spawn();
// Starts args[0] with args (no shell), inheriting the environment and stdio (or, with `log_path`,
// stdout and stderr appended to that file); returns its pid.
int spawn(const std::vector<std::string>& args, const std::string& log_path = "");

// SHA-256 (FIPS 180-4), hex-encoded.
std::string sha256_hex(const std::string& data);
// The current UTC time as 2026-12-06T06:19:59Z.
std::string iso_now();
std::string sha256_file(const stdfs::path& p);
// The same, computed once per process for a given (path, size, mtime): files that many stages read
// (a checkpoint's shards, a base model) are hashed once.
std::string sha256_file_cached(const stdfs::path& p);

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

}  // namespace subliminal::fs
