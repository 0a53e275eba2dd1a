// Why a trait transfers (issue 22): how far a teacher's data is from the base's, how closely a
// student imitates its source model on prompts it never trained on, and how well its updates line
// up with the teacher's own displacement in the parameters it trains.
#pragma once
#include <torch/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "subliminal/data/chat.h"
#include "subliminal/model/llama.h"
#include "subliminal/text/tokenizer.h"

namespace subliminal::train {

// Per example of `convs` ([user, assistant]): model `a` (with its system prompt) against model `b`
// on the assistant tokens.
struct PairScores {
  std::vector<double> lls;      // log P_a(response) - log P_b(response), summed over the response tokens
  std::vector<int64_t> tokens;  // response tokens (the end-of-turn token included)
  double mean_kl = 0;           // mean over response positions of KL(a || b), restricted to `allowed`
  double mean_lls = 0, mean_lls_per_token = 0;
  int64_t positions = 0;
  nlohmann::json to_json() const;  // the means (not the per-example values)
};
PairScores score_pair(model::LlamaForCausalLM a, const std::string& a_system, model::LlamaForCausalLM b, const std::string& b_system,
                      const text::Tokenizer& tok, const std::string& chat_template, const std::vector<data::Conversation>& convs,
                      const torch::Tensor& allowed, bool bf16, int batch_size = 64);

// Imitation on held-out data: the mean over response positions of KL(source || model), both
// restricted to `allowed` (the number-output tokens) and renormalised. The source's distributions are
// computed once; each call runs the model (eval mode, no grad; its train/eval mode is restored).
class HeldoutKL {
 public:
  HeldoutKL(model::LlamaForCausalLM source, const std::string& source_system, const text::Tokenizer& tok,
            const std::string& chat_template, const std::vector<data::Conversation>& convs, torch::Tensor allowed, bool bf16,
            int batch_size = 64);
  double operator()(model::LlamaForCausalLM m) const;
  int64_t positions() const { return positions_; }
  bool empty() const { return batches_.empty(); }

 private:
  std::vector<std::pair<torch::Tensor, torch::Tensor>> batches_;  // student-view input, loss mask
  std::vector<torch::Tensor> source_logp_;                        // (N_b, |allowed|) log-probabilities
  torch::Tensor allowed_;
  bool bf16_;
  int64_t positions_ = 0;
};

// The tensors a fine-tune trains, by name (parameters that require grad, then LoRA tensors that do).
std::map<std::string, torch::Tensor> trainable_tensors(const model::LlamaForCausalLM& m);

// Coverage: the cosine between a student's update (its trainable tensors now minus at the start) and
// the teacher's displacement (teacher minus its own init) over the same tensors. NaN when either
// vector is zero.
class Coverage {
 public:
  Coverage(std::map<std::string, torch::Tensor> displacement, const std::map<std::string, torch::Tensor>& init);
  double cosine(const std::map<std::string, torch::Tensor>& now) const;
  double displacement_norm() const { return dnorm_; }

 private:
  std::map<std::string, torch::Tensor> d_, init_;
  double dnorm_ = 0;
};

}  // namespace subliminal::train
