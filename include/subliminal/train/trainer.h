// Language-model trainer: AdamW (decay on matrices only), warmup + cosine, gradient clipping,
// loss on target tokens only, bf16 autocast with fp32 master weights, llm.c-style checkpoints
// (step_XXXXXXXX/ with weights, optimizer, state.json and a DONE marker), metrics JSONL.
#pragma once
#include <torch/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "subliminal/model/llama.h"
#include "subliminal/text/chat_template.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/train/dist.h"

namespace subliminal::train {

// Distillation on the teacher's next-token distributions at the target positions. The teacher sees
// its own encoding of each example (e.g. with its system prompt); target tokens must be the same.
struct DistillOptions {
  model::LlamaForCausalLM teacher{nullptr};
  const std::vector<text::Encoded>* teacher_data = nullptr;  // aligned with the training data
  torch::Tensor allowed;  // int64 ids the distributions are restricted to; undefined: full vocabulary
  // The teacher's logits at every target position are computed once, batched as the first epoch
  // batches the examples, and kept (in the logits' dtype) for the later epochs, when they take at
  // most this many bytes; else (or 0) the teacher runs on every micro-batch of every epoch.
  int64_t cache_max_bytes = int64_t(1) << 30;
  std::string kl = "forward";  // forward: KL(teacher || student); reverse: KL(student || teacher)
  int64_t top_k = 0;           // forward: the teacher cut to its k most likely allowed tokens, renormalised (0: all)
  // forward: Hinton's temperature, tau^2 KL(softmax(t / tau) || softmax(s / tau)); higher tau weighs the
  // unlikely tokens' logits more (tau -> infinity: matching the centred logits)
  double temperature = 1.0;
  bool enabled() const { return !teacher.is_empty(); }
};

// Which parameters a fine-tune may change: "all", or "trunk" (transformer blocks only: token
// embeddings, final norm and output head frozen). Returns the number of trainable parameters.
int64_t set_trainable(model::LlamaForCausalLM& m, const std::string& params);

// KL(teacher || student) per row of (N, V) logits, both restricted to `allowed` (undefined: all
// columns) and renormalised there. fp32 math.
torch::Tensor restricted_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                            const torch::Tensor& allowed);

// The training losses, as sums of per-position losses times weights `w` (N): cross-entropy of
// (N, V) logits against `target` (N), and KL(teacher || student) per row of (N, V) logits. One
// custom autograd node each: the forward pass takes one log-softmax of the logits (fp32 math, any
// logits dtype) and keeps the gradient (softmax - one-hot, or softmax - teacher probabilities),
// so the backward pass is one scaling pass that writes the gradient in the logits' dtype. Equal to
// the composed ops (cross_entropy / restricted_kl, then the weighted sum) to float rounding
// (tests/test_losses.cpp). The teacher logits get no gradient.
torch::Tensor weighted_cross_entropy(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& w);
// `direction` "reverse": KL(student || teacher) per row instead. `top_k` > 0 (forward only): the
// teacher's distribution cut to each row's k most likely columns and renormalised. `temperature`
// (forward only): tau^2 KL of both distributions at temperature tau.
torch::Tensor weighted_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, const torch::Tensor& w,
                          const std::string& direction = "forward", int64_t top_k = 0, double temperature = 1.0);
// Loss weights of N loss positions whose batch rows (of B) are `rows`: 1/N each, or, per sequence,
// 1 / (the row's loss positions x the rows with any): every sequence counts the same.
torch::Tensor loss_weights(const torch::Tensor& rows, int64_t B, bool per_sequence);

struct TrainOptions {
  config::TrainConfig cfg;
  uint64_t seed = 0;         // data order
  bool bf16 = false;
  std::string ckpt_dir;      // "" = no checkpoints
  std::string metrics_path;  // "" = no metrics file
  std::string tag = "train";
  bool resume = false;       // continue from the newest complete checkpoint in ckpt_dir
  int pad_id = 0;
  bool quiet = false;        // no progress line (benchmarks)
  DistillOptions distill;    // enabled: the loss is the (restricted) KL to the teacher, not cross-entropy
  // Data parallel: each step's batch is cut into grad_accum x world micro-batches, rank r computes
  // those with index % world == r, and the weighted gradients are summed over ranks (= the whole
  // batch's gradient). Every rank steps identically; only rank 0 writes checkpoints and metrics.
  Collective* comm = nullptr;
  // Called after every optimizer step with the number of steps done (every rank). A JSON object
  // back is added to a metrics line written for that step (diagnostics); null: nothing.
  std::function<nlohmann::json(int64_t)> on_step;
};

// A padded batch of encoded examples: input (B,T) and labels (B,T), -100 where no loss (only target
// tokens, or every token with all_tokens).
struct Batch {
  torch::Tensor input, labels;
  int64_t tokens = 0;
};
Batch make_batch(const std::vector<text::Encoded>& data, const std::vector<int64_t>& idx, int pad_id, bool all_tokens);

struct TrainResult {
  int64_t steps = 0;
  int64_t resumed_from = 0;
  double first_loss = 0, final_loss = 0;  // mean of the first / last 10 logged steps
  double tokens_per_s = 0;                // non-padding tokens through forward+backward+step
  double seconds = 0;
  int64_t tokens = 0;
  double padding_fraction = 0;
  int64_t dropped_too_long = 0;
  int64_t teacher_cache_bytes = 0;        // distillation: the kept teacher logits (0: not kept)
  std::vector<double> losses;             // every step
};

TrainResult train_lm(model::LlamaForCausalLM& m, const std::vector<text::Encoded>& data, const TrainOptions& opt);

// The newest complete checkpoint (has DONE) in `ckpt_dir`, or "" and step 0.
std::pair<std::string, int64_t> latest_checkpoint(const std::string& ckpt_dir);

}  // namespace subliminal::train
