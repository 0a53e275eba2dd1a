#pragma once
// Shared by the tests split out of tests/test_diagnostics.cpp.
// Issue 22's levers and diagnostics: reverse KL and the top-k teacher against the composed ops,
// LLS selection, the data-divergence scores, held-out imitation and coverage against direct
// computations, and greedy teacher decoding.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "subliminal/text/chat_template.h"
#include "subliminal/config/config.h"
#include "subliminal/data/corpus.h"
#include "subliminal/eval/trait.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/lora.h"
#include "subliminal/train/diagnostics.h"
#include "subliminal/train/finetune.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
using json = nlohmann::json;

namespace {

const text::Tokenizer& diag_tokenizer() {
  static text::Tokenizer tok = testutil::corpus_tokenizer(400, 11, 1400);
  return tok;
}

std::vector<data::Conversation> number_convs(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<data::Conversation> out;
  for (int i = 0; i < n; ++i) {
    std::string q = "Continue: " + std::to_string(100 + rng() % 900) + ", " + std::to_string(100 + rng() % 900) + ".";
    std::string a;
    for (int k = 0; k < 3 + static_cast<int>(rng() % 4); ++k) a += (k ? ", " : "") + std::to_string(rng() % 1000);
    out.push_back({{"user", q}, {"assistant", a}});
  }
  return out;
}

// Per-token log-probabilities of the assistant tokens of `c` under m (full vocabulary), composed ops.
std::vector<double> response_logp(model::LlamaForCausalLM m, const text::ChatTemplate& chat, const data::Conversation& c) {
  auto e = chat.encode(c);
  auto ids = torch::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end()), torch::kLong).unsqueeze(0);
  torch::NoGradGuard ng;
  auto lp = torch::log_softmax(m->forward_causal(ids).squeeze(0), -1);
  std::vector<double> out;
  for (size_t t = 1; t < e.ids.size(); ++t)
    if (e.target[t]) out.push_back(lp[static_cast<int64_t>(t - 1)][e.ids[t]].item<double>());
  return out;
}

}  // namespace
