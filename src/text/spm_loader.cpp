// dlopen of libsubliminal_spm.so with its own symbol scope (see spm_api.h for why).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "subliminal/text/spm_api.h"
#include "subliminal/util/error.h"

namespace subliminal::text {

namespace {

// dlopen with its own symbol scope. AddressSanitizer's dlopen interceptor refuses RTLD_DEEPBIND
// (it would let the library bypass the sanitizer's malloc); a sanitizer build calls the C library's
// dlopen directly: the shim is not instrumented and keeps to its own heap behind a C++ API that
// only fills caller-owned strings and vectors.
void* open_own_scope(const char* path) {
#if defined(__SANITIZE_ADDRESS__)
  using dlopen_fn = void* (*)(const char*, int);
  static const dlopen_fn libc_dlopen = [] {
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    return libc ? reinterpret_cast<dlopen_fn>(dlsym(libc, "dlopen")) : nullptr;
  }();
  if (libc_dlopen) return libc_dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
  return dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
}

}  // namespace

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
      void* h = open_own_scope(p.c_str());
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
