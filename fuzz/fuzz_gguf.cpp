// Fuzzes the GGUF reader: magic, version, counts, metadata of every value type (nested arrays,
// strings, lengths past the end), the tensor index (dimensions, types, offsets, alignment,
// overlaps), then dequantises every tensor it accepted (bounded in size).
#include "fuzz_common.h"
#include "subliminal/model/gguf.h"
#include "subliminal/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& p = write_input(data, size, ".gguf");
  try {
    auto f = subliminal::model::GgufFile::open(p);
    for (const auto& t : f.tensors()) {
      if (t.numel() > (int64_t(1) << 22) || !subliminal::model::ggml_type_supported(t.type)) continue;
      auto v = f.dequantize(t);
      volatile float sink = 0;
      for (float x : v) sink = sink + x;  // touches every value
    }
  } catch (const subliminal::Error&) {
  }
  return 0;
}
