// Fuzzes the IDX reader (plain and gzip): wrong magic, types, dimension counts, sizes, truncation.
#include "fuzz_common.h"
#include "subliminal/mnist/idx.h"
#include "subliminal/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& p = write_input(data, size, ".idx");
  try {
    auto a = subliminal::mnist::read_idx(p);
    size_t n = 1;
    for (auto d : a.dims) n *= static_cast<size_t>(d);
    if (n != a.data.size()) __builtin_trap();  // a returned array must be whole
  } catch (const subliminal::Error&) {
  }
  return 0;
}
