// Llama decoder forward pass, rotary embeddings and KV cache.
#include "subliminal/model/llama.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "subliminal/model/runtime.h"
#include "subliminal/model/torch_compat.h"
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

namespace {
// The decoder families, one row each: what config.json says (model_type, architectures), how its
// family-specific fields are read into a LlamaConfig and written back. A new family that is this
// decoder up to such fields is one row here (and, where it has new tensors, their module in
// AttentionImpl / MLPImpl).
struct FamilyRow {
  const char* model_type;
  const char* architecture;
  void (*read)(LlamaConfig& c, const nlohmann::json& j);
  void (*write)(const LlamaConfig& c, nlohmann::json& j);
};

int64_t window_if(const nlohmann::json& j, bool on) {
  return on && j.contains("sliding_window") && j["sliding_window"].is_number() ? j["sliding_window"].get<int64_t>() : 0;
}

const std::vector<FamilyRow>& families() {
  static const std::vector<FamilyRow> rows = {
      {"llama", "LlamaForCausalLM",
       [](LlamaConfig& c, const nlohmann::json& j) {
         c.qkv_bias = c.o_bias = j.value("attention_bias", false);
         c.mlp_bias = j.value("mlp_bias", false);
       },
       [](const LlamaConfig& c, nlohmann::json& j) {
         j["attention_bias"] = c.qkv_bias;
         j["mlp_bias"] = c.mlp_bias;
       }},
      {"mistral", "MistralForCausalLM", [](LlamaConfig& c, const nlohmann::json& j) { c.sliding_window = window_if(j, true); },
       [](const LlamaConfig& c, nlohmann::json& j) {
         j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr);
       }},
      {"qwen2", "Qwen2ForCausalLM",
       [](LlamaConfig& c, const nlohmann::json& j) {
         c.qkv_bias = true;  // Qwen2Attention: q/k/v with bias, o_proj without
         c.sliding_window = window_if(j, j.value("use_sliding_window", false));
       },
       [](const LlamaConfig& c, nlohmann::json& j) {
         j["use_sliding_window"] = c.sliding_window > 0;
         if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
       }},
      {"qwen3", "Qwen3ForCausalLM",
       [](LlamaConfig& c, const nlohmann::json& j) {
         c.qk_norm = true;  // Qwen3Attention: q_norm / k_norm over head_dim, no q/k/v bias unless attention_bias
         c.qkv_bias = c.o_bias = j.value("attention_bias", false);
         if (c.head_dim_override == 0) c.head_dim_override = 128;  // Qwen3Config's default, not hidden / heads
         c.sliding_window = window_if(j, j.value("use_sliding_window", false));
       },
       [](const LlamaConfig& c, nlohmann::json& j) {
         j["attention_bias"] = c.qkv_bias;
         j["head_dim"] = c.head_dim();
         j["use_sliding_window"] = c.sliding_window > 0;
         j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr);
       }},
      {"olmo2", "Olmo2ForCausalLM",
       [](LlamaConfig& c, const nlohmann::json& j) {
         c.qk_norm = c.qk_norm_whole = c.post_norms = true;  // Olmo2Attention / Olmo2DecoderLayer
         c.qkv_bias = c.o_bias = j.value("attention_bias", false);
       },
       [](const LlamaConfig& c, nlohmann::json& j) { j["attention_bias"] = c.qkv_bias; }},
  };
  return rows;
}

const FamilyRow* family_of(const std::string& model_type) {
  for (const auto& r : families())
    if (model_type == r.model_type) return &r;
  return nullptr;
}

std::string supported_families() {
  std::string s;
  for (const auto& r : families()) s += (s.empty() ? "" : ", ") + std::string(r.model_type) + " (" + r.architecture + ")";
  return s;
}
}  // namespace

static const char* architecture_of(const std::string& model_type) {
  const auto* f = family_of(model_type);
  return f ? f->architecture : "LlamaForCausalLM";
}

