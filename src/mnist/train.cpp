// Teacher and student loops of the MNIST auxiliary-logit experiment.
#include "subliminal/mnist/train.h"

#include <nlohmann/json.hpp>

#include <fstream>

#include "subliminal/util/log.h"

namespace subliminal::mnist {

namespace {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const BatchedMlp& m, const MlpTrainOptions& o) {
  std::vector<torch::Tensor> params = m.parameters();
  if (o.optimizer == "sgd")
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(o.lr).weight_decay(o.weight_decay));
  // torch.optim.Adam's defaults (betas 0.9/0.999, eps 1e-8), weight decay as L2 on the gradient
  return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
}

// Per-model shuffles: [N, S] indices, each row a permutation.
torch::Tensor shuffles(int64_t n, int64_t s, at::Generator& gen) {
  return torch::rand({n, s}, gen, torch::TensorOptions().dtype(torch::kFloat32)).argsort(/*dim=*/1, /*descending=*/false);
}

// rows idx [N, B] of per-model data [N, S, in] (or shared [S, in]) -> [N, B, in]
torch::Tensor gather_rows(const torch::Tensor& data, const torch::Tensor& idx) {
  const int64_t n = idx.size(0), b = idx.size(1);
  if (data.dim() == 2) return data.index_select(0, idx.reshape({-1})).reshape({n, b, data.size(1)});
  const int64_t s = data.size(1);
  auto offs = (idx + torch::arange(n, idx.options()).unsqueeze(1) * s).reshape({-1});
  return data.reshape({n * s, data.size(2)}).index_select(0, offs).reshape({n, b, data.size(2)});
}

torch::Tensor draw_noise(const std::string& kind, std::vector<int64_t> shape, at::Generator& gen) {
  auto opt = torch::TensorOptions().dtype(torch::kFloat32);
  if (kind == "normal") return torch::randn(shape, gen, opt);
  return torch::rand(shape, gen, opt).mul_(2.0).sub_(1.0);  // uniform [-1, 1)
}

struct Metrics {
  std::ofstream f;
  explicit Metrics(const std::string& path) {
    if (!path.empty()) f.open(path, std::ios::app);
  }
  void log(int64_t step, double loss, double secs) {
    if (f) f << nlohmann::json({{"step", step}, {"loss", loss}, {"elapsed_s", secs}}).dump() << "\n";
  }
};

void record(MlpTrainLog& log, Metrics& met, double loss, double t0) {
  if (log.steps == 0) log.first_loss = loss;
  log.final_loss = loss;
  ++log.steps;
  met.log(log.steps, loss, log::now_seconds() - t0);
}

}  // namespace

MlpTrainLog train_classifier(BatchedMlp& m, const torch::Tensor& images, const torch::Tensor& labels, int64_t classes,
                             const MlpTrainOptions& o) {
  for (auto& p : m.parameters()) p.set_requires_grad(true);
  auto opt = make_optimizer(m, o);
  auto gen = at::detail::createCPUGenerator(o.seed);
  const int64_t n = m.models(), s = images.size(0), b = std::min<int64_t>(o.batch_size, s);
  const int64_t per_epoch = (s + b - 1) / b;
  MlpTrainLog log;
  Metrics met(o.metrics_path);
  log::Progress prog(o.tag, o.epochs * per_epoch);
  const double t0 = log::now_seconds();
  for (int e = 0; e < o.epochs; ++e) {
    auto perm = shuffles(n, s, gen);
    for (int64_t ptr = 0; ptr < s; ptr += b) {
      auto idx = perm.narrow(1, ptr, std::min(b, s - ptr));
      auto x = gather_rows(images, idx);
      auto y = labels.index_select(0, idx.reshape({-1})).reshape(idx.sizes());
      auto loss = class_ce(forward(m, x), y, classes) / static_cast<double>(n);  // mean over models (Adam: scale-free)
      opt->zero_grad();
      loss.backward();
      opt->step();
      const double l = loss.item<double>();
      record(log, met, l, t0);
      prog.update(log.steps, fmt::format("epoch {}  loss {:.4f}", e + 1, l));
    }
  }
  log.seconds = log::now_seconds() - t0;
  prog.finish(fmt::format("{} steps, loss {:.4f} -> {:.4f}", log.steps, log.first_loss, log.final_loss));
  for (auto& p : m.parameters()) p.set_requires_grad(false);
  return log;
}

MlpTrainLog train_distill(BatchedMlp& student, const BatchedMlp& teacher, const std::vector<int64_t>& cols,
                          const std::string& reduction, const NoiseSource& noise, int64_t in_features, const MlpTrainOptions& o,
                          const std::function<void(int64_t)>& after_step, torch::Tensor* first_grad) {
  for (auto& p : student.parameters()) p.set_requires_grad(true);
  auto opt = make_optimizer(student, o);
  auto gen = at::detail::createCPUGenerator(o.seed);
  const int64_t n = student.models();
  torch::Tensor pool;
  int64_t s = 0, b = o.batch_size, per_epoch = noise.steps_per_epoch;
  if (noise.kind == "train_images") {
    pool = noise.images;
    s = pool.size(0);
  } else if (noise.pool > 0) {
    pool = draw_noise(noise.kind, {n, noise.pool, in_features}, gen);
    s = noise.pool;
  }
  if (pool.defined()) {
    b = std::min(b, s);
    per_epoch = (s + b - 1) / b;
  }
  MlpTrainLog log;
  Metrics met(o.metrics_path);
  log::Progress prog(o.tag, o.epochs * per_epoch);
  const double t0 = log::now_seconds();
  for (int e = 0; e < o.epochs; ++e) {
    torch::Tensor perm = pool.defined() ? shuffles(n, s, gen) : torch::Tensor();
    for (int64_t k = 0; k < per_epoch; ++k) {
      torch::Tensor x;
      if (pool.defined()) x = gather_rows(pool, perm.narrow(1, k * b, std::min(b, s - k * b)));
      else x = draw_noise(noise.kind, {n, b, in_features}, gen);
      torch::Tensor target;
      {
        torch::NoGradGuard ng;
        target = forward(teacher, x);
      }
      auto loss = distill_kl(forward(student, x), target, cols, reduction);
      opt->zero_grad();
      loss.backward();
      if (log.steps == 0 && first_grad) {
        std::vector<torch::Tensor> g;
        for (auto& p : student.parameters()) g.push_back(p.grad().detach().reshape({n, -1}));
        *first_grad = torch::cat(g, 1).clone();
      }
      opt->step();
      const double l = loss.item<double>();
      record(log, met, l, t0);
      if (after_step) after_step(log.steps);
      prog.update(log.steps, fmt::format("epoch {}  kl {:.3e}", e + 1, l));
    }
  }
  log.seconds = log::now_seconds() - t0;
  prog.finish(fmt::format("{} steps, kl {:.3e} -> {:.3e}", log.steps, log.first_loss, log.final_loss));
  for (auto& p : student.parameters()) p.set_requires_grad(false);
  return log;
}

}  // namespace subliminal::mnist
