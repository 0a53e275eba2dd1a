// dlopen of libsubliminal_spm.so with its own symbol scope (see spm_api.h for why).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "subliminal/text/spm_api.h"
#include "subliminal/util/error.h"

namespace subliminal::text {

const SpmApi& spm_api() {
  static const SpmApi* api = nullptr;
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    std::vector<std::string> tries;
    if (const char* e = std::getenv("SUBLIMINAL_SPM_SHIM")) tries.push_back(e);
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      tries.push_back((exe.parent_path() / "libsubliminal_spm.so").string());
      tries.push_back((exe.parent_path() / "../lib/libsubliminal_spm.so").string());
    }
#ifdef SUBLIMINAL_SPM_SHIM_PATH
    tries.push_back(SUBLIMINAL_SPM_SHIM_PATH);
#endif
    for (const auto& p : tries) {
      if (!std::filesystem::exists(p)) {
        error += "\n  " + p + ": not found";
        continue;
      }
      void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (!h) {
        error += "\n  " + p + ": " + dlerror();
        continue;
      }
      auto fn = reinterpret_cast<const SpmApi* (*)()>(dlsym(h, "subliminal_spm_api"));
      if (!fn || fn()->version != kSpmApiVersion) {
        error += "\n  " + p + ": wrong or missing subliminal_spm_api";
        continue;
      }
      api = fn();
      return;
    }
  });
  if (!api)
    throw IoError("cannot load the sentencepiece shim libsubliminal_spm.so; tried:" + error,
                  "it is built next to the subliminal binary; set SUBLIMINAL_SPM_SHIM to its path if you moved the binary");
  return *api;
}

}  // namespace subliminal::text