nlohmann::json LlamaConfig::to_hf() const {
  nlohmann::json j = {{"architectures", {architecture_of(model_type)}},
                      {"model_type", model_type},
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
                      {"bos_token_id", bos_token_id},
                      {"eos_token_id", eos_token_id},
                      {"pad_token_id", pad_token_id},
                      {"torch_dtype", "float32"}};
  if (head_dim_override > 0) j["head_dim"] = head_dim_override;
  if (const auto* f = family_of(model_type)) f->write(*this, j);
  if (rope_type == "linear") j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_factor}};
  if (rope_type == "llama3")
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", rope_factor},
                         {"low_freq_factor", rope_low_freq_factor},
                         {"high_freq_factor", rope_high_freq_factor},
                         {"original_max_position_embeddings", rope_original_max_position}};
  return j;
}

LlamaConfig LlamaConfig::from_hf(const nlohmann::json& j, const std::string& file) {
  LlamaConfig c;
  auto need = [&](const char* k) -> const nlohmann::json& {
    if (!j.contains(k)) throw DataError(file + ": missing field \"" + std::string(k) + "\"");
    if (!j[k].is_number()) throw DataError(file + ": field \"" + std::string(k) + "\" must be a number");
    return j[k];
  };
  const std::string supported = supported_families();
  if (j.contains("model_type")) {
    if (!j["model_type"].is_string()) throw DataError(file + ": field \"model_type\" must be a string");
    c.model_type = j["model_type"].get<std::string>();
    if (!family_of(c.model_type))
      throw DataError(file + ": field \"model_type\" is \"" + c.model_type + "\", which this tool cannot run; supported: " + supported);
  }
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    const std::string arch = j["architectures"][0].is_string() ? j["architectures"][0].get<std::string>() : "?";
    if (arch != architecture_of(c.model_type))
      throw DataError(file + ": field \"architectures\" is [\"" + arch + "\"]; with model_type \"" + c.model_type + "\" expected \"" +
                      architecture_of(c.model_type) + "\" (supported: " + supported + ")");
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    throw DataError(file + ": field \"hidden_act\" is " + j["hidden_act"].dump() + "; only \"silu\" (SwiGLU) is supported");
  c.vocab_size = need("vocab_size").get<int64_t>();
  c.hidden_size = need("hidden_size").get<int64_t>();
  c.intermediate_size = need("intermediate_size").get<int64_t>();
  c.num_hidden_layers = need("num_hidden_layers").get<int64_t>();
  c.num_attention_heads = need("num_attention_heads").get<int64_t>();
  c.num_key_value_heads = j.contains("num_key_value_heads") ? need("num_key_value_heads").get<int64_t>() : c.num_attention_heads;
  c.max_position_embeddings = need("max_position_embeddings").get<int64_t>();
  c.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
  c.rope_theta = j.value("rope_theta", 10000.0);
  // transformers 5 writes the RoPE settings as one object, "rope_parameters" ({"rope_type",
  // "rope_theta", scaling factors}), with no top-level rope_theta / rope_scaling; older files have those.
  nlohmann::json rope_scaling = j.contains("rope_scaling") && j["rope_scaling"].is_object() ? j["rope_scaling"] : nlohmann::json();
  std::string rope_field = "rope_scaling";
  if (j.contains("rope_parameters") && !j["rope_parameters"].is_null()) {
    const auto& rp = j["rope_parameters"];
    if (!rp.is_object() || !rp.contains("rope_theta") || !rp["rope_theta"].is_number())
      throw DataError(file + ": field \"rope_parameters\": expected an object with a number \"rope_theta\" (one RoPE for every layer; "
                      "per-layer-type RoPE is not supported for model_type \"" + c.model_type + "\")");
    const double theta = rp["rope_theta"].get<double>();
    if (j.contains("rope_theta") && j["rope_theta"].is_number() && j["rope_theta"].get<double>() != theta)
      throw DataError(file + ": fields \"rope_theta\" (" + j["rope_theta"].dump() + ") and \"rope_parameters.rope_theta\" (" +
                      rp["rope_theta"].dump() + ") disagree");
    c.rope_theta = theta;
    if (rp.value("rope_type", std::string("default")) != "default" || rope_scaling.is_null()) {
      rope_scaling = rp;
      rope_field = "rope_parameters";
    }
  }
  c.tie_word_embeddings = j.value("tie_word_embeddings", false);
  if (j.contains("head_dim") && j["head_dim"].is_number()) c.head_dim_override = j["head_dim"].get<int64_t>();
  family_of(c.model_type)->read(c, j);
  if (rope_scaling.is_object()) {
    const auto& r = rope_scaling;
    c.rope_type = r.contains("rope_type") ? r["rope_type"].get<std::string>() : r.value("type", std::string("default"));
    if (c.rope_type != "default" && c.rope_type != "linear" && c.rope_type != "llama3")
      throw DataError(file + ": field \"" + rope_field + ".rope_type\" is \"" + c.rope_type + "\"; supported: default, linear, llama3");
    c.rope_factor = r.value("factor", 1.0);
    c.rope_low_freq_factor = r.value("low_freq_factor", 1.0);
    c.rope_high_freq_factor = r.value("high_freq_factor", 4.0);
    c.rope_original_max_position = r.value("original_max_position_embeddings", int64_t{8192});
    if (c.rope_factor <= 0 || (c.rope_type == "llama3" && c.rope_high_freq_factor <= c.rope_low_freq_factor))
      throw DataError(file + ": field \"" + rope_field + "\" has a non-positive factor or high_freq_factor <= low_freq_factor");
  }
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number()) c.bos_token_id = j["bos_token_id"];
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number()) c.eos_token_id = j["eos_token_id"];
  if (j.contains("pad_token_id") && j["pad_token_id"].is_number()) c.pad_token_id = j["pad_token_id"];
  if (c.hidden_size <= 0 || c.num_attention_heads <= 0 || (c.head_dim_override == 0 && c.hidden_size % c.num_attention_heads != 0) ||
      c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0 || c.vocab_size <= 0 ||
      c.num_hidden_layers <= 0 || c.intermediate_size <= 0 || c.max_position_embeddings <= 0 || c.head_dim() % 2 != 0)
    throw DataError(file + ": inconsistent sizes (hidden_size, heads, kv heads, vocab, layers must be positive and divisible; head_dim even)");
  return c;
}

