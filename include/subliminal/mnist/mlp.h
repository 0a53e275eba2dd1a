// N small MLPs trained at once as one set of batched weights: layer l holds W [N, out, in] and
// b [N, out]; a forward pass is one baddbmm per layer over all models (no loop of N small nets).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace subliminal::mnist {

struct BatchedMlp {
  std::vector<torch::Tensor> weights;  // [N, out, in]
  std::vector<torch::Tensor> biases;   // [N, out]
  int64_t models() const { return weights.empty() ? 0 : weights.front().size(0); }
  int64_t outputs() const { return weights.back().size(1); }
  std::vector<torch::Tensor> parameters() const;
  BatchedMlp clone() const;                                 // detached deep copy
  BatchedMlp select(const std::vector<int64_t>& idx) const;  // model i of the result = model idx[i]
  // Every parameter of each model flattened: [N, P].
  torch::Tensor flat() const;
  // "layer0.weight" [N, out, in], "layer0.bias" [N, out], ... (safetensors names)
  std::map<std::string, torch::Tensor> named() const;
  static BatchedMlp from_named(const std::map<std::string, torch::Tensor>& t, int layers);
};

// sizes: input, hidden..., outputs. Weights ~ N(0, 1/sqrt(fan_in)) (std), biases 0: the paper's
// script, not LibTorch's default init.
BatchedMlp init_mlp(int64_t models, const std::vector<int64_t>& sizes, uint64_t seed);

// x: [N, B, in] (or [B, in], shared by every model) -> logits [N, B, out]; ReLU between layers.
torch::Tensor forward(const BatchedMlp& m, const torch::Tensor& x);

// KL(teacher || student) between the softmaxes over the logit columns `cols`, as the paper's script
// computes it: summed over the batch and the columns, divided by the number of models ("paper"),
// or the mean over models and batch items ("mean").
torch::Tensor distill_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                         const std::vector<int64_t>& cols, const std::string& reduction);

// Cross-entropy of the first `classes` logits, mean over each model's batch, summed over models
// (each model's gradient is what it would get alone).
torch::Tensor class_ce(const torch::Tensor& logits, const torch::Tensor& labels, int64_t classes);

// Test accuracy per model (argmax over the first `classes` logits): [N] doubles.
std::vector<double> accuracy(const BatchedMlp& m, const torch::Tensor& images, const torch::Tensor& labels, int64_t classes,
                             int64_t batch = 4096);
// Mean class cross-entropy per model on (images, labels): the teacher's loss evaluated on a model.
std::vector<double> class_loss(const BatchedMlp& m, const torch::Tensor& images, const torch::Tensor& labels, int64_t classes,
                               int64_t batch = 4096);

// A derangement of 0..n-1 (no fixed point; n >= 2), drawn uniformly by rejection from `seed`.
std::vector<int64_t> derangement(int64_t n, uint64_t seed);

}  // namespace subliminal::mnist
