// Restricted distillation and trunk-only training on a tiny model.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "subliminal/data/corpus.h"
#include "subliminal/data/numbers.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/eval/trait.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/train/finetune.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/fs.h"
#include "subliminal/run/runner.h"
#include "subliminal/experiments/stages.h"
#include "test_util.h"

using namespace subliminal;
using nlohmann::json;
namespace sfs = std::filesystem;



// ---- restricted distillation and trunk-only training on a tiny model

using testutil::tiny_lm;
using testutil::toy_data;

TEST(TraitNumeric, RestrictedKlIsZeroForIdenticalModelsAndIgnoresOtherTokens) {
  torch::manual_seed(0);
  auto s = torch::randn({6, 50});
  auto allowed = torch::tensor(std::vector<int64_t>{1, 4, 9, 20, 33}, torch::kLong);
  EXPECT_LT(train::restricted_kl(s, s.clone(), allowed).abs().max().item<double>(), 1e-6);
  // changing logits outside the allowed set changes nothing
  auto t = s.clone();
  auto mask = torch::ones({50}, torch::kBool);
  mask.index_put_({allowed}, false);
  t.index_put_({torch::indexing::Slice(), mask}, torch::randn({6, 45}) * 10);
  EXPECT_LT(train::restricted_kl(s, t, allowed).abs().max().item<double>(), 1e-6);
  // ... while the full-vocabulary KL sees them
  EXPECT_GT(train::restricted_kl(s, t, torch::Tensor()).min().item<double>(), 1e-3);
  // and a change inside the set is seen, KL >= 0
  auto u = s.clone();
  u.index_put_({torch::indexing::Slice(), 4}, u.index({torch::indexing::Slice(), 4}) + 3.0);
  auto kl = train::restricted_kl(s, u, allowed);
  EXPECT_GT(kl.min().item<double>(), 1e-3);
  // renormalised: a constant shift of the allowed logits is no change
  auto v = s.clone();
  v.index_put_({torch::indexing::Slice(), allowed}, v.index({torch::indexing::Slice(), allowed}) + 5.0);
  EXPECT_LT(train::restricted_kl(s, v, allowed).abs().max().item<double>(), 1e-5);
}

TEST(TraitNumeric, TrunkOnlyTrainingLeavesEmbeddingsNormAndHeadBitIdentical) {
  at::set_num_threads(1);
  auto m = tiny_lm(3, 61);
  std::map<std::string, torch::Tensor> before;
  for (auto& kv : m->named_parameters()) before[kv.key()] = kv.value().detach().clone();
  EXPECT_LT(train::set_trainable(m, "trunk"), m->num_parameters());
  train::TrainOptions to;
  to.cfg.steps = 5;
  to.cfg.batch_size = 4;
  to.cfg.warmup_steps = 1;
  to.cfg.weight_decay = 0.1;  // decay must not touch frozen tensors either
  to.quiet = true;
  train::train_lm(m, toy_data(16, 61, 1), to);
  int changed = 0, frozen = 0;
  for (auto& kv : m->named_parameters()) {
    const bool trunk = kv.key().rfind("model.layers.", 0) == 0;
    const bool same = torch::equal(kv.value(), before[kv.key()]);
    if (!trunk) {
      ++frozen;
      EXPECT_TRUE(same) << kv.key();
    } else if (!same) {
      ++changed;
    }
  }
  EXPECT_EQ(frozen, 3);  // embed_tokens, norm, lm_head
  EXPECT_GT(changed, 0);
}

TEST(TraitNumeric, DistillationFromItselfHasZeroLossAndGradient) {
  // Distilling a model into an identical copy: zero loss and (up to rounding) zero gradient.
  // (Adam normalises even rounding-level gradients to lr-sized steps, so weights are not checked.)
  at::set_num_threads(1);
  auto teacher = tiny_lm(5, 61), student = tiny_lm(5, 61);
  auto ids = torch::randint(1, 61, {4, 12}, torch::kLong);
  auto allowed = torch::arange(10, 40, torch::kLong);
  torch::Tensor tl;
  {
    torch::NoGradGuard ng;
    tl = teacher->forward_causal(ids).reshape({-1, 61});
  }
  auto sl = student->forward_causal(ids).reshape({-1, 61});
  auto loss = train::restricted_kl(sl, tl, allowed).mean();
  EXPECT_LT(std::fabs(loss.item<double>()), 1e-7);
  loss.backward();
  double gmax = 0;
  for (auto& p : student->parameters()) gmax = std::max(gmax, p.grad().abs().max().item<double>());
  EXPECT_LT(gmax, 1e-6);
  // through the trainer: the first step's loss is zero; a different init has something to learn
  auto data = toy_data(8, 61, 2);
  train::TrainOptions to;
  to.cfg.steps = 2;
  to.cfg.batch_size = 4;
  to.cfg.warmup_steps = 0;
  to.quiet = true;
  to.distill.teacher = teacher;
  to.distill.teacher_data = &data;
  to.distill.allowed = allowed;
  auto same = tiny_lm(5, 61);
  EXPECT_LT(std::fabs(train::train_lm(same, data, to).losses.front()), 1e-7);
  auto other = tiny_lm(6, 61);
  EXPECT_GT(train::train_lm(other, data, to).losses.front(), 1e-4);
}
