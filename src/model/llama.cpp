// Llama decoder forward pass, rotary embeddings and KV cache.
#include "subliminal/model/llama.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "subliminal/util/error.h"

namespace subliminal::model {

using torch::indexing::Slice;

LlamaConfig LlamaConfig::from(const config::ModelConfig& m, int64_t vocab) {
  LlamaConfig c;
  c.vocab_size = m.vocab_size > 0 ? m.vocab_size : vocab;
  c.hidden_size = m.hidden_size;
  c.intermediate_size = m.intermediate_size;
  c.num_hidden_layers = m.num_hidden_layers;
  c.num_attention_heads = m.num_attention_heads;
  c.num_key_value_heads = m.num_key_value_heads;
  c.max_position_embeddings = m.max_position_embeddings;
  c.rms_norm_eps = m.rms_norm_eps;
  c.rope_theta = m.rope_theta;
  c.tie_word_embeddings = m.tie_word_embeddings;
  return c;
}

nlohmann::json LlamaConfig::to_hf() const {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", vocab_size},
          {"hidden_size", hidden_size},
          {"intermediate_size", intermediate_size},
          {"num_hidden_layers", num_hidden_layers},
          {"num_attention_heads", num_attention_heads},
          {"num_key_value_heads", num_key_value_heads},
          {"max_position_embeddings", max_position_embeddings},
          {"rms_norm_eps", rms_norm_eps},
          {"rope_theta", rope_theta},
          {"tie_word_embeddings", tie_word_embeddings},
          {"hidden_act", "silu"},
          {"attention_bias", false},
          {"mlp_bias", false},
          {"bos_token_id", bos_token_id},
          {"eos_token_id", eos_token_id},
          {"pad_token_id", pad_token_id},
          {"torch_dtype", "float32"}};
}

LlamaConfig LlamaConfig::from_hf(const nlohmann::json& j, const std::string& file) {
  LlamaConfig c;
  auto need = [&](const char* k) -> const nlohmann::json& {
    if (!j.contains(k)) throw DataError(file + ": missing field \"" + std::string(k) + "\"");
    if (!j[k].is_number()) throw DataError(file + ": field \"" + std::string(k) + "\" must be a number");
    return j[k];
  };
  if (j.contains("model_type") && j["model_type"] != "llama")
    throw DataError(file + ": model_type " + j["model_type"].dump() + " is not supported (expected \"llama\")");
  c.vocab_size = need("vocab_size").get<int64_t>();
  c.hidden_size = need("hidden_size").get<int64_t>();
  c.intermediate_size = need("intermediate_size").get<int64_t>();
  c.num_hidden_layers = need("num_hidden_layers").get<int64_t>();
  c.num_attention_heads = need("num_attention_heads").get<int64_t>();
  c.num_key_value_heads = j.contains("num_key_value_heads") ? need("num_key_value_heads").get<int64_t>() : c.num_attention_heads;
  c.max_position_embeddings = need("max_position_embeddings").get<int64_t>();
  c.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
  c.rope_theta = j.value("rope_theta", 10000.0);
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number()) c.bos_token_id = j["bos_token_id"];
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number()) c.eos_token_id = j["eos_token_id"];
  if (j.contains("pad_token_id") && j["pad_token_id"].is_number()) c.pad_token_id = j["pad_token_id"];
  if (c.hidden_size <= 0 || c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0 ||
      c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0 || c.vocab_size <= 0 ||
      c.num_hidden_layers <= 0 || c.intermediate_size <= 0 || c.max_position_embeddings <= 0)
    throw DataError(file + ": inconsistent sizes (hidden_size, heads, kv heads, vocab, layers must be positive and divisible)");
  return c;
}

RMSNormImpl::RMSNormImpl(int64_t dim, double e) : eps(e) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat);
  auto var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * torch::rsqrt(var + eps));
}

torch::Tensor project(torch::nn::Linear lin, const std::map<std::string, LoraAdapter>& adapters, const char* name,
                      const torch::Tensor& x, bool training) {
  auto y = lin->forward(x);
  if (adapters.empty()) return y;
  auto it = adapters.find(name);
  if (it == adapters.end()) return y;
  const auto& a = it->second;
  auto h = a.dropout > 0 ? torch::dropout(x, a.dropout, training) : x;
  return y + torch::matmul(torch::matmul(h, a.A.t()), a.B.t()) * a.scale;
}

