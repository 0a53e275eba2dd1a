// Shared helpers for tests: temp dirs, running the CLI binary, the tiny tokenizer.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include <c10/util/Exception.h>

#include "subliminal/config/config.h"
#include "subliminal/data/corpus.h"
#include "subliminal/model/llama.h"
#include "subliminal/text/chat_template.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/util/error.h"

namespace testutil {

inline std::filesystem::path temp_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("subliminal_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

struct CmdResult {
  int code;
  std::string out;
};
// Runs the subliminal binary with `args` (stdout+stderr captured; stdout alone with merge_stderr false).
inline CmdResult run_cli(const std::string& args, bool merge_stderr = true) {
  std::string cmd = std::string(SUBLIMINAL_BIN) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  CmdResult r{0, ""};
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline std::string source_dir() { return SUBLIMINAL_SOURCE_DIR; }
// The python whose torch is the version of the LibTorch we built against (CMake's
// SUBLIMINAL_REFERENCE_PYTHON: the wheel's venv, or Debian's python3 with python3-torch), quoted.
inline std::string reference_python() { return std::string("'") + SUBLIMINAL_REFERENCE_PYTHON + "'"; }
inline bool have_reference_torch() {
  static const bool ok = std::string(SUBLIMINAL_REFERENCE_PYTHON).size() > 0 &&
                         std::system((reference_python() + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
  return ok;
}

// A tokenizer trained (sentencepiece, numbers 0..999 as pieces) on a small synthetic corpus plus `extra` texts.
inline subliminal::text::Tokenizer corpus_tokenizer(int64_t conversations, uint64_t seed, int vocab_size,
                                                   const std::vector<std::string>& extra = {}) {
  subliminal::config::CorpusConfig cc;
  cc.conversations = conversations;
  auto corpus = subliminal::data::build_corpus(cc, seed, "");
  std::vector<std::string> texts = {"system\n", "user\n", "assistant\n", "\n"};
  for (const auto& c : corpus)
    for (const auto& m : c) texts.push_back(m.content);
  texts.insert(texts.end(), extra.begin(), extra.end());
  subliminal::text::TrainOptions tc;
  tc.vocab_size = vocab_size;
  return subliminal::text::Tokenizer::train(texts, tc);
}

// A seeded model of the "tiny" preset (~60k parameters) over `vocab` tokens, in eval mode.
inline subliminal::model::LlamaForCausalLM tiny_lm(uint64_t seed, int vocab) {
  auto cfg = subliminal::model::LlamaConfig::from(subliminal::config::model_preset("tiny"), vocab);
  subliminal::model::LlamaForCausalLM m(cfg);
  subliminal::model::init_weights(m, seed);
  m->eval();
  return m;
}

// n random sequences of 12 ids in [1, vocab), the last 6 of each the training target.
inline std::vector<subliminal::text::Encoded> toy_data(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<subliminal::text::Encoded> out;
  for (int i = 0; i < n; ++i) {
    subliminal::text::Encoded e;
    for (int t = 0; t < 12; ++t) {
      e.ids.push_back(static_cast<int>(rng() % (vocab - 1)) + 1);
      e.target.push_back(t >= 6);
    }
    out.push_back(e);
  }
  return out;
}

// The message of the subliminal::Error (or LibTorch check) that `f` throws; "" if it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const subliminal::Error& e) {
    return e.what();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

}  // namespace testutil
