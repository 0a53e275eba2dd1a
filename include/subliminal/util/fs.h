// Files: atomic writes (temp name + fsync + rename), whole-file reads, SHA-256.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace subliminal::fs {

namespace stdfs = std::filesystem;

std::string read_file(const stdfs::path& p);  // throws IoError naming the path
// Writes `data` to `p` via `p.tmp.<pid>`, fsyncs the file and the directory, renames into place.
void write_file_atomic(const stdfs::path& p, const std::string& data);
void fsync_dir(const stdfs::path& dir);
void make_dirs(const stdfs::path& p);

// SHA-256 (FIPS 180-4), hex-encoded.
std::string sha256_hex(const std::string& data);
std::string sha256_file(const stdfs::path& p);

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
