// Learning-rate schedule and length-bucketed batching: pure functions, no torch.
#pragma once
#include <cstdint>
#include <vector>

#include "subliminal/config/config.h"

namespace subliminal::train {

// Linear warmup to cfg.lr over warmup_steps, then cosine (or, schedule "linear", linear) decay to
// lr * min_lr_ratio at `steps`.
double lr_at(int64_t step, const config::TrainConfig& cfg);

// One epoch of batches (indices into `lengths`): shuffled by (seed, epoch), sorted by length within
// windows of 32 batches so each batch carries little padding, batch order shuffled again.
std::vector<std::vector<int64_t>> make_batches(const std::vector<int>& lengths, int batch_size, uint64_t seed,
                                               int64_t epoch);
// Fraction of padding a set of batches carries (0 = none).
double padding_fraction(const std::vector<int>& lengths, const std::vector<std::vector<int64_t>>& batches);

}  // namespace subliminal::train