int64_t LlamaConfig::parameter_count() const {
  const int64_t C = hidden_size, D = head_dim(), q = num_attention_heads * D, kv = num_key_value_heads * D, I = intermediate_size;
  int64_t attn = C * q + 2 * C * kv + q * C + (qkv_bias ? q + 2 * kv : 0) + (o_bias ? C : 0);
  int64_t mlp = 3 * C * I + (mlp_bias ? 2 * I + C : 0);
  int64_t layer = attn + mlp + 2 * C + (qk_norm ? (qk_norm_whole ? q + kv : 2 * D) : 0);
  return vocab_size * C + num_hidden_layers * layer + C + (tie_word_embeddings ? 0 : vocab_size * C);
}

torch::Tensor LlamaConfig::inv_freq() const {
  const int64_t D = head_dim();
  auto f = 1.0 / torch::pow(rope_theta, torch::arange(0, D, 2, torch::kDouble) / static_cast<double>(D));
  if (rope_type != "llama3") return f;
  // Llama 3.1 (transformers _compute_llama3_parameters): long wavelengths divided by factor, short
  // kept, the band between interpolated smoothly.
  const double old = static_cast<double>(rope_original_max_position);
  const double low_wavelen = old / rope_low_freq_factor, high_wavelen = old / rope_high_freq_factor;
  auto wavelen = 2 * M_PI / f;
  auto scaled = torch::where(wavelen > low_wavelen, f / rope_factor, f);
  auto smooth = (old / wavelen - rope_low_freq_factor) / (rope_high_freq_factor - rope_low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / rope_factor + smooth * scaled;
  auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
  return torch::where(medium, smoothed, scaled);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double e) : eps(e) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat);
  auto var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * torch::rsqrt(var + eps));
}

