// LoRA on the block projections, with adapters saved in the PEFT layout (adapter_config.json +
// adapter_model.safetensors named base_model.model.<module>.lora_A.weight / lora_B.weight), so
// Python `peft` loads them onto the Hugging Face model directory this tool writes.
#pragma once
#include <map>

#include <nlohmann/json.hpp>
#include <string>

#include "subliminal/config/config.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/safetensors.h"

namespace subliminal::model {

// Fresh adapters on every layer's `target_modules` (A: Kaiming-uniform as PEFT, B: zeros), seeded.
void add_lora(LlamaForCausalLM& m, const config::LoraConfig& c, uint64_t seed);
bool has_lora(const LlamaForCausalLM& m);
// Adapter tensors by PEFT name.
NamedTensors lora_tensors(const LlamaForCausalLM& m);
// Copies tensors (PEFT names) into existing adapters; a missing or misshaped one is an error.
void load_lora_tensors(LlamaForCausalLM& m, const std::map<std::string, at::Tensor>& t, const std::string& where);
// Holds the weights of the `modules` projections (the frozen base under LoRA) in `dtype`; returns the
// bytes saved. Under bf16 autocast this computes exactly what fp32 weights rounded to bf16 would.
int64_t cast_projection_weights(LlamaForCausalLM& m, const std::vector<std::string>& modules, c10::ScalarType dtype);
// Whether lora.base_dtype (auto | fp32 | bf16) holds the frozen base in bf16, for a model whose
// config.json is `hf_config`, trained with bf16 autocast or not. "bf16" without autocast: ConfigError.
bool lora_base_in_bf16(const config::LoraConfig& c, const nlohmann::json& hf_config, bool bf16_autocast, const std::string& field);
// W += scale * B A for every adapter (W back in fp32 first), then removes the adapters.
void merge_lora(LlamaForCausalLM& m);
// Reads a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) onto `m` and merges it
// (W += lora_alpha / r * B A), or with `merge` false keeps it beside the weights (y = W x + scale B A x,
// as training and peft's unmerged forward compute it). Errors name the file and the field or tensor.
void load_peft_adapter(const std::string& dir, LlamaForCausalLM& m, bool merge = true);
void save_peft_adapter(const std::string& dir, const LlamaForCausalLM& m, const config::LoraConfig& c,
                       const std::string& base_model = "");

}  // namespace subliminal::model
