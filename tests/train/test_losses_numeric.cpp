// The fused training losses (issue 8) against the composed ops they replace: values and gradients,
// per-token and per-sequence weights, fp32 and bf16 logits, the restricted KL of distillation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "subliminal/text/chat_template.h"
#include "subliminal/model/llama.h"
#include "subliminal/train/trainer.h"
#include "test_util.h"

using namespace subliminal;

namespace {

// The plain path: cross-entropy per position, then the mean over tokens or over sequences.
torch::Tensor composed_mean(const torch::Tensor& per_tok, const torch::Tensor& rows, int64_t B, bool per_seq) {
  if (!per_seq) return per_tok.mean();
  auto sums = torch::zeros({B}, per_tok.options()).index_add(0, rows, per_tok);
  auto counts = torch::zeros({B}, per_tok.options()).index_add(0, rows, torch::ones_like(per_tok));
  auto has = counts.gt(0);
  return (sums / counts.clamp_min(1.0)).masked_select(has).mean();
}

struct Case {
  torch::Tensor logits, target, rows;
  int64_t B;
};

Case make_case(torch::ScalarType dt, int64_t seed) {
  torch::manual_seed(seed);
  const int64_t B = 5, N = 37, V = 50;
  // rows 0..3 have loss positions, row 4 none (a sequence with nothing to learn)
  auto rows = std::get<0>(torch::randint(0, 4, {N}, torch::kLong).sort());
  auto logits = (torch::randn({N, V}) * 3).to(dt);
  auto target = torch::randint(0, V, {N}, torch::kLong);
  return {logits, target, rows, B};
}

}  // namespace

TEST(LossesNumeric, WeightedCrossEntropyEqualsTheComposedLoss) {
  for (bool per_seq : {false, true}) {
    for (auto dt : {torch::kFloat, torch::kBFloat16}) {
      auto c = make_case(dt, per_seq ? 3 : 4);
      auto a = c.logits.clone().requires_grad_(true), b = c.logits.clone().requires_grad_(true);
      auto fused = train::weighted_cross_entropy(a, c.target, train::loss_weights(c.rows, c.B, per_seq));
      auto per_tok = torch::nn::functional::cross_entropy(
          b.to(torch::kFloat), c.target, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
      auto plain = composed_mean(per_tok, c.rows, c.B, per_seq);
      EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-5) << "per_seq " << per_seq << " dtype " << dt;
      (fused * 0.7).backward();  // a non-unit upstream gradient (micro-batch weight)
      (plain * 0.7).backward();
      ASSERT_EQ(a.grad().scalar_type(), dt);
      const double tol = dt == torch::kFloat ? 1e-7 : 1e-3 * b.grad().abs().max().item<double>() + 1e-7;
      EXPECT_LE((a.grad().to(torch::kFloat) - b.grad().to(torch::kFloat)).abs().max().item<double>(), tol)
          << "per_seq " << per_seq << " dtype " << dt;
      EXPECT_GT(a.grad().abs().max().item<double>(), 1e-4);
    }
  }
}

TEST(LossesNumeric, WeightedKLEqualsTheRestrictedKL) {
  for (bool per_seq : {false, true}) {
    auto c = make_case(torch::kFloat, 9);
    auto allowed = torch::arange(3, 40, torch::kLong);
    auto teacher = torch::randn_like(c.logits) * 2;
    auto a = c.logits.clone().requires_grad_(true), b = c.logits.clone().requires_grad_(true);
    auto fused = train::weighted_kl(a.index_select(1, allowed), teacher.index_select(1, allowed),
                                    train::loss_weights(c.rows, c.B, per_seq));
    auto plain = composed_mean(train::restricted_kl(b, teacher, allowed), c.rows, c.B, per_seq);
    EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-6);
    EXPECT_GT(fused.item<double>(), 1e-2);
    fused.backward();
    plain.backward();
    EXPECT_LE((a.grad() - b.grad()).abs().max().item<double>(), 1e-7);
    // columns outside `allowed` get no gradient, as in the composed loss
    EXPECT_EQ(a.grad().index_select(1, torch::arange(40, 50, torch::kLong)).abs().max().item<double>(), 0.0);
    // the same teacher gives zero loss and zero gradient
    auto z = c.logits.clone().requires_grad_(true);
    auto self = train::weighted_kl(z, c.logits, train::loss_weights(c.rows, c.B, per_seq));
    EXPECT_LT(std::abs(self.item<double>()), 1e-6);
    self.backward();
    EXPECT_LT(z.grad().abs().max().item<double>(), 1e-7);
  }
}

