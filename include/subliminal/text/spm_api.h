// The boundary to sentencepiece. Debian's libsentencepiece.so exports its own copy of protobuf-lite
// 3.14, while LibTorch loads libprotobuf 3.21: linked into one program they bind to each other's
// symbols and crash at start-up or fail protobuf's version check. So sentencepiece lives in a small
// shared library (libsubliminal_spm.so, src/text/spm_shim.cpp) that we dlopen with RTLD_LOCAL |
// RTLD_DEEPBIND: it and its sentencepiece see only their own protobuf, LibTorch only its own.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

namespace subliminal::text {

struct SpmApi {
  int version;
  // Returns a processor handle or nullptr with *err set.
  void* (*load)(const std::string& proto, std::string* err);
  void (*destroy)(void* h);
  bool (*encode)(void* h, const std::string& text, std::vector<int>* ids, std::string* err);
  bool (*decode)(void* h, const std::vector<int>& ids, std::string* out, std::string* err);
  int (*piece_size)(void* h);
  std::string (*id_to_piece)(void* h, int id);
  int (*piece_to_id)(void* h, const std::string& piece);
  int (*special_id)(void* h, int which);  // 0 pad, 1 unk, 2 bos, 3 eos
  int (*piece_type)(void* h, int id);     // 0 normal (user-defined too), 1 unknown, 2 control, 4 byte, 5 unused
  bool (*train)(const std::unordered_map<std::string, std::string>& kwargs, const std::vector<std::string>& texts,
                std::string* proto, std::string* err);
};

constexpr int kSpmApiVersion = 2;

// The loaded API (dlopen once); throws IoError naming the paths tried.
const SpmApi& spm_api();

}  // namespace subliminal::text

extern "C" const subliminal::text::SpmApi* subliminal_spm_api();
