// safetensors reader (mmap, zero-copy) and writer (atomic), single file or sharded with
// model.safetensors.index.json. Format: u64 LE header length N, N bytes of JSON, raw LE data.
#pragma once
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace subliminal::model {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct SafetensorsFile {
  std::map<std::string, at::Tensor> tensors;  // read-only views into the mapping: clone before writing
  nlohmann::json metadata = nlohmann::json::object();
};

// Validates the header strictly (bounds, sizes, overlaps, dtypes); errors name the file and tensor.
SafetensorsFile read_safetensors(const std::string& path);
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const nlohmann::json& metadata = nlohmann::json::object());

// A model directory's weights: model.safetensors, or the shards listed in model.safetensors.index.json.
std::map<std::string, at::Tensor> read_model_weights(const std::string& dir);
// Writes model.safetensors, or shards of at most `max_shard_bytes` plus the index when it is exceeded.
void write_model_weights(const std::string& dir, const NamedTensors& tensors, const nlohmann::json& metadata,
                         int64_t max_shard_bytes = 0);

}  // namespace subliminal::model
