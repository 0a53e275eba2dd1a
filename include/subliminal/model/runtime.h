// Runtime: device and precision choice, the CPU bf16 autocast guard, thread setup.
#pragma once
#include <c10/core/Device.h>

#include <string>

namespace subliminal::model {

// RAII guard around LibTorch's autocast (the C++ API has none; see torch_compat.h for the versions): bf16 inside, previous
// state after, cache cleared on exit so updated weights are never read stale.
struct Autocast {
  explicit Autocast(bool on, bool cuda = false);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool on_, cuda_, prev_;
};

bool cpu_has_bf16_matmul();
// Memory free for new allocations on `dev`: SUBLIMINAL_MEMORY_LIMIT_BYTES if set (tests, shared
// nodes); else on CPU MemAvailable, on CUDA cudaMemGetInfo's free bytes (found at run time in the
// CUDA runtime LibTorch loaded; blocks PyTorch's caching allocator holds count as used); -1 if unknown.
int64_t free_memory_bytes(const c10::Device& dev);  // AMX-BF16 or AVX512-BF16 in /proc/cpuinfo
c10::Device resolve_device(const std::string& name);  // cpu | cuda | cuda:N | auto
// "bf16" / "fp32" / "auto" -> whether to run matmuls in bf16 autocast.
bool use_bf16(const std::string& precision, const c10::Device& dev);
// Sets ATen intra-op threads (0: all cores) and 1 inter-op thread; returns the count.
int setup_threads(int requested);
int get_threads();
std::string parallel_info();
std::string torch_version();
// Where the LibTorch we link came from: "debian" (libtorch-dev), "wheel" (a torch wheel's) or
// "prefix" (any other, through CMAKE_PREFIX_PATH), and its CMake directory (CMakeLists.txt).
std::string torch_source();
std::string torch_dir();
// The python whose torch is the same version as this LibTorch (tests/reference, bench); "" if none.
std::string reference_python();
std::string torch_description();  // "LibTorch 2.13.0 (wheel: /path/to/share/cmake/Torch)"

}  // namespace subliminal::model
