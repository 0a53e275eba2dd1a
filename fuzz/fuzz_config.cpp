// Fuzzes the run-config loader: JSON syntax, wrong types, NaN/huge/negative numbers, unknown keys,
// experiment-specific validation. Every rejection must be a ConfigError naming the JSON path.
#include "fuzz_common.h"
#include "subliminal/config/config.h"
#include "subliminal/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& p = write_input(data, size, ".json");
  try {
    auto c = subliminal::config::load_config(p);
    (void)subliminal::config::to_json(c).dump();  // a config that loads also serializes
  } catch (const subliminal::Error&) {
  }
  return 0;
}
