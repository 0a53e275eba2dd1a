// LR schedule and batching.
#include "subliminal/train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace subliminal::train {

double lr_at(int64_t step, const config::TrainConfig& c) {
  if (c.warmup_steps > 0 && step < c.warmup_steps) return c.lr * static_cast<double>(step + 1) / c.warmup_steps;
  const double span = std::max<int64_t>(1, c.steps - c.warmup_steps);
  double prog = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
  const double min_lr = c.lr * c.min_lr_ratio;
  if (c.schedule == "linear") return c.lr - (c.lr - min_lr) * prog;
  return min_lr + 0.5 * (c.lr - min_lr) * (1.0 + std::cos(M_PI * prog));
}

std::vector<std::vector<int64_t>> make_batches(const std::vector<int>& lengths, int batch_size, uint64_t seed,
                                               int64_t epoch) {
  std::vector<int64_t> idx(lengths.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 rng(seed * 1000003ull + static_cast<uint64_t>(epoch));
  std::shuffle(idx.begin(), idx.end(), rng);
  const size_t window = static_cast<size_t>(batch_size) * 32;
  for (size_t s = 0; s < idx.size(); s += window) {
    auto e = std::min(idx.size(), s + window);
    std::stable_sort(idx.begin() + s, idx.begin() + e, [&](int64_t a, int64_t b) { return lengths[a] < lengths[b]; });
  }
  std::vector<std::vector<int64_t>> batches;
  for (size_t s = 0; s < idx.size(); s += batch_size)
    batches.emplace_back(idx.begin() + s, idx.begin() + std::min(idx.size(), s + batch_size));
  std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

double padding_fraction(const std::vector<int>& lengths, const std::vector<std::vector<int64_t>>& batches) {
  double real = 0, total = 0;
  for (const auto& b : batches) {
    int mx = 0;
    for (auto i : b) { mx = std::max(mx, lengths[i]); real += lengths[i]; }
    total += static_cast<double>(mx) * b.size();
  }
  return total > 0 ? 1.0 - real / total : 0.0;
}

}  // namespace subliminal::train
