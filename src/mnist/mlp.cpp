// Batched MLPs for the MNIST auxiliary-logit experiment.
#include "subliminal/mnist/mlp.h"

#include <cmath>
#include <random>

#include "subliminal/util/error.h"

namespace subliminal::mnist {

std::vector<torch::Tensor> BatchedMlp::parameters() const {
  std::vector<torch::Tensor> p;
  for (size_t l = 0; l < weights.size(); ++l) {
    p.push_back(weights[l]);
    p.push_back(biases[l]);
  }
  return p;
}

BatchedMlp BatchedMlp::clone() const {
  BatchedMlp c;
  for (size_t l = 0; l < weights.size(); ++l) {
    c.weights.push_back(weights[l].detach().clone());
    c.biases.push_back(biases[l].detach().clone());
  }
  return c;
}

BatchedMlp BatchedMlp::select(const std::vector<int64_t>& idx) const {
  auto ix = torch::tensor(idx, torch::kInt64);
  BatchedMlp c;
  for (size_t l = 0; l < weights.size(); ++l) {
    c.weights.push_back(weights[l].detach().index_select(0, ix).contiguous());
    c.biases.push_back(biases[l].detach().index_select(0, ix).contiguous());
  }
  return c;
}

torch::Tensor BatchedMlp::flat() const {
  std::vector<torch::Tensor> parts;
  const int64_t n = models();
  for (size_t l = 0; l < weights.size(); ++l) {
    parts.push_back(weights[l].detach().reshape({n, -1}));
    parts.push_back(biases[l].detach().reshape({n, -1}));
  }
  return torch::cat(parts, 1);
}

std::map<std::string, torch::Tensor> BatchedMlp::named() const {
  std::map<std::string, torch::Tensor> t;
  for (size_t l = 0; l < weights.size(); ++l) {
    t["layer" + std::to_string(l) + ".weight"] = weights[l].detach().contiguous();
    t["layer" + std::to_string(l) + ".bias"] = biases[l].detach().contiguous();
  }
  return t;
}

BatchedMlp BatchedMlp::from_named(const std::map<std::string, torch::Tensor>& t, int layers) {
  BatchedMlp m;
  for (int l = 0; l < layers; ++l) {
    auto w = t.find("layer" + std::to_string(l) + ".weight"), b = t.find("layer" + std::to_string(l) + ".bias");
    if (w == t.end() || b == t.end()) throw DataError("MLP weights: missing layer" + std::to_string(l) + ".weight/.bias");
    m.weights.push_back(w->second.to(torch::kFloat32).contiguous());
    m.biases.push_back(b->second.to(torch::kFloat32).contiguous());
  }
  return m;
}

BatchedMlp init_mlp(int64_t models, const std::vector<int64_t>& sizes, uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(seed);
  BatchedMlp m;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    const int64_t in = sizes[l], out = sizes[l + 1];
    auto w = at::normal(0.0, 1.0 / std::sqrt(static_cast<double>(in)), {models, out, in}, gen, torch::TensorOptions().dtype(torch::kFloat32));
    m.weights.push_back(w);
    m.biases.push_back(torch::zeros({models, out}));
  }
  return m;
}

torch::Tensor forward(const BatchedMlp& m, const torch::Tensor& x_in) {
  const int64_t n = m.models();
  torch::Tensor h = x_in.dim() == 2 ? x_in.unsqueeze(0).expand({n, x_in.size(0), x_in.size(1)}) : x_in;
  for (size_t l = 0; l < m.weights.size(); ++l) {
    // [N, B, in] x [N, in, out] + [N, 1, out]
    h = torch::baddbmm(m.biases[l].unsqueeze(1), h, m.weights[l].transpose(1, 2));
    if (l + 1 < m.weights.size()) h = torch::relu(h);
  }
  return h;
}

torch::Tensor distill_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                         const std::vector<int64_t>& cols, const std::string& reduction) {
  auto ix = torch::tensor(cols, torch::kInt64).to(student_logits.device());
  auto s = torch::log_softmax(student_logits.index_select(2, ix), -1);
  auto t = torch::log_softmax(teacher_logits.index_select(2, ix).detach(), -1);
  auto kl = (t.exp() * (t - s)).sum(-1);  // [N, B]
  if (reduction == "mean") return kl.mean();
  return kl.sum() / static_cast<double>(student_logits.size(0));  // "paper": kl_div(..., reduction="batchmean") on [N, B, k]
}

torch::Tensor class_ce(const torch::Tensor& logits, const torch::Tensor& labels, int64_t classes) {
  const int64_t n = logits.size(0), b = logits.size(1);
  auto lp = torch::log_softmax(logits.narrow(2, 0, classes), -1);
  auto nll = -lp.gather(2, labels.reshape({n, b, 1})).squeeze(2);  // [N, B]
  return nll.mean(1).sum();
}

static std::vector<double> per_model(const BatchedMlp& m, const torch::Tensor& images, const torch::Tensor& labels,
                                     int64_t classes, int64_t batch, bool acc) {
  torch::NoGradGuard ng;
  const int64_t n = m.models(), total = images.size(0);
  auto sum = torch::zeros({n}, torch::kFloat64);
  for (int64_t s = 0; s < total; s += batch) {
    const int64_t len = std::min(batch, total - s);
    auto logits = forward(m, images.narrow(0, s, len)).narrow(2, 0, classes);
    auto y = labels.narrow(0, s, len);
    if (acc) {
      sum += (logits.argmax(-1) == y.unsqueeze(0)).to(torch::kFloat64).sum(1);
    } else {
      auto lp = torch::log_softmax(logits, -1);
      sum += -lp.gather(2, y.reshape({1, len, 1}).expand({n, len, 1})).squeeze(2).to(torch::kFloat64).sum(1);
    }
  }
  sum /= static_cast<double>(total);
  return std::vector<double>(sum.data_ptr<double>(), sum.data_ptr<double>() + n);
}

std::vector<double> accuracy(const BatchedMlp& m, const torch::Tensor& images, const torch::Tensor& labels, int64_t classes,
                             int64_t batch) {
  return per_model(m, images, labels, classes, batch, true);
}
std::vector<double> class_loss(const BatchedMlp& m, const torch::Tensor& images, const torch::Tensor& labels, int64_t classes,
                               int64_t batch) {
  return per_model(m, images, labels, classes, batch, false);
}

std::vector<int64_t> derangement(int64_t n, uint64_t seed) {
  if (n < 2) throw ConfigError("a cross-model derangement needs at least 2 models, got " + std::to_string(n));
  std::mt19937_64 rng(seed);
  std::vector<int64_t> p(static_cast<size_t>(n));
  while (true) {
    for (int64_t i = 0; i < n; ++i) p[i] = i;
    std::shuffle(p.begin(), p.end(), rng);
    bool ok = true;
    for (int64_t i = 0; i < n && ok; ++i) ok = p[i] != i;
    if (ok) return p;
  }
}

}  // namespace subliminal::mnist
