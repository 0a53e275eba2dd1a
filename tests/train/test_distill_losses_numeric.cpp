// Distillation losses: reverse KL, top-k teacher, temperature.
#include "diagnostics_fixture.h"


TEST(LossesNumeric, ReverseKLEqualsTheComposedReverseKL) {
  torch::manual_seed(4);
  const int64_t N = 29, V = 40, B = 4;
  auto rows = std::get<0>(torch::randint(0, B, {N}, torch::kLong).sort());
  auto s0 = torch::randn({N, V}) * 2, t = torch::randn({N, V}) * 2;
  for (bool per_seq : {false, true}) {
    auto w = train::loss_weights(rows, B, per_seq);
    auto a = s0.clone().requires_grad_(true), b = s0.clone().requires_grad_(true);
    auto fused = train::weighted_kl(a, t, w, "reverse");
    auto ls = torch::log_softmax(b, 1), lt = torch::log_softmax(t, 1);
    auto plain = ((ls.exp() * (ls - lt)).sum(1) * w).sum();
    EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-6);
    // not the forward KL: the two directions differ on these logits
    EXPECT_GT(std::abs(fused.item<double>() - train::weighted_kl(s0, t, w).item<double>()), 1e-3);
    fused.backward();
    plain.backward();
    EXPECT_LE((a.grad() - b.grad()).abs().max().item<double>(), 1e-6);
  }
  // the teacher itself: zero loss and gradient
  auto z = t.clone().requires_grad_(true);
  auto self = train::weighted_kl(z, t, train::loss_weights(rows, B, false), "reverse");
  EXPECT_LT(std::abs(self.item<double>()), 1e-6);
  self.backward();
  EXPECT_LT(z.grad().abs().max().item<double>(), 1e-7);
  EXPECT_NE(testutil::error_of([&] { train::weighted_kl(s0, t, train::loss_weights(rows, B, false), "reverse", 5); }), "");
  EXPECT_NE(testutil::error_of([&] { train::weighted_kl(s0, t, train::loss_weights(rows, B, false), "sideways"); }), "");
}

TEST(LossesNumeric, TopKTeacherIsTheTruncatedRenormalisedTeacher) {
  torch::manual_seed(5);
  const int64_t N = 17, V = 30, K = 5;
  auto rows = torch::arange(N, torch::kLong);
  auto w = train::loss_weights(rows, N, false);
  auto s0 = torch::randn({N, V}), t = torch::randn({N, V}) * 3;
  auto a = s0.clone().requires_grad_(true), b = s0.clone().requires_grad_(true);
  auto fused = train::weighted_kl(a, t, w, "forward", K);
  // composed: the teacher's K largest per row renormalised, zero elsewhere
  auto top = std::get<1>(t.topk(K, 1));
  auto pt = torch::zeros_like(t).scatter(1, top, torch::softmax(t.gather(1, top), 1));
  auto ls = torch::log_softmax(b, 1);
  auto plain = ((pt * (torch::log(pt.clamp_min(1e-30)) - ls)).sum(1) * w).sum();
  EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-5);
  fused.backward();
  plain.backward();
  EXPECT_LE((a.grad() - b.grad()).abs().max().item<double>(), 1e-6);
  // k = 0 and k = V: the whole distribution
  EXPECT_NEAR(train::weighted_kl(s0, t, w, "forward", 0).item<double>(), train::weighted_kl(s0, t, w, "forward", V).item<double>(), 1e-6);
  EXPECT_GT(std::abs(train::weighted_kl(s0, t, w, "forward", 0).item<double>() - fused.item<double>()), 1e-3);
}

TEST(LossesNumeric, DistillTemperatureIsTauSquaredTimesTheKLOfTheSoftenedDistributions) {
  torch::manual_seed(6);
  const int64_t N = 13, V = 25;
  auto w = train::loss_weights(torch::arange(N, torch::kLong), N, false);
  auto s0 = torch::randn({N, V}) * 2, t = torch::randn({N, V}) * 4;
  for (double tau : {0.5, 2.0, 8.0}) {
    auto a = s0.clone().requires_grad_(true), b = s0.clone().requires_grad_(true);
    auto fused = train::weighted_kl(a, t, w, "forward", 0, tau);
    auto plain = tau * tau * (train::restricted_kl(b / tau, t / tau, {}) * w).sum();
    EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-5 * (1 + plain.item<double>())) << tau;
    fused.backward();
    plain.backward();
    EXPECT_LE((a.grad() - b.grad()).abs().max().item<double>(), 1e-6) << tau;
  }
  // large tau: the gradient approaches that of matching the centred logits, (s - t - mean) / V per row
  auto a = s0.clone().requires_grad_(true);
  train::weighted_kl(a, t, w, "forward", 0, 1000.0).backward();
  auto d = s0 - t;
  auto mse_grad = (d - d.mean(1, true)) / V * w.unsqueeze(1);
  EXPECT_LE((a.grad() - mse_grad).abs().max().item<double>(), 0.02 * mse_grad.abs().max().item<double>());
  EXPECT_NE(testutil::error_of([&] { train::weighted_kl(s0, t, w, "reverse", 0, 2.0); }), "");
}