torch::Tensor with_lora(const std::map<std::string, LoraAdapter>& adapters, const char* name, const torch::Tensor& y,
                        const torch::Tensor& x, bool training) {
  if (adapters.empty()) return y;
  auto it = adapters.find(name);
  if (it == adapters.end()) return y;
  const auto& a = it->second;
  auto h = a.dropout > 0 ? torch::dropout(x, a.dropout, training) : x;
  // y + (h A^T)(scale B)^T as one GEMM that accumulates into y: the scale goes on the small B, and
  // neither the adapter's term nor the sum is a separate pass over the (tokens, out) output
  const int64_t r = a.A.size(0), out = y.size(-1);
  auto hA = torch::matmul(h, a.A.t()).reshape({-1, r});
  return torch::addmm(y.reshape({-1, out}), hA, (a.B * a.scale).t()).view(y.sizes());
}

torch::Tensor project(torch::nn::Linear lin, const std::map<std::string, LoraAdapter>& adapters, const char* name,
                      const torch::Tensor& x, bool training) {
  return with_lora(adapters, name, lin->forward(x), x, training);
}

std::vector<torch::Tensor> fused_linear(const std::vector<torch::nn::Linear>& lins, FusedWeight& cache, const torch::Tensor& x) {
  std::vector<torch::Tensor> ws, bs;
  std::vector<int64_t> sizes;
  bool needs_grad = false;
  for (const auto& l : lins) {
    ws.push_back(l->weight);
    if (l->bias.defined()) bs.push_back(l->bias);
    sizes.push_back(l->weight.size(0));
    needs_grad = needs_grad || l->weight.requires_grad() || (l->bias.defined() && l->bias.requires_grad());
  }
  TORCH_CHECK(bs.empty() || bs.size() == ws.size(), "fused projections: all or none of the Linears need a bias");
  torch::Tensor w, b;
  if (needs_grad && torch::GradMode::is_enabled()) {
    w = torch::cat(ws, 0);
    if (!bs.empty()) b = torch::cat(bs, 0);
  } else {
    // the dtype the matmul will run in: autocast's, else the weights'
    auto dt = ws[0].scalar_type();
    if (compat::autocast_enabled(x.is_cuda())) dt = compat::autocast_dtype(x.is_cuda());
    std::vector<std::pair<const void*, int64_t>> key;
    for (const auto& t : ws) key.emplace_back(t.data_ptr(), t._version());
    for (const auto& t : bs) key.emplace_back(t.data_ptr(), t._version());
    if (key != cache.key || dt != cache.dtype || !cache.w.defined() || cache.w.device() != x.device()) {
      // a normal tensor even when built under InferenceMode (sampling): a frozen-weight training
      // step may later save it for its backward
      c10::InferenceMode not_inference(false);
      torch::NoGradGuard ng;
      cache.w = torch::cat(ws, 0).to(dt);
      cache.b = bs.empty() ? torch::Tensor() : torch::cat(bs, 0).to(dt);
      cache.key = std::move(key);
      cache.dtype = dt;
    }
    w = cache.w;
    b = cache.b;
  }
  auto y = torch::linear(x, w, b);
  return y.split_with_sizes(sizes, -1);
}


AttentionImpl::AttentionImpl(const LlamaConfig& c)
    : n_heads(c.num_attention_heads), n_kv(c.num_key_value_heads), head_dim(c.head_dim()), window(c.sliding_window) {
  auto lin = [&](int64_t in, int64_t out, bool b) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(b)); };
  q_proj = register_module("q_proj", lin(c.hidden_size, n_heads * head_dim, c.qkv_bias));
  k_proj = register_module("k_proj", lin(c.hidden_size, n_kv * head_dim, c.qkv_bias));
  v_proj = register_module("v_proj", lin(c.hidden_size, n_kv * head_dim, c.qkv_bias));
  o_proj = register_module("o_proj", lin(n_heads * head_dim, c.hidden_size, c.o_bias));
  if (c.qk_norm) {
    q_norm = register_module("q_norm", RMSNorm(c.qk_norm_whole ? n_heads * head_dim : head_dim, c.rms_norm_eps));
    k_norm = register_module("k_norm", RMSNorm(c.qk_norm_whole ? n_kv * head_dim : head_dim, c.rms_norm_eps));
    qk_norm_whole = c.qk_norm_whole;
  }
}

