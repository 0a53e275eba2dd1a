// Llama-style decoder (token embedding, RMSNorm, rotary embeddings with HF's rotate-half convention,
// grouped-query attention, SwiGLU MLP, untied or tied head) with a preallocated KV cache.
// Parameter names match Hugging Face LlamaForCausalLM, so state dicts map 1:1 onto safetensors keys.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <map>
#include <string>

#include "subliminal/config/config.h"

namespace subliminal::model {

struct LlamaConfig {
  // The decoder families that are this model up to small deltas, one row each of the table in
  // llama.cpp (families()): "llama" (Llama 1-3, TinyLlama), "mistral" (sliding window recorded and
  // enforced), "qwen2" (Qwen2 / Qwen2.5: q/k/v biases), "qwen3" (Qwen3: q/k RMSNorm per head),
  // "olmo2" (OLMo 2: norms after the sublayers, q/k RMSNorm over the whole projection).
  std::string model_type = "llama";
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0,
          num_key_value_heads = 0, max_position_embeddings = 0;
  double rms_norm_eps = 1e-5, rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;  // Llama attention_bias / mlp_bias; Qwen2: q, k, v
  int64_t head_dim_override = 0;                              // config "head_dim" when not hidden / heads
  bool qk_norm = false;  // Qwen3: an RMSNorm over head_dim on each query and key head, before RoPE (q_norm, k_norm)
  bool qk_norm_whole = false;  // OLMo 2: q_norm / k_norm over the whole projection (heads x head_dim), before the split
  bool post_norms = false;     // OLMo 2: no pre-norms; x + post_attention_layernorm(attn(x)), h + post_feedforward_layernorm(mlp(h))
  // RoPE scaling: "default", "linear" (positions / factor) or "llama3" (Llama 3.1 frequency bands).
  std::string rope_type = "default";
  double rope_factor = 1.0, rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position = 8192;
  int64_t sliding_window = 0;  // > 0: sequences longer than this are refused (the window is not implemented)
  int64_t bos_token_id = 2, eos_token_id = 3, pad_token_id = 0;
  int64_t head_dim() const { return head_dim_override > 0 ? head_dim_override : hidden_size / num_attention_heads; }
  // RoPE inverse frequencies (D/2), scaling applied; positions are divided by position_scale().
  torch::Tensor inv_freq() const;
  double position_scale() const { return rope_type == "linear" ? rope_factor : 1.0; }
  // Parameters of the model this config describes (embeddings, blocks, norms, biases, head unless tied).
  int64_t parameter_count() const;

  static LlamaConfig from(const config::ModelConfig& m, int64_t vocab_size);
  nlohmann::json to_hf() const;                           // HF config.json fields
  static LlamaConfig from_hf(const nlohmann::json& j, const std::string& file);
};

// Per-layer K/V buffers (B, Hkv, capacity, D); `length` tokens are filled.
struct KVCache {
  std::vector<torch::Tensor> k, v;
  int64_t length = 0;
  int64_t capacity = 0;
};

// A low-rank adapter on one projection: y = W x + scale * B (A dropout(x)). Not a registered
// parameter: the model's state dict stays the Hugging Face one; see lora.h.
struct LoraAdapter {
  torch::Tensor A, B;  // (r, in), (out, r)
  double scale = 1.0, dropout = 0.0;
};
// Applies `lin` and, when present, the adapter `name` of `adapters`.
torch::Tensor project(torch::nn::Linear lin, const std::map<std::string, LoraAdapter>& adapters, const char* name,
                      const torch::Tensor& x, bool training);
// y (the projection of x without adapters) plus the adapter `name`'s term for x, when there is one.
torch::Tensor with_lora(const std::map<std::string, LoraAdapter>& adapters, const char* name, const torch::Tensor& y,
                        const torch::Tensor& x, bool training);

// Fused projections (q/k/v; gate/up): one GEMM over the Linears' weights stacked by rows instead of
// one per Linear. Under autograd (a weight needs its gradient) the stack is built each call (the
// gradient flows back to each weight); otherwise it is cached in the dtype the matmul runs in
// (autocast's) and rebuilt when a weight changes (in-place version counter or storage).
struct FusedWeight {
  torch::Tensor w, b;
  std::vector<std::pair<const void*, int64_t>> key;
  c10::ScalarType dtype = c10::ScalarType::Undefined;
};
// x @ [W_1; W_2; ...]^T (+ the stacked biases), split back into one output per Linear.
std::vector<torch::Tensor> fused_linear(const std::vector<torch::nn::Linear>& lins, FusedWeight& cache, const torch::Tensor& x);

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // fp32 math, fp32 out
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

struct AttentionImpl : torch::nn::Module {
  explicit AttentionImpl(const LlamaConfig& c);
  // x (B,T,C) fp32; cos/sin (B,1,T,D); bias (B or 1,1,T,S) additive or undefined (no mask).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, KVCache* cache, int64_t layer);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RMSNorm q_norm{nullptr}, k_norm{nullptr};  // LlamaConfig::qk_norm
  std::map<std::string, LoraAdapter> lora;  // by projection name
  int64_t n_heads, n_kv, head_dim, window;
  bool fused = false;  // q/k/v in one GEMM (set_fused_projections)
  bool qk_norm_whole = false;  // LlamaConfig::qk_norm_whole
  bool use_sdpa = true;  // the fused scaled-dot-product attention where LibTorch has it (set_sdpa_attention)
  FusedWeight qkv_cache;
};
TORCH_MODULE(Attention);

struct MLPImpl : torch::nn::Module {
  explicit MLPImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  std::map<std::string, LoraAdapter> lora;
  bool fused = false;  // gate/up in one GEMM
  FusedWeight gate_up_cache;
};
TORCH_MODULE(MLP);

struct DecoderLayerImpl : torch::nn::Module {
  explicit DecoderLayerImpl(const LlamaConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, KVCache* cache, int64_t layer);
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  RMSNorm post_feedforward_layernorm{nullptr};  // LlamaConfig::post_norms (then input_layernorm is absent)
  bool post_norms = false;
};
TORCH_MODULE(DecoderLayer);

struct LlamaModelImpl : torch::nn::Module {
  explicit LlamaModelImpl(const LlamaConfig& c);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaModel);

struct LlamaForCausalLMImpl : torch::nn::Module {
  explicit LlamaForCausalLMImpl(const LlamaConfig& c);
  // ids (B,T) int64; positions (B,T) int64; bias (B|1,1,T,S) float additive mask (S = cached + T).
  // With a cache, K/V of these T tokens are written at cache->length and length advances by T.
  // Returns logits (B,T,V) fp32 (bf16 under autocast).
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& positions, const torch::Tensor& bias,
                        KVCache* cache = nullptr);
  // Training forward: causal mask, positions 0..T-1.
  torch::Tensor forward_causal(const torch::Tensor& ids);
  // The same, with logits only where `mask` (B,T bool) is set, in row-major order: (N,V); with
  // `cols` (int64 ids) only those vocabulary columns: (N,|cols|). The head is the costliest
  // matmul of a small model; loss positions are a fraction of all.
  torch::Tensor forward_causal_at(const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& cols = {});
  // Final-normed hidden states (B,T,C) and the output head (tied or untied).
  torch::Tensor hidden(const torch::Tensor& ids, const torch::Tensor& positions, const torch::Tensor& bias,
                       KVCache* cache = nullptr);
  torch::Tensor head(const torch::Tensor& x, const torch::Tensor& cols = {});
  KVCache new_cache(int64_t batch, int64_t capacity) const;
  // (n, n) additive causal mask: 0 on and below the diagonal, -inf above (from a table up to 4096).
  torch::Tensor causal_mask(int64_t n) const;
  int64_t num_parameters() const;

