// The one thing llama.cpp's common/json.cpp takes from ggml.h: GGML_ASSERT (nlohmann's JSON_ASSERT
// there). llama.cpp's Jinja engine is built without ggml (CMakeLists.txt: lcpp_jinja).
#pragma once
#include <cstdio>
#include <cstdlib>
#define GGML_ASSERT(x)                                                                      \
  do {                                                                                      \
    if (!(x)) {                                                                             \
      std::fprintf(stderr, "%s:%d: assertion failed in llama.cpp's JSON: %s\n", __FILE__, __LINE__, #x); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)