static torch::Tensor rotate_half(const torch::Tensor& x) {
  auto h = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

bool decode_attention_applies(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& bias) {
  if (q.dim() != 4 || q.size(2) != 1 || !q.device().is_cpu() || q.scalar_type() != torch::kFloat || k.scalar_type() != torch::kFloat) return false;
  if (torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad())) return false;
  if (k.stride(3) != 1) return false;
  if (bias.defined() && (bias.dim() != 4 || bias.size(1) != 1 || bias.size(2) != 1 || bias.scalar_type() != torch::kFloat)) return false;
  return true;
}

torch::Tensor decode_attention_cpu(const torch::Tensor& q_in, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias) {
  const int64_t B = q_in.size(0), H = q_in.size(1), D = q_in.size(3), Hkv = k.size(1), S = k.size(2);
  TORCH_CHECK(H % Hkv == 0 && k.size(0) == B && v.sizes() == k.sizes() && k.size(3) == D && v.stride(3) == 1, "decode_attention_cpu: shapes");
  const int64_t rep = H / Hkv;
  const auto q = q_in.contiguous();
  auto y = torch::empty({B, H, 1, D}, q.options());
  const float* qd = q.data_ptr<float>();
  const float* kd = k.data_ptr<float>();
  const float* vd = v.data_ptr<float>();
  float* yd = y.data_ptr<float>();
  const int64_t ks0 = k.stride(0), ks1 = k.stride(1), ks2 = k.stride(2), vs0 = v.stride(0), vs1 = v.stride(1), vs2 = v.stride(2);
  const float* bd = nullptr;
  int64_t bs0 = 0, bs3 = 0;
  torch::Tensor bc;
  if (bias.defined()) {
    bc = bias.expand({B, 1, 1, S});
    bd = bc.data_ptr<float>();
    bs0 = bc.stride(0);
    bs3 = bc.stride(3);
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> sc(static_cast<size_t>(S));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / H, g = (i % H) / rep;
      const float* qp = qd + i * D;
      const float* kp = kd + b * ks0 + g * ks1;
      const float* vp = vd + b * vs0 + g * vs1;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < S; ++s) {
        const float* kr = kp + s * ks2;
        // 16 independent partial sums (vectorised by the compiler), then the remainder
        float part[16] = {0.f};
        int64_t d = 0;
        for (; d + 16 <= D; d += 16)
          for (int j = 0; j < 16; ++j) part[j] += qp[d + j] * kr[d + j];
        float acc = 0.f;
        for (; d < D; ++d) acc += qp[d] * kr[d];
        for (int j = 0; j < 16; ++j) acc += part[j];
        acc = acc * scale + (bd ? bd[b * bs0 + s * bs3] : 0.f);
        sc[static_cast<size_t>(s)] = acc;
        mx = std::max(mx, acc);
      }
      float* yp = yd + i * D;
      for (int64_t d = 0; d < D; ++d) yp[d] = 0.f;
      if (mx == -std::numeric_limits<float>::infinity()) continue;  // every key masked (not reached by the sampler)
      float sum = 0.f;
      for (int64_t s = 0; s < S; ++s) sum += (sc[static_cast<size_t>(s)] = std::exp(sc[static_cast<size_t>(s)] - mx));
      const float inv = 1.f / sum;
      for (int64_t s = 0; s < S; ++s) {
        const float w = sc[static_cast<size_t>(s)] * inv;
        if (w == 0.f) continue;
        const float* vr = vp + s * vs2;
        for (int64_t d = 0; d < D; ++d) yp[d] += w * vr[d];
      }
    }
  });
  return y;
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& bias, KVCache* cache, int64_t layer) {
  const int64_t B = x.size(0), T = x.size(1);
  const bool tr = is_training();
  torch::Tensor q, k, v;
  if (fused) {
    auto qkv = fused_linear({q_proj, k_proj, v_proj}, qkv_cache, x);
    q = qkv[0], k = qkv[1], v = qkv[2];
    if (!lora.empty()) {
      for (auto [t, n] : {std::pair<torch::Tensor*, const char*>{&q, "q_proj"}, {&k, "k_proj"}, {&v, "v_proj"}})
        *t = with_lora(lora, n, *t, x, tr);
    }
  } else {
    q = project(q_proj, lora, "q_proj", x, tr);
    k = project(k_proj, lora, "k_proj", x, tr);
    v = project(v_proj, lora, "v_proj", x, tr);
  }
  if (q_norm && qk_norm_whole) {  // OLMo 2: one RMS over every head of the projection, before the split
    q = q_norm(q).to(v.scalar_type());
    k = k_norm(k).to(v.scalar_type());
  }
  q = q.reshape({B, T, n_heads, head_dim});
  k = k.reshape({B, T, n_kv, head_dim});
  if (q_norm && !qk_norm_whole) {  // Qwen3: each head normalised over head_dim, before RoPE (fp32 out, as the residual stream)
    q = q_norm(q).to(v.scalar_type());
    k = k_norm(k).to(v.scalar_type());
  }
  q = q.transpose(1, 2);  // (B,H,T,D)
  k = k.transpose(1, 2);  // (B,Hkv,T,D)
  v = v.reshape({B, T, n_kv, head_dim}).transpose(1, 2);     // (B,Hkv,T,D)
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
  TORCH_CHECK(window <= 0 || S <= window, "sequence of ", S, " tokens is longer than the model's sliding window (", window,
              "), which this implementation does not apply");
  const int64_t rep = n_heads / n_kv;  // grouped-query attention: head h reads kv head h / rep
  torch::Tensor y;                     // (B,H,T,D)
  if (rep > 1 && attention_path() == AttentionPath::grouped) {
    if (!tr && decode_attention_applies(q, k, bias)) {  // a decode step on the CPU: one pass over the cache
      y = decode_attention_cpu(q, k, v, bias);
    } else {
      // The rep query heads that share a kv head are rows of one product with it: (B,Hkv,rep*T,D) x
      // (B,Hkv,D,S). The keys and values are read where they are (the KV cache), never copied rep
      // times per layer and step; the scores are the same dot products.
      auto qg = q.reshape({B, n_kv, rep * T, head_dim});
      auto scores = torch::matmul(qg, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));  // (B,Hkv,rep*T,S)
      if (bias.defined()) {
        auto b = bias;  // (T,S), (1|B,T,S) or (1|B,1,T,S): one bias for every head
        while (b.dim() < 4) b = b.unsqueeze(0);
        TORCH_CHECK(b.size(1) == 1, "grouped-query attention takes one bias for every head, got ", b.sizes());
        scores = (scores.view({B, n_kv, rep, T, S}) + b.unsqueeze(2)).view({B, n_kv, rep * T, S});
      }
      auto probs = torch::softmax(scores, -1, torch::kFloat).to(v.scalar_type());
      y = torch::matmul(probs, v).view({B, n_heads, T, head_dim});
    }
  } else {
    if (rep > 1) {  // AttentionPath::reference: each query head gets its own copy of its kv head
      k = k.unsqueeze(2).expand({B, n_kv, rep, S, head_dim}).reshape({B, n_heads, S, head_dim});
      v = v.unsqueeze(2).expand({B, n_kv, rep, S, head_dim}).reshape({B, n_heads, S, head_dim});
    }
#if SUBLIMINAL_HAS_SDPA
    if (use_sdpa) {
      // the fused kernel (flash attention on CPU, with the additive mask in the query's dtype)
      y = at::scaled_dot_product_attention(q, k, v, bias.defined() ? c10::optional<at::Tensor>(bias.to(q.scalar_type())) : c10::nullopt);
    } else
#endif
    {
      auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));  // (B,H,T,S)
      if (bias.defined()) scores = scores + bias;
      auto probs = torch::softmax(scores, -1, torch::kFloat).to(v.scalar_type());
      y = torch::matmul(probs, v);
    }
  }
  y = y.transpose(1, 2).reshape({B, T, n_heads * head_dim});
  return project(o_proj, lora, "o_proj", y, tr);
}

