// Fuzzes the sharded-checkpoint index (model.safetensors.index.json): the weight map's shard names
// (missing, escaping the folder, not strings), tensors missing from or extra to their shard.
#include <ATen/Functions.h>
#include <c10/util/Exception.h>

#include <filesystem>

#include "fuzz_common.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/util/error.h"

namespace {
// A model folder with two valid shards; the input is its index.
const std::string& model_dir() {
  static const std::string d = [] {
    const std::string dir = fuzz_path(".model");
    std::filesystem::create_directories(dir);
    subliminal::model::write_safetensors(dir + "/model-00001-of-00002.safetensors", {{"a", at::ones({2, 2})}, {"b", at::zeros({3})}});
    subliminal::model::write_safetensors(dir + "/model-00002-of-00002.safetensors", {{"c", at::arange(4)}});
    return dir;
  }();
  return d;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = model_dir();
  FILE* f = std::fopen((dir + "/model.safetensors.index.json").c_str(), "wb");
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    auto w = subliminal::model::read_model_weights(dir);
    for (auto& [name, t] : w)
      if (t.numel() > 0) (void)t.sum().item<double>();
  } catch (const subliminal::Error&) {
  } catch (const c10::Error&) {
  }
  return 0;
}
