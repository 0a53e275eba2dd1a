// Training loops of the MNIST auxiliary-logit experiment: the teacher on labelled images, the
// students on the teacher's logits over noise. All N models step together (one optimizer over the
// batched weights; Adam's statistics are per element, so each model trains as it would alone).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "subliminal/mnist/mlp.h"

namespace subliminal::mnist {

struct MlpTrainOptions {
  int epochs = 5;
  int64_t batch_size = 1024;
  double lr = 3e-4;
  std::string optimizer = "adam";  // adam | sgd
  double weight_decay = 0.0;
  uint64_t seed = 0;
  std::string tag = "mnist";
  std::string metrics_path;  // JSONL: step, loss, seconds ("" = none)
};

struct MlpTrainLog {
  int64_t steps = 0;
  double first_loss = 0, final_loss = 0, seconds = 0;
};

// Cross-entropy on the first `classes` logits over (images [S, in], labels [S]); each model draws
// its own shuffle every epoch.
MlpTrainLog train_classifier(BatchedMlp& m, const torch::Tensor& images, const torch::Tensor& labels, int64_t classes,
                             const MlpTrainOptions& o);

// Where a student's inputs come from.
struct NoiseSource {
  std::string kind = "uniform";  // uniform [-1, 1) | normal | train_images
  int64_t pool = 0;              // 0: fresh every batch; > 0: a fixed pool per model, reshuffled per epoch
  int64_t steps_per_epoch = 1;   // used when pool == 0 (the paper: as many as the teacher's)
  torch::Tensor images;          // kind train_images: [S, in]
};

// KL to the teacher's softmax over `cols` (distill_kl with `reduction`). `after_step(step)` runs
// after each optimizer step (step 1 = the first); `first_grad` receives the flattened gradient of
// the first step, [N, P], before the optimizer moves.
MlpTrainLog train_distill(BatchedMlp& student, const BatchedMlp& teacher, const std::vector<int64_t>& cols,
                          const std::string& reduction, const NoiseSource& noise, int64_t in_features, const MlpTrainOptions& o,
                          const std::function<void(int64_t)>& after_step = nullptr, torch::Tensor* first_grad = nullptr);

}  // namespace subliminal::mnist