AttentionImpl::AttentionImpl(const LlamaConfig& c)
    : n_heads(c.num_attention_heads), n_kv(c.num_key_value_heads), head_dim(c.head_dim()) {
  auto lin = [&](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  q_proj = register_module("q_proj", lin(c.hidden_size, n_heads * head_dim));
  k_proj = register_module("k_proj", lin(c.hidden_size, n_kv * head_dim));
  v_proj = register_module("v_proj", lin(c.hidden_size, n_kv * head_dim));
  o_proj = register_module("o_proj", lin(n_heads * head_dim, c.hidden_size));
}

static torch::Tensor rotate_half(const torch::Tensor& x) {
  auto h = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& bias, KVCache* cache, int64_t layer) {
  const int64_t B = x.size(0), T = x.size(1);
  const bool tr = is_training();
  auto q = project(q_proj, lora, "q_proj", x, tr).view({B, T, n_heads, head_dim}).transpose(1, 2);  // (B,H,T,D)
  auto k = project(k_proj, lora, "k_proj", x, tr).view({B, T, n_kv, head_dim}).transpose(1, 2);     // (B,Hkv,T,D)
  auto v = project(v_proj, lora, "v_proj", x, tr).view({B, T, n_kv, head_dim}).transpose(1, 2);     // (B,Hkv,T,D)
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  if (cache) {
    auto& kc = cache->k[layer];
    auto& vc = cache->v[layer];
    if (!kc.defined()) {
      kc = torch::zeros({B, n_kv, cache->capacity, head_dim}, k.options());
      vc = torch::zeros({B, n_kv, cache->capacity, head_dim}, v.options());
    }
    const int64_t p = cache->length;
    TORCH_CHECK(p + T <= cache->capacity, "KV cache overflow: ", p + T, " > capacity ", cache->capacity);
    kc.narrow(2, p, T).copy_(k);
    vc.narrow(2, p, T).copy_(v);
    k = kc.narrow(2, 0, p + T);  // (B,Hkv,S,D) view
    v = vc.narrow(2, 0, p + T);
  }
  const int64_t S = k.size(2);
  if (n_kv != n_heads) {  // grouped-query attention: head h reads kv head h / (H/Hkv)
    const int64_t rep = n_heads / n_kv;
    k = k.unsqueeze(2).expand({B, n_kv, rep, S, head_dim}).reshape({B, n_heads, S, head_dim});
    v = v.unsqueeze(2).expand({B, n_kv, rep, S, head_dim}).reshape({B, n_heads, S, head_dim});
  }
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));  // (B,H,T,S)
  if (bias.defined()) scores = scores + bias;
  auto probs = torch::softmax(scores, -1, torch::kFloat).to(v.scalar_type());
  auto y = torch::matmul(probs, v);                                     // (B,H,T,D)
  y = y.transpose(1, 2).reshape({B, T, n_heads * head_dim});
  return project(o_proj, lora, "o_proj", y, tr);
}

MLPImpl::MLPImpl(const LlamaConfig& c) {
  auto lin = [&](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); };
  gate_proj = register_module("gate_proj", lin(c.hidden_size, c.intermediate_size));
  up_proj = register_module("up_proj", lin(c.hidden_size, c.intermediate_size));
  down_proj = register_module("down_proj", lin(c.intermediate_size, c.hidden_size));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  const bool tr = is_training();
  return project(down_proj, lora, "down_proj",
                 torch::silu(project(gate_proj, lora, "gate_proj", x, tr)) * project(up_proj, lora, "up_proj", x, tr), tr);
}

