// Batched sampling with the KV cache: left-padded prefill, per-row positions and key-padding
// masks, temperature and top-p, a seeded generator per batch (same seed => same samples).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "subliminal/model/llama.h"

namespace subliminal::generate {

struct SampleOptions {
  int max_new_tokens = 40;
  double temperature = 1.0;  // 0: greedy
  double top_p = 1.0;
  std::vector<int> stop_ids;
  uint64_t seed = 0;
  int batch_size = 64;        // 0: as many sequences as fit in free memory (the count then depends on the machine)
  std::string batch_field = "batch_size";  // the config field or flag, named in a refusal
  int pad_id = 0;
  bool bf16 = false;
  bool use_cache = true;     // false: recompute the whole prefix every step (reference / benchmark)
  // When set, called with a row's new ids after each of its tokens: true ends the row there (its
  // output is the ids so far, no stop id), as if it had stopped. Rows that have ended leave the batch
  // (its KV cache, masks and positions are compacted once a quarter of its rows have ended), so a
  // batch whose rows mostly end early costs little. `give_up_name` names the rule in the journal
  // header (a different rule samples differently). Needs use_cache.
  std::function<bool(const std::vector<int>&)> give_up;
  std::string give_up_name;
  // Constrained decoding: when set, called for each live row before each of its tokens with the
  // row's new ids so far; it fills `out` with the ids the row may take next (a stop id where the row
  // may end). Every other logit is -inf before sampling, and the probability mass those tokens held
  // (softmax at the sampling temperature, 1 when greedy) is counted in SampleStats. A row left with
  // no allowed id ends there. `allowed_name` names the rule in the journal header. Needs use_cache.
  std::function<void(const std::vector<int>& ids, std::vector<int64_t>& out)> allowed;
  std::string allowed_name;
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
  int64_t given_up = 0;  // rows that give_up ended (0 on a resumed call's read-back batches)
  // Constrained decoding (journaled, so a resumed call counts every batch): tokens sampled under the
  // mask, the probability mass the mask removed summed over them, how many of them lost more than
  // half, the most any lost, and rows ended because no token was allowed.
  int64_t constrained_tokens = 0, masked_over_half = 0, no_allowed = 0;
  double masked_mass = 0, masked_max = 0;
  // Another batch's counts added (masked_max: the larger).
  SampleStats& operator+=(const SampleStats& o);
};

// Bytes one sequence needs while generating: its KV cache over prompt + new tokens, the prefill's
// activations and attention scores, and the sampling buffers over the vocabulary.
int64_t generation_bytes_per_sequence(const model::LlamaConfig& c, int64_t prompt_len, int64_t new_tokens, bool bf16);
// The batch size to generate with: `requested` if it fits in `free_bytes` (90% of it), else a
// ResourceError naming `field` and the largest size that fits; requested 0: the largest that fits
// (1 .. 4096). free_bytes < 0 (unknown): requested, or 64 for 0.
int fit_generation_batch(int requested, int64_t per_sequence, int64_t free_bytes, const std::string& field);

// Returns the generated ids of each prompt (stop token excluded).
std::vector<std::vector<int>> sample(model::LlamaForCausalLM& m, const std::vector<std::vector<int>>& prompts,
                                     const SampleOptions& opt, SampleStats* stats = nullptr);

}  // namespace subliminal::generate
