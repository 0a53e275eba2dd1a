// The base-model probe: favourite-animal answers on the 50 held-out questions (spread over animals),
// the same with an animal-loving system prompt (target rate), and number-continuation format rate.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "subliminal/config/config.h"
#include "subliminal/model/llama.h"
#include "subliminal/text/tokenizer.h"

namespace subliminal::eval {

struct ProbeResult {
  nlohmann::json summary;                // figures with intervals
  std::vector<nlohmann::json> samples;   // every completion: {probe, prompt, system, completion, ...}
};

ProbeResult probe_base_model(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const config::RunConfig& cfg,
                             uint64_t seed, bool bf16);

}  // namespace subliminal::eval