MLPImpl::MLPImpl(const LlamaConfig& c) {
  auto lin = [&](int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(c.mlp_bias)); };
  gate_proj = register_module("gate_proj", lin(c.hidden_size, c.intermediate_size));
  up_proj = register_module("up_proj", lin(c.hidden_size, c.intermediate_size));
  down_proj = register_module("down_proj", lin(c.intermediate_size, c.hidden_size));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) {
  const bool tr = is_training();
  torch::Tensor g, u;
  if (fused) {
    auto gu = fused_linear({gate_proj, up_proj}, gate_up_cache, x);
    g = gu[0], u = gu[1];
    if (!lora.empty()) {
      g = with_lora(lora, "gate_proj", g, x, tr);
      u = with_lora(lora, "up_proj", u, x, tr);
    }
  } else {  // up before gate: the order earlier binaries computed them in (allocation order can change float results)
    u = project(up_proj, lora, "up_proj", x, tr);
    g = project(gate_proj, lora, "gate_proj", x, tr);
  }
  return project(down_proj, lora, "down_proj", torch::silu(g) * u, tr);
}

DecoderLayerImpl::DecoderLayerImpl(const LlamaConfig& c) {
  self_attn = register_module("self_attn", Attention(c));
  mlp = register_module("mlp", MLP(c));
  post_norms = c.post_norms;
  if (!post_norms) input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  if (post_norms) post_feedforward_layernorm = register_module("post_feedforward_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                        const torch::Tensor& bias, KVCache* cache, int64_t layer) {
  // residual stream stays fp32 (autocast outputs bf16 from linears; bf16 + fp32 -> fp32)
  if (post_norms) {  // OLMo 2: the norms act on the sublayers' outputs
    auto h = x + post_attention_layernorm(self_attn->forward(x, cos, sin, bias, cache, layer));
    return h + post_feedforward_layernorm(mlp->forward(h));
  }
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
  const int64_t P = c.max_position_embeddings, M = std::min<int64_t>(P, 4096);
  auto t = torch::arange(P, torch::kDouble) / c.position_scale();
  auto freqs = torch::outer(t, c.inv_freq());  // (P, D/2)
  auto emb = torch::cat({freqs, freqs}, -1);    // (P, D) rotate-half convention
  rope_cos = register_buffer("rope_cos", emb.cos().to(torch::kFloat));
  rope_sin = register_buffer("rope_sin", emb.sin().to(torch::kFloat));
  causal_bias = register_buffer("causal_bias", torch::full({M, M}, -std::numeric_limits<float>::infinity()).triu(1));
}

torch::Tensor LlamaForCausalLMImpl::causal_mask(int64_t n) const {
  if (n <= causal_bias.size(0)) return causal_bias.index({Slice(0, n), Slice(0, n)});
  return torch::full({n, n}, -std::numeric_limits<float>::infinity(), causal_bias.options()).triu(1);
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
  auto bias = causal_mask(T).view({1, 1, T, T});
  return head(hidden(ids, pos, bias, nullptr).index({mask}), cols);
}

namespace {

// Activation checkpointing of one decoder layer (the reentrant scheme of torch.utils.checkpoint):
// the forward keeps only the layer's input; the backward recomputes the layer with the forward's
// autocast state and RNG state (LoRA dropout draws the same masks) and back-propagates through it,
// which also accumulates the layer's parameter gradients.
struct CheckpointedLayer : torch::autograd::Function<CheckpointedLayer> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor cos, torch::Tensor sin,
                               torch::Tensor bias, int64_t layer_ptr) {
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(layer_ptr);
    ctx->saved_data["layer"] = layer_ptr;
    ctx->saved_data["autocast_cpu"] = compat::autocast_enabled(false);
    ctx->saved_data["autocast_gpu"] = compat::autocast_enabled(true);
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      ctx->saved_data["rng"] = gen.get_state();
    }
    ctx->save_for_backward({x, cos, sin, bias});
    return layer->forward(x, cos, sin, bias, nullptr, 0);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    auto saved = ctx->get_saved_variables();
    auto x = saved[0].detach().requires_grad_(true);
    auto gen = at::detail::getDefaultCPUGenerator();
    at::Tensor now;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      now = gen.get_state();
      gen.set_state(ctx->saved_data["rng"].toTensor());
    }
    torch::Tensor out;
    {
      torch::AutoGradMode on(true);
      const bool cpu = ctx->saved_data["autocast_cpu"].toBool(), gpu = ctx->saved_data["autocast_gpu"].toBool();
      Autocast ac(cpu || gpu, gpu);
      out = layer->forward(x, saved[1], saved[2], saved[3], nullptr, 0);
    }
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(now);
    }
    torch::autograd::backward({out}, {grads[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor LlamaForCausalLMImpl::hidden(const torch::Tensor& ids, const torch::Tensor& positions,
                                           const torch::Tensor& bias, KVCache* cache) {
  const int64_t B = ids.size(0), T = ids.size(1);
  // (no host sync per decoded token: with a cache the caller checked the capacity against
  // max_position_embeddings, and index_select refuses an out-of-range position anyway)
  if (!cache) {
    TORCH_CHECK(positions.max().item<int64_t>() < cfg.max_position_embeddings, "position ",
                positions.max().item<int64_t>(), " exceeds max_position_embeddings ", cfg.max_position_embeddings);
  } else {
    TORCH_CHECK(cache->length + T <= cfg.max_position_embeddings, "KV cache position ", cache->length + T,
                " exceeds max_position_embeddings ", cfg.max_position_embeddings);
  }
  auto flat = positions.reshape({-1});
  auto cos = rope_cos.index_select(0, flat).view({B, 1, T, -1});  // (B,1,T,D)
  auto sin = rope_sin.index_select(0, flat).view({B, 1, T, -1});
  auto x = model->embed_tokens(ids);  // (B,T,C) fp32
  int64_t i = 0;
  const bool ckpt = checkpoint_layers && is_training() && cache == nullptr && torch::GradMode::is_enabled();
  for (auto& layer : *model->layers) {
    auto* L = layer->as<DecoderLayer>();
    x = ckpt ? CheckpointedLayer::apply(x, cos, sin, bias.defined() ? bias : torch::Tensor(), reinterpret_cast<int64_t>(L))
             : L->forward(x, cos, sin, bias, cache, i);
    ++i;
  }
  if (cache) cache->length += T;
  return model->norm(x);  // (B,T,C) fp32
}

torch::Tensor LlamaForCausalLMImpl::forward_causal(const torch::Tensor& ids) {
  const int64_t B = ids.size(0), T = ids.size(1);
  TORCH_CHECK(T <= cfg.max_position_embeddings, "sequence length ", T, " exceeds max_position_embeddings ",
              cfg.max_position_embeddings);
  auto pos = torch::arange(T, ids.options().dtype(torch::kLong)).unsqueeze(0).expand({B, T});
  auto bias = causal_mask(T).view({1, 1, T, T});
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
    } else if (kv.key().size() > 5 && kv.key().compare(kv.key().size() - 5, 5, ".bias") == 0) {
      p.zero_();
    } else {
      auto w = at::normal(0.0, 0.02, p.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat));
      p.copy_(w);
    }
  }
}

