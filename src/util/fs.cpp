// Atomic file writes and SHA-256.
#include "subliminal/util/fs.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <cstring>
#include <map>
#include <mutex>
#include <fstream>
#include <sstream>
#include <vector>
#include <algorithm>

#include "subliminal/util/error.h"

namespace subliminal::fs {

std::string read_file(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw IoError("cannot open '" + p.string() + "' for reading: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError("error while reading '" + p.string() + "'");
  return ss.str();
}

MappedFile::~MappedFile() {
  if (data) munmap(const_cast<uint8_t*>(data), size);
}

std::shared_ptr<const MappedFile> map_file(const stdfs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) throw IoError("cannot open '" + p.string() + "': " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw IoError("cannot stat '" + p.string() + "'");
  }
  auto m = std::make_shared<MappedFile>();
  m->size = static_cast<size_t>(st.st_size);
  if (m->size > 0) {
    void* q = mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (q == MAP_FAILED) {
      ::close(fd);
      throw IoError("cannot mmap '" + p.string() + "': " + std::strerror(errno));
    }
    m->data = static_cast<const uint8_t*>(q);
  }
  ::close(fd);
  return m;
}

void fsync_dir(const stdfs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void make_dirs(const stdfs::path& p) {
  std::error_code ec;
  stdfs::create_directories(p, ec);
  if (ec) throw IoError("cannot create directory '" + p.string() + "': " + ec.message());
}

nlohmann::json without_timings(const nlohmann::json& j) {
  static const char* keys[] = {"seconds", "tokens_per_s", "prefill_s", "decode_s", "new_tokens_per_s"};
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& x : j) out.push_back(without_timings(x));
    return out;
  }
  if (!j.is_object()) return j;
  nlohmann::json out = nlohmann::json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find_if(std::begin(keys), std::end(keys), [&](const char* k) { return it.key() == k; }) != std::end(keys)) continue;
    out[it.key()] = without_timings(it.value());
  }
  return out;
}

std::string self_exe() {
  std::error_code ec;
  auto p = stdfs::read_symlink("/proc/self/exe", ec);
  if (ec) throw IoError("cannot resolve /proc/self/exe: " + ec.message());
  return p.string();
}

std::string self_exe_for_spawn() { return "/proc/self/exe"; }

int spawn(const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (!log_path.empty()) {  // stdout and stderr appended to the log
    posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  }
  int rc = posix_spawn(&pid, args.at(0).c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw IoError("cannot start '" + args[0] + "': " + std::strerror(rc));
  return pid;
}

void write_file_atomic(const stdfs::path& p, const std::string& data) {
  if (p.has_parent_path()) make_dirs(p.parent_path());
  stdfs::path tmp = p;
  tmp += ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw IoError("cannot write '" + tmp.string() + "': " + std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw IoError("cannot write '" + p.string() + "': " + std::strerror(e),
                    e == ENOSPC  ? "the disk is full; free space and re-run with --resume"
                    : e == EFBIG ? "a file-size limit (ulimit -f) stopped this file; raise it and re-run with --resume"
                                 : "");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw IoError("cannot flush '" + p.string() + "': " + std::strerror(e));
  }
  if (::rename(tmp.c_str(), p.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw IoError("cannot rename '" + tmp.string() + "' to '" + p.string() + "': " + std::strerror(e));
  }
  fsync_dir(p.parent_path());
}

// ---- SHA-256 ----
namespace {
constexpr uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
}  // namespace

Sha256::Sha256() {
  const uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::memcpy(h_, init, sizeof h_);
}

void Sha256::block(const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t(p[4 * i]) << 24) | (uint32_t(p[4 * i + 1]) << 16) | (uint32_t(p[4 * i + 2]) << 8) | p[4 * i + 3];
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + S1 + ch + K[i] + w[i];
    uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = S0 + mj;
    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h_[0] += a; h_[1] += b; h_[2] += c; h_[3] += d; h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
}

void Sha256::update(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  total_ += n;
  while (n > 0) {
    size_t take = std::min(n, size_t(64) - buf_len_);
    std::memcpy(buf_ + buf_len_, p, take);
    buf_len_ += take; p += take; n -= take;
    if (buf_len_ == 64) { block(buf_); buf_len_ = 0; }
  }
}

std::string Sha256::hex_digest() {
  uint64_t bits = total_ * 8;
  uint8_t pad = 0x80;
  update(&pad, 1);
  uint8_t zero = 0;
  while (buf_len_ != 56) update(&zero, 1);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(bits >> (56 - 8 * i));
  update(len, 8);
  static const char* hexd = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h_)
    for (int s = 28; s >= 0; s -= 4) out += hexd[(v >> s) & 0xf];
  return out;
}

std::string sha256_hex(const std::string& data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.hex_digest();
}

std::string sha256_file(const stdfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw IoError("cannot open '" + p.string() + "' for hashing");
  Sha256 h;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), buf.size());
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.hex_digest();
}

int remove_temp_files(const stdfs::path& dir) {
  int n = 0;
  std::error_code ec;
  std::vector<stdfs::path> found;
  for (auto it = stdfs::recursive_directory_iterator(dir, ec); !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string name = it->path().filename().string();
    const auto k = name.rfind(".tmp.");
    if (k == std::string::npos || k + 5 >= name.size()) continue;
    if (name.find_first_not_of("0123456789", k + 5) == std::string::npos) found.push_back(it->path());
  }
  for (const auto& p : found) n += stdfs::remove(p, ec) ? 1 : 0;
  return n;
}

std::string sha256_file_cached(const stdfs::path& p) {
  static std::mutex mu;
  static std::map<std::string, std::string> cache;
  std::error_code ec;
  const auto key = p.string() + "|" + std::to_string(stdfs::file_size(p, ec)) + "|" +
                   std::to_string(stdfs::last_write_time(p, ec).time_since_epoch().count());
  {
    std::lock_guard<std::mutex> g(mu);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  std::string h = sha256_file(p);
  std::lock_guard<std::mutex> g(mu);
  return cache[key] = h;
}

std::string iso_now() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace subliminal::fs
