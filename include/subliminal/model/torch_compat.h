// The few LibTorch APIs that differ between the versions we build against: Debian 12's 1.13,
// Debian 13's 2.6, and the 2.x of a current torch wheel (CPU or CUDA). One code base, version
// macros here and nowhere else. Include only from .cpp files of the model/train layers.
#pragma once
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

// Version as one number: 1.13 -> 113, 2.6 -> 206, 2.13 -> 213.
#define SUBLIMINAL_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR * 100 + TORCH_VERSION_MINOR >= (major) * 100 + (minor))

// at::scaled_dot_product_attention: public from 2.0 (the fused CPU kernels, flash attention with an
// additive mask on CPU from 2.3); 1.13 has only a private, slower math op, so there we compose it.
#define SUBLIMINAL_HAS_SDPA SUBLIMINAL_TORCH_AT_LEAST(2, 0)

namespace subliminal::model::compat {

// Autocast state per device type. 2.4 made it one API over device types (and deprecated the
// per-device functions 1.13 has); 2.x before 2.4 still has the 1.13 names.
inline bool autocast_enabled(bool cuda) {
#if SUBLIMINAL_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline void set_autocast_enabled(bool cuda, bool on) {
#if SUBLIMINAL_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on);
#else
  if (cuda) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
#endif
}

inline at::ScalarType autocast_dtype(bool cuda) {
#if SUBLIMINAL_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void set_autocast_dtype(bool cuda, at::ScalarType t) {
#if SUBLIMINAL_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, t);
#else
  if (cuda) at::autocast::set_autocast_gpu_dtype(t);
  else at::autocast::set_autocast_cpu_dtype(t);
#endif
}

}  // namespace subliminal::model::compat
