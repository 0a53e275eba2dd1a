// libFuzzer harness helpers: the parsers read files, so each input is written to a per-process file
// in /dev/shm (or /tmp) first. A parser may reject an input only with one of our errors (or a LibTorch
// check); anything else -- a crash, a sanitizer report, another exception type -- is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

inline const std::string& fuzz_path(const char* ext) {
  static const std::string p = [&] {
    const char* base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    return std::string(base) + "/subliminal_fuzz_" + std::to_string(::getpid()) + ext;
  }();
  return p;
}

inline const std::string& write_input(const uint8_t* data, size_t size, const char* ext) {
  const std::string& p = fuzz_path(ext);
  FILE* f = std::fopen(p.c_str(), "wb");
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return p;
}