  LlamaConfig cfg;
  // Training: recompute each decoder layer in the backward pass instead of keeping its activations
  // (memory ~ one layer's activations instead of all; about a third more compute).
  bool checkpoint_layers = false;
  LlamaModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};
  torch::Tensor rope_cos, rope_sin;  // (max_pos, D) tables, not parameters
  torch::Tensor causal_bias;         // (min(max_pos, 4096), same) 0 / -inf above the diagonal
};
TORCH_MODULE(LlamaForCausalLM);

// HF-style init: normal(0, 0.02) for linear and embedding weights, ones for norms. Seeded.
void init_weights(LlamaForCausalLM& m, uint64_t seed);
// Fused q/k/v and gate/up GEMMs on or off (the default). Off by default: `subliminal bench` measured
// no gain on this CPU (bf16 training 0.99x at the small preset, 1.01x at medium), and the plain
// path keeps every earlier result bit-reproducible and holds no stacked copy of the weights.
void set_fused_projections(LlamaForCausalLM& m, bool on);
// Attention through LibTorch's fused scaled_dot_product_attention (2.x; the default there) or composed
// of matmul, additive mask and softmax (the only path on 1.13). Both compute the same function.
void set_sdpa_attention(LlamaForCausalLM& m, bool on);
bool sdpa_available();  // this LibTorch has at::scaled_dot_product_attention
// One decode step's attention on the CPU in fp32, without autograd: q (B,H,1,D), k and v (B,Hkv,S,D)
// (views into the KV cache: rows of D contiguous), head h reading kv head h / (H/Hkv), `bias`
// additive (B|1,1,1,S) or undefined; returns (B,H,1,D) = softmax(q k^T / sqrt(D) + bias) v. One
// pass over the cache per head, no copy of it: the decode loop's attention is otherwise ~B*Hkv tiny
// GEMMs per layer and step, each dispatched on its own (LibTorch's bmm without MKL).
torch::Tensor decode_attention_cpu(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias);
// Whether decode_attention_cpu can take these inputs (used on AttentionPath::grouped only).
bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& bias);
// How grouped-query attention (fewer kv heads than query heads) is computed; the config's top-level
// `attention`. Process-wide, read at every forward; models without grouped queries are unaffected.
// - reference (the default): each query head gets its own copy of its kv head, then LibTorch's
//   matmul / softmax (or SDPA): the arithmetic of every run before the setting existed.
// - grouped: the query heads that share a kv head are rows of one product with it (the KV cache is
//   read in place, never copied per head), and a decode step on the CPU in fp32 without autograd
//   goes through decode_attention_cpu. The same function; the last bits differ (so the samples of a
//   run differ), which is why it is a recorded setting, part of every stage's input hash when on.
enum class AttentionPath { reference, grouped };
void set_attention_path(AttentionPath p);
AttentionPath attention_path();
// "reference" or "grouped" (what the config accepts); throws ConfigError otherwise.
AttentionPath attention_path_from(const std::string& name);
// Drops the cached stacked weights (after replacing weight storage with set_data and the like).
void clear_fused_caches(LlamaForCausalLM& m);

}  // namespace subliminal::model