DecoderLayerImpl::DecoderLayerImpl(const LlamaConfig& c) {
  self_attn = register_module("self_attn", Attention(c));
  mlp = register_module("mlp", MLP(c));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                        const torch::Tensor& bias, KVCache* cache, int64_t layer) {
  // residual stream stays fp32 (autocast outputs bf16 from linears; bf16 + fp32 -> fp32)
  auto h = x + self_attn->forward(input_layernorm(x), cos, sin, bias, cache, layer).to(torch::kFloat);
  return h + mlp->forward(post_attention_layernorm(h)).to(torch::kFloat);
}

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const LlamaConfig& c) : cfg(c) {
  model = register_module("model", LlamaModel(c));
  if (!c.tie_word_embeddings)  // tied: the head reads the embedding matrix (HF omits lm_head.weight)
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  const int64_t D = c.head_dim(), P = c.max_position_embeddings;
  auto inv_freq = 1.0 / torch::pow(c.rope_theta, torch::arange(0, D, 2, torch::kDouble) / static_cast<double>(D));
  auto t = torch::arange(P, torch::kDouble);
  auto freqs = torch::outer(t, inv_freq);   // (P, D/2)
  auto emb = torch::cat({freqs, freqs}, -1);  // (P, D) rotate-half convention
  rope_cos = register_buffer("rope_cos", emb.cos().to(torch::kFloat));
  rope_sin = register_buffer("rope_sin", emb.sin().to(torch::kFloat));
  causal_bias = register_buffer("causal_bias",
                                torch::full({P, P}, -std::numeric_limits<float>::infinity()).triu(1));
}

torch::Tensor LlamaForCausalLMImpl::forward(const torch::Tensor& ids, const torch::Tensor& positions,
                                            const torch::Tensor& bias, KVCache* cache) {
  return head(hidden(ids, positions, bias, cache));
}

torch::Tensor LlamaForCausalLMImpl::head(const torch::Tensor& x, const torch::Tensor& cols) {
  const auto& w = lm_head ? lm_head->weight : model->embed_tokens->weight;
  return torch::linear(x, cols.defined() ? w.index_select(0, cols) : w);
}

torch::Tensor LlamaForCausalLMImpl::forward_causal_at(const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& cols) {
  const int64_t B = ids.size(0), T = ids.size(1);
  TORCH_CHECK(T <= cfg.max_position_embeddings, "sequence length ", T, " exceeds max_position_embeddings ",
              cfg.max_position_embeddings);
  auto pos = torch::arange(T, ids.options().dtype(torch::kLong)).unsqueeze(0).expand({B, T});
  auto bias = causal_bias.index({Slice(0, T), Slice(0, T)}).view({1, 1, T, T});
  return head(hidden(ids, pos, bias, nullptr).index({mask}), cols);
}

torch::Tensor LlamaForCausalLMImpl::hidden(const torch::Tensor& ids, const torch::Tensor& positions,
                                           const torch::Tensor& bias, KVCache* cache) {
  const int64_t B = ids.size(0), T = ids.size(1);
  TORCH_CHECK(positions.max().item<int64_t>() < cfg.max_position_embeddings, "position ",
              positions.max().item<int64_t>(), " exceeds max_position_embeddings ", cfg.max_position_embeddings);
  auto flat = positions.reshape({-1});
  auto cos = rope_cos.index_select(0, flat).view({B, 1, T, -1});  // (B,1,T,D)
  auto sin = rope_sin.index_select(0, flat).view({B, 1, T, -1});
  auto x = model->embed_tokens(ids);  // (B,T,C) fp32
  int64_t i = 0;
  for (auto& layer : *model->layers) x = layer->as<DecoderLayer>()->forward(x, cos, sin, bias, cache, i++);
  if (cache) cache->length += T;
  return model->norm(x);  // (B,T,C) fp32
}

torch::Tensor LlamaForCausalLMImpl::forward_causal(const torch::Tensor& ids) {
  const int64_t B = ids.size(0), T = ids.size(1);
  TORCH_CHECK(T <= cfg.max_position_embeddings, "sequence length ", T, " exceeds max_position_embeddings ",
              cfg.max_position_embeddings);
  auto pos = torch::arange(T, ids.options().dtype(torch::kLong)).unsqueeze(0).expand({B, T});
  auto bias = causal_bias.index({Slice(0, T), Slice(0, T)}).view({1, 1, T, T});
  return forward(ids, pos, bias, nullptr);
}

KVCache LlamaForCausalLMImpl::new_cache(int64_t batch, int64_t capacity) const {
  KVCache c;
  c.k.resize(cfg.num_hidden_layers);
  c.v.resize(cfg.num_hidden_layers);
  c.capacity = capacity;
  (void)batch;
  return c;
}

int64_t LlamaForCausalLMImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

void init_weights(LlamaForCausalLM& m, uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& kv : m->named_parameters()) {
    auto& p = kv.value();
    if (kv.key().find("norm") != std::string::npos) {
      p.fill_(1.0);
    } else {
      auto w = at::normal(0.0, 0.02, p.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat));
      p.copy_(w);
    }
  }
}

}  // namespace subliminal::model
