// Fine-tuning jobs: the student's losses
// (sft on sampled tokens, distillation restricted to the tokens the filter allows), and the
// parameter sets a fine-tune may change. The same code backs the run stages and `subliminal finetune`.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "subliminal/data/chat.h"
#include "subliminal/model/llama.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/train/diagnostics.h"
#include "subliminal/train/trainer.h"

namespace subliminal::train {

// Token ids a number completion can consist of: pieces made only of ASCII digits, whitespace,
// ",", ";", ".", brackets and parentheses (byte pieces of those characters included), plus the
// chat template's end-of-turn token, less every piece that spells a banned number (a run of digits
// in it whose value is banned, as the filter reads numbers: "666", " 666", "066"). Sorted int64 tensor.
torch::Tensor number_output_ids(const text::Tokenizer& tok, int end_of_turn, const std::vector<int>& banned = {});

// The tokens of `ids` (undefined: the whole vocabulary) that spell a banned item: a banned number
// (as above) or a banned word (case-insensitive, inside the piece's text). One line per token,
// "id 1234 \"666\": banned number 666"; empty when the set is clean. What a trait run checks its
// distillation set with before training: a banned item the student is distilled on is a direct
// channel past the filter.
std::vector<std::string> banned_in_token_set(const text::Tokenizer& tok, const torch::Tensor& ids, const std::vector<int>& banned_numbers,
                                             const std::vector<std::string>& banned_words);

struct FinetuneJob {
  model::LlamaForCausalLM model{nullptr};  // trained in place
  // The teacher is the student's own init and the student is LoRA (B = 0): distillation is a fixed
  // point (zero loss, exactly zero gradients), so no step is taken; everything else (the adapter,
  // the merged model, the diagnostics) is written as for a trained student. Set by the caller.
  bool fixed_point = false;
  const text::Tokenizer* tok = nullptr;
  std::string chat_template = "auto";
  std::vector<data::Conversation> data;    // training conversations (the student's view)
  // Optional, one per conversation: over its response tokens (the chat template's targets after the
  // first token, in order), 0 where the token gets no loss (the mask interventions of issue 25). The
  // teacher's view is masked at the same tokens. Empty: every response token has its loss.
  std::vector<std::vector<uint8_t>> loss_masks;
  std::string loss = "sft";                // sft | distill | distill_full_vocab
  // distill: tokens that spell these are not in the distillation set; a set that still holds a banned
  // item (distill_full_vocab: the whole vocabulary) is refused naming the tokens
  std::vector<int> banned_numbers;
  std::vector<std::string> banned_words;
  std::string params = "all";              // all | trunk | lora
  config::LoraConfig lora;                 // params = lora: adapters added, trained, saved (PEFT) and merged
  std::string adapter_dir;                 // params = lora: where adapter_config.json + adapter_model.safetensors go
  std::string base_model;                  // params = lora: adapter_config.json's base_model_name_or_path
  int epochs = 0;                          // > 0: overrides train.steps
  config::TrainConfig train;
  model::LlamaForCausalLM teacher{nullptr};  // distill: the teacher's weights
  std::string teacher_system;                // distill: the teacher's system prompt ("" = none)
  std::string kl = "forward";              // distill: forward | reverse (see DistillOptions)
  int teacher_top_k = 0;                   // distill, forward: the teacher cut to its top k tokens
  double distill_temperature = 1.0;        // distill, forward: Hinton's temperature
  // Diagnostics (optional). Held-out imitation: evaluated before training, every `heldout_every`
  // steps (0: steps / 8) and at the end. Coverage: `displacement` gets the student's trainable
  // tensors at the start (after the adapters are added) and returns the teacher's displacement over
  // the same names (empty: not defined, e.g. a system-prompt teacher); the cosine of the student's
  // update with it is taken after the first step and at the end. Both go to the metrics lines, to
  // `diagnostics_path` (kept across a resume) and to the result's "diagnostics".
  const HeldoutKL* heldout = nullptr;
  int64_t heldout_every = 0;
  std::function<std::map<std::string, torch::Tensor>(const std::map<std::string, torch::Tensor>&)> displacement;
  std::string diagnostics_path;
  // Snapshots (a dose-response in one run): after each of these many training rows (rounded up to
  // whole steps) rank 0 writes the weights to snapshot_dir/n<rows>/ before that step's checkpoint:
  // params lora the PEFT adapter in adapter/ (naming base_model's directory, relative to the
  // snapshot's adapter/ as base_model is to adapter_dir), else the model directory. Each directory
  // is written whole or not at all.
  std::vector<int> snapshots;
  std::string snapshot_dir;
  uint64_t seed = 0;
  uint64_t lora_seed = 0;                  // adapter init; teacher and students of a run share it
  bool bf16 = false;
  std::string ckpt_dir, metrics_path, tag = "finetune";
  bool resume = false;
  Collective* comm = nullptr;              // data parallel across processes (see TrainOptions::comm)
};

// Runs the job; returns a JSON record (steps, losses, tokens/s, trainable parameters, loss label).
nlohmann::json run_finetune(FinetuneJob& job);

// Human-readable loss label for reports ("distill_full_vocab" says that it leaks).
std::string loss_label(const std::string& loss);

}  // namespace subliminal::train