void set_fused_projections(LlamaForCausalLM& m, bool on) {
  for (auto& layer : *m->model->layers) {
    auto* L = layer->as<DecoderLayer>();
    L->self_attn->fused = on;
    L->mlp->fused = on;
  }
  clear_fused_caches(m);
}

void set_sdpa_attention(LlamaForCausalLM& m, bool on) {
  for (auto& layer : *m->model->layers) layer->as<DecoderLayer>()->self_attn->use_sdpa = on;
}

bool sdpa_available() { return SUBLIMINAL_HAS_SDPA; }

namespace {
std::atomic<AttentionPath> g_attention_path{AttentionPath::reference};
}

void set_attention_path(AttentionPath p) { g_attention_path.store(p); }
AttentionPath attention_path() { return g_attention_path.load(); }
AttentionPath attention_path_from(const std::string& name) {
  if (name == "reference") return AttentionPath::reference;
  if (name == "grouped") return AttentionPath::grouped;
  throw ConfigError("attention \"" + name + "\": expected \"reference\" or \"grouped\"");
}

void clear_fused_caches(LlamaForCausalLM& m) {
  for (auto& layer : *m->model->layers) {
    auto* L = layer->as<DecoderLayer>();
    L->self_attn->qkv_cache = FusedWeight{};
    L->mlp->gate_up_cache = FusedWeight{};
  }
}

}  // namespace subliminal::model
