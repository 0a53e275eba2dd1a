// Fuzzes the safetensors reader: header length, JSON header, dtypes, shapes, offsets (out of range,
// overlapping, huge), then every tensor is read whole.
#include <c10/util/Exception.h>

#include "fuzz_common.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& p = write_input(data, size, ".safetensors");
  try {
    auto f = subliminal::model::read_safetensors(p);
    for (auto& [name, t] : f.tensors) {
      if (t.numel() > 0) (void)t.sum().item<double>();  // touches every element
    }
  } catch (const subliminal::Error&) {
  } catch (const c10::Error&) {
  }
  return 0;
}
