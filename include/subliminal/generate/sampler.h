// Batched sampling with the KV cache: left-padded prefill, per-row positions and key-padding
// masks, temperature and top-p, a seeded generator per batch (same seed => same samples).
#pragma once
#include <cstdint>
#include <vector>

#include "subliminal/model/llama.h"

namespace subliminal::generate {

struct SampleOptions {
  int max_new_tokens = 40;
  double temperature = 1.0;  // 0: greedy
  double top_p = 1.0;
  std::vector<int> stop_ids;
  uint64_t seed = 0;
  int batch_size = 64;
  int pad_id = 0;
  bool bf16 = false;
  bool use_cache = true;     // false: recompute the whole prefix every step (reference / benchmark)
};

// Options for chat sampling: stop at the end-of-turn ids, pad with the tokenizer's pad id.
inline SampleOptions chat_options(const std::vector<int>& stop_ids, int pad_id, int max_new_tokens, double temperature,
                                  double top_p, bool bf16, int batch_size = 64, uint64_t seed = 0) {
  SampleOptions o;
  o.stop_ids = stop_ids;
  o.pad_id = pad_id;
  o.max_new_tokens = max_new_tokens;
  o.temperature = temperature;
  o.top_p = top_p;
  o.bf16 = bf16;
  o.batch_size = batch_size;
  o.seed = seed;
  return o;
}

struct SampleStats {
  int64_t prompt_tokens = 0, new_tokens = 0;
  double prefill_s = 0, decode_s = 0;
};

// Returns the generated ids of each prompt (stop token excluded).
std::vector<std::vector<int>> sample(model::LlamaForCausalLM& m, const std::vector<std::vector<int>>& prompts,
                                     const SampleOptions& opt, SampleStats* stats = nullptr);

}  // namespace subliminal::generate
