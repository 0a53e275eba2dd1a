// A minimal GGUF v3 writer for tests (and the fuzz seeds): metadata of the common value types and
// tensors with raw stored bytes, laid out as llama.cpp's gguf.c writes them.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace testutil {

struct GgufWriter {
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;  // ne[0] first
    uint32_t type;
    std::string bytes;
  };
  std::vector<std::pair<std::string, std::string>> kv;  // key -> encoded (type + value)
  std::vector<Tensor> tensors;
  uint32_t version = 3;
  uint64_t alignment = 32;

  template <class T>
  static void put(std::string& s, T v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  static void put_str(std::string& s, const std::string& v) {
    put<uint64_t>(s, v.size());
    s += v;
  }
  void u32(const std::string& k, uint32_t v) { kv.push_back({k, enc<uint32_t>(4, v)}); }
  void i32(const std::string& k, int32_t v) { kv.push_back({k, enc<int32_t>(5, v)}); }
  void f32(const std::string& k, float v) { kv.push_back({k, enc<float>(6, v)}); }
  void boolean(const std::string& k, bool v) { kv.push_back({k, enc<uint8_t>(7, v ? 1 : 0)}); }
  void str(const std::string& k, const std::string& v) {
    std::string s;
    put<uint32_t>(s, 8);
    put_str(s, v);
    kv.push_back({k, s});
  }
  void strs(const std::string& k, const std::vector<std::string>& v) {
    std::string s;
    put<uint32_t>(s, 9);
    put<uint32_t>(s, 8);
    put<uint64_t>(s, v.size());
    for (const auto& x : v) put_str(s, x);
    kv.push_back({k, s});
  }
  void i32s(const std::string& k, const std::vector<int32_t>& v) {
    std::string s;
    put<uint32_t>(s, 9);
    put<uint32_t>(s, 5);
    put<uint64_t>(s, v.size());
    for (auto x : v) put<int32_t>(s, x);
    kv.push_back({k, s});
  }
  void tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, std::string bytes) {
    tensors.push_back({name, std::move(dims), type, std::move(bytes)});
  }
  void f32_tensor(const std::string& name, std::vector<uint64_t> dims, const std::vector<float>& v) {
    tensor(name, std::move(dims), 0, std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
  }
  std::string bytes() const {
    std::string s = "GGUF";
    put<uint32_t>(s, version);
    put<uint64_t>(s, tensors.size());
    put<uint64_t>(s, kv.size());
    for (const auto& [k, v] : kv) {
      put_str(s, k);
      s += v;
    }
    uint64_t off = 0;
    for (const auto& t : tensors) {
      put_str(s, t.name);
      put<uint32_t>(s, static_cast<uint32_t>(t.dims.size()));
      for (auto d : t.dims) put<uint64_t>(s, d);
      put<uint32_t>(s, t.type);
      put<uint64_t>(s, off);
      off += (t.bytes.size() + alignment - 1) / alignment * alignment;
    }
    while (s.size() % alignment) s += '\0';
    for (const auto& t : tensors) {
      s += t.bytes;
      while (s.size() % alignment) s += '\0';
    }
    return s;
  }

 private:
  template <class T>
  static std::string enc(uint32_t type, T v) {
    std::string s;
    put<uint32_t>(s, type);
    put<T>(s, v);
    return s;
  }
};

}  // namespace testutil
