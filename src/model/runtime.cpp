// Runtime setup.
#include "subliminal/model/runtime.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

#include "subliminal/model/model_io.h"
#include "subliminal/model/torch_compat.h"
#include "subliminal/util/error.h"

namespace subliminal::model {

Autocast::Autocast(bool on, bool cuda) : on_(on), cuda_(cuda), prev_(false) {
  if (!on_) return;
  prev_ = compat::autocast_enabled(cuda_);
  compat::set_autocast_dtype(cuda_, at::kBFloat16);
  compat::set_autocast_enabled(cuda_, true);
  at::autocast::increment_nesting();
}

Autocast::~Autocast() {
  if (!on_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  compat::set_autocast_enabled(cuda_, prev_);
}

bool cpu_has_bf16_matmul() {
  static int cached = -1;
  if (cached < 0) {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    cached = 0;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) == 0) {
        cached = (line.find(" amx_bf16") != std::string::npos || line.find(" avx512_bf16") != std::string::npos) ? 1 : 0;
        break;
      }
    }
  }
  return cached == 1;
}

int64_t free_memory_bytes(const c10::Device& dev) {
  if (std::getenv("SUBLIMINAL_MEMORY_LIMIT_BYTES") || !dev.is_cuda()) return available_memory_bytes();
  // The CUDA runtime is in the process when LibTorch is a CUDA build; look it up instead of linking
  // it, so the same source builds against CPU-only LibTorch.
  using GetInfo = int (*)(size_t*, size_t*);
  using SetDev = int (*)(int);
  using GetDev = int (*)(int*);
  auto get_info = reinterpret_cast<GetInfo>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  auto set_dev = reinterpret_cast<SetDev>(dlsym(RTLD_DEFAULT, "cudaSetDevice"));
  auto get_dev = reinterpret_cast<GetDev>(dlsym(RTLD_DEFAULT, "cudaGetDevice"));
  if (!get_info || !set_dev || !get_dev) return -1;
  int prev = 0;
  if (get_dev(&prev) != 0) return -1;
  const int want = dev.has_index() ? dev.index() : 0;
  if (want != prev && set_dev(want) != 0) return -1;
  size_t free = 0, total = 0;
  const int rc = get_info(&free, &total);
  if (want != prev) set_dev(prev);
  return rc == 0 ? static_cast<int64_t>(free) : -1;
}

c10::Device resolve_device(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  bool cuda = torch::cuda::is_available();
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!cuda) throw ConfigError("device \"" + name + "\" requested but this LibTorch build sees no CUDA device",
                                 "use \"cpu\" or \"auto\", or build against a CUDA LibTorch (README: GPU build)");
    const std::string digits = name == "cuda" ? "0" : name.substr(5);
    if (digits.empty() || digits.size() > 3 || !std::all_of(digits.begin(), digits.end(), ::isdigit))
      throw ConfigError("device \"" + name + "\": expected cpu, auto, cuda or cuda:<index>");
    const int index = std::stoi(digits);
    const int count = static_cast<int>(torch::cuda::device_count());
    if (index >= count)
      throw ConfigError("device \"" + name + "\": this machine has " + std::to_string(count) + " CUDA device(s)", "use cuda:0 .. cuda:" + std::to_string(count - 1));
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  if (name != "auto") throw ConfigError("device \"" + name + "\": expected cpu, cuda, cuda:N or auto");
  return cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
}

bool use_bf16(const std::string& precision, const c10::Device& dev) {
  if (precision == "bf16") return true;
  if (precision == "fp32") return false;
  return dev.is_cuda() || cpu_has_bf16_matmul();
}

int setup_threads(int requested) {
  int n = requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  static std::once_flag once;
  std::call_once(once, [] {
    try {
      at::set_num_interop_threads(1);
    } catch (...) {  // already set by an earlier parallel region
    }
  });
  return n;
}

int get_threads() { return at::get_num_threads(); }

std::string parallel_info() { return at::get_parallel_info(); }
std::string torch_version() { return TORCH_VERSION; }
std::string torch_source() { return SUBLIMINAL_TORCH_SOURCE; }
std::string torch_dir() { return SUBLIMINAL_TORCH_DIR; }
std::string reference_python() { return SUBLIMINAL_REFERENCE_PYTHON; }
std::string torch_description() {
  std::string cuda = torch::cuda::is_available() ? ", CUDA devices: " + std::to_string(torch::cuda::device_count()) : "";
  return "LibTorch " + torch_version() + " (" + torch_source() + ": " + torch_dir() + cuda + ")";
}

}  // namespace subliminal::model
