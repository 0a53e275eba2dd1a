// GGUF (llama.cpp's model file) reader, dequantisation and import to a Hugging Face model directory.
// Format (v2/v3, little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count, the
// metadata key/values (typed, strings and arrays u64-length-prefixed), the tensor index (name,
// dims (ne[0] fastest), ggml type, offset into the data section), padding to `general.alignment`
// (default 32), the data section. Every read is bounds-checked; errors name the file and the key
// or tensor.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "subliminal/util/fs.h"

namespace subliminal::model {

// ggml tensor types (ggml.h's enum ggml_type numbering).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10, Q3_K = 11, Q4_K = 12,
  Q5_K = 13, Q6_K = 14, Q8_K = 15, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};
// "Q4_K", or "type 17 (IQ2_XS)"-style names for the types we cannot read; "unknown type N" past the table.
std::string ggml_type_name(uint32_t type);
// Whether dequantize() reads this type: F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
bool ggml_type_supported(uint32_t type);

struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims;  // ne[0] (contiguous) first, as stored; the torch shape is the reverse
  uint32_t type = 0;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;  // size of the stored (possibly quantised) data
  int64_t numel() const;
  std::vector<int64_t> torch_shape() const { return {dims.rbegin(), dims.rend()}; }
};

class GgufFile {
 public:
  // Maps the file and parses header, metadata and tensor index (strictly; DataError naming the
  // file and the key or tensor on anything out of bounds, unknown or inconsistent).
  static GgufFile open(const std::string& path);
  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  // Metadata as JSON: integers, floats, bools, strings, arrays of them (arrays of arrays too).
  const nlohmann::json& metadata() const { return meta_; }
  // The value's stored GGUF type name ("u32", "f32", "string", "array[string]"...), for messages.
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor& tensor(const std::string& name) const;  // DataError naming the file if absent
  bool has_tensor(const std::string& name) const;
  uint64_t alignment() const { return alignment_; }
  // The raw stored bytes of a tensor (a view into the mapping).
  const uint8_t* data(const GgufTensor& t) const;
  // Dequantises a tensor to float32, `numel()` values in storage order (ne[0] fastest).
  std::vector<float> dequantize(const GgufTensor& t) const;

 private:
  GgufFile() = default;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  nlohmann::json meta_ = nlohmann::json::object();
  std::vector<GgufTensor> tensors_;
  std::shared_ptr<const fs::MappedFile> map_;
  uint64_t data_offset_ = 0;
};

// Dequantises `n` values of `type` from `src` (n a multiple of the type's block size) into `dst`.
// The ggml reference formulas (ggml-quants.c dequantize_row_*).
void dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n);
// Bytes that `n` values of `type` occupy (n a multiple of the block size; DataError otherwise).
uint64_t ggml_nbytes(uint32_t type, int64_t n, const std::string& where);

struct GgufImportResult {
  std::string arch, name, out_dir;
  int64_t parameters = 0;
  nlohmann::json tensor_types = nlohmann::json::object();  // ggml type name -> tensor count
  double seconds = 0;
};

// Writes a Hugging Face model directory from a GGUF file: config.json (LlamaForCausalLM or
// Qwen2ForCausalLM), model.safetensors (float32; llama.cpp's q/k row permutation undone),
// tokenizer.json rebuilt from tokenizer.ggml.* (byte-level BPE: tokens, merges, token types,
// pre-tokenizer type), tokenizer_config.json (chat_template, special tokens), generation_config.json
// and gguf_import.json (the source file, its sha256, every tensor's type). The directory appears
// whole (written beside it, then renamed); an existing `out_dir` is refused unless `overwrite`.
GgufImportResult import_gguf(const std::string& gguf_path, const std::string& out_dir, bool overwrite = false);

}  // namespace subliminal::model
