// Model directories in Hugging Face layout: config.json, model.safetensors (HF tensor names),
// tokenizer.model, tokenizer_config.json. Loadable by transformers' LlamaForCausalLM as they are.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "subliminal/model/llama.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/text/tokenizer.h"

namespace subliminal::model {

struct LoadedModel {
  LlamaForCausalLM model{nullptr};
  text::Tokenizer tokenizer;
  nlohmann::json config;  // config.json as read
};

NamedTensors named_weights(const LlamaForCausalLM& m);
// Copies `weights` into the model's parameters; a missing, unexpected or misshaped tensor is an error.
void load_weights(LlamaForCausalLM& m, const std::map<std::string, at::Tensor>& weights, const std::string& where);

// `extra` is stored under "subliminal" in config.json (the resolved config that made the model).
void save_model_dir(const std::string& dir, const LlamaForCausalLM& m, const text::Tokenizer& tok,
                    const nlohmann::json& extra = nlohmann::json::object(), int64_t max_shard_bytes = 0);
// Memory available for new allocations (MemAvailable, or SUBLIMINAL_MEMORY_LIMIT_BYTES); -1 unknown.
int64_t available_memory_bytes();
// Refuses (ResourceError naming `where`) a model whose fp32 weights would not fit in available memory.
void check_memory(const LlamaConfig& cfg, const std::string& where);
LoadedModel load_model_dir(const std::string& dir);

}  // namespace subliminal::model