TEST(LossesNumeric, LossWeightsCountEverySequenceOnce) {
  auto rows = torch::tensor({0, 0, 0, 2, 3, 3}, torch::kLong);
  auto w = train::loss_weights(rows, 5, true);
  // three rows with a loss: each sums to 1/3
  EXPECT_NEAR(w.index({torch::indexing::Slice(0, 3)}).sum().item<double>(), 1.0 / 3, 1e-7);
  EXPECT_NEAR(w[3].item<double>(), 1.0 / 3, 1e-7);
  EXPECT_NEAR(w.index({torch::indexing::Slice(4, 6)}).sum().item<double>(), 1.0 / 3, 1e-7);
  auto t = train::loss_weights(rows, 5, false);
  EXPECT_NEAR(t.sum().item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(t[0].item<double>(), 1.0 / 6, 1e-7);
}

namespace {
std::vector<text::Encoded> varied_data(int n, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<text::Encoded> out;
  for (int i = 0; i < n; ++i) {
    text::Encoded e;
    const int len = 8 + static_cast<int>(rng() % 9);
    for (int t = 0; t < len; ++t) {
      e.ids.push_back(static_cast<int>(rng() % (vocab - 1)) + 1);
      e.target.push_back(t >= 5);
    }
    out.push_back(e);
  }
  return out;
}
}  // namespace

TEST(LossesNumeric, KeptTeacherLogitsTrainLikeTheTeacherRunEveryStep) {
  // Distillation with the teacher's logits kept from the first epoch vs the teacher run on every
  // micro-batch: the first epoch is bit-identical (same batches, same teacher forward); later epochs
  // see the teacher's logits from other batch shapes, equal to float rounding.
  at::set_num_threads(1);
  const int64_t V = 61;
  auto teacher = testutil::tiny_lm(7, V);
  teacher->eval();
  auto data = varied_data(24, V, 3);
  auto tdata = data;
  for (auto& e : tdata) e.ids.insert(e.ids.begin(), 3), e.target.insert(e.target.begin(), false);  // a "system prompt"
  auto run = [&](int64_t steps, int64_t cache, int grad_accum) {
    auto s = testutil::tiny_lm(8, V);
    train::TrainOptions to;
    to.cfg.steps = steps;
    to.cfg.batch_size = 8;
    to.cfg.warmup_steps = 0;
    to.cfg.grad_accum = grad_accum;
    to.quiet = true;
    to.distill.teacher = teacher;
    to.distill.teacher_data = &tdata;
    to.distill.allowed = torch::arange(5, 50, torch::kLong);
    to.distill.cache_max_bytes = cache;
    auto r = train::train_lm(s, data, to);
    return std::make_pair(r, s);
  };
  for (int ga : {1, 2}) {
    auto [kept, sk] = run(3, int64_t(1) << 30, ga);  // 3 steps = the first epoch of 24 / 8
    auto [every, se] = run(3, 0, ga);
    EXPECT_GT(kept.teacher_cache_bytes, 0);
    EXPECT_EQ(every.teacher_cache_bytes, 0);
    EXPECT_EQ(kept.losses, every.losses) << "grad_accum " << ga;
    for (auto& kv : sk->named_parameters()) EXPECT_TRUE(torch::equal(kv.value(), se->named_parameters()[kv.key()])) << kv.key();
  }
  auto [kept, sk] = run(12, int64_t(1) << 30, 1);  // four epochs
  auto [every, se] = run(12, 0, 1);
  ASSERT_EQ(kept.losses.size(), every.losses.size());
  for (size_t i = 0; i < kept.losses.size(); ++i) EXPECT_NEAR(kept.losses[i], every.losses[i], 1e-5 * (1 + every.losses[i])) << i;
  EXPECT_LT(every.losses.back(), every.losses.front());
  // too big for the limit: not kept, the teacher runs every step (same result)
  auto [small, ss] = run(3, 100, 1);
  EXPECT_EQ(small.teacher_cache_bytes, 0);
  auto [every3, s3] = run(3, 0, 1);
  EXPECT_EQ(small.losses, every3.losses);
}
