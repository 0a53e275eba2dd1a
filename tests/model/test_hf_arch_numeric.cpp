// Hugging Face decoder families beyond Llama's defaults: Mistral-style GQA with a sliding window,
// Qwen2 with q/k/v biases, Qwen3 with q/k norms, OLMo 2 with norms after the sublayers, Llama with attention/MLP biases, an explicit head_dim and Llama-3 /
// linear RoPE scaling. Tiny checkpoints written here in HF layout (single file and sharded, fp32
// and bf16 on disk) must load to the same logits, decode with the KV cache like a full recompute,
// match the independent Python reference, and damaged ones must be refused with a clear message.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "subliminal/model/llama.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
namespace sfs = std::filesystem;
using nlohmann::json;

namespace {

struct Variant {
  std::string name;
  model::LlamaConfig cfg;
  bool sharded = false, bf16 = false;
};

model::LlamaConfig base_cfg(const std::string& type) {
  model::LlamaConfig c;
  c.model_type = type;
  c.vocab_size = 67;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.rope_theta = 10000.0;
  return c;
}

std::vector<Variant> variants() {
  std::vector<Variant> v;
  v.push_back({"llama_gqa", base_cfg("llama")});
  auto mis = base_cfg("mistral");
  mis.sliding_window = 48;
  v.push_back({"mistral_sharded", mis, true});
  auto qw = base_cfg("qwen2");
  qw.qkv_bias = true;
  qw.tie_word_embeddings = true;
  v.push_back({"qwen2_bias_bf16", qw, false, true});
  auto l3 = base_cfg("llama");
  l3.qkv_bias = l3.o_bias = l3.mlp_bias = true;
  l3.head_dim_override = 16;
  l3.rope_type = "llama3";
  l3.rope_factor = 8.0;
  l3.rope_low_freq_factor = 1.0;
  l3.rope_high_freq_factor = 4.0;
  l3.rope_original_max_position = 32;
  l3.rope_theta = 500000.0;
  v.push_back({"llama3_rope_bias_headdim", l3});
  auto q3 = base_cfg("qwen3");  // q/k norms per head; head_dim (12) not hidden / heads (8)
  q3.qk_norm = true;
  q3.head_dim_override = 12;
  q3.tie_word_embeddings = true;
  v.push_back({"qwen3_qknorm_headdim", q3});
  auto o2 = base_cfg("olmo2");  // norms after the sublayers, q/k norms over the whole projection
  o2.qk_norm = o2.qk_norm_whole = o2.post_norms = true;
  v.push_back({"olmo2_postnorm", o2, true});
  auto lin = base_cfg("llama");
  lin.rope_type = "linear";
  lin.rope_factor = 2.0;
  v.push_back({"llama_linear_rope", lin, true});
  return v;
}

model::LlamaForCausalLM make(const model::LlamaConfig& c, uint64_t seed) {
  model::LlamaForCausalLM m(c);
  model::init_weights(m, seed);
  torch::NoGradGuard ng;
  torch::manual_seed(seed);
  for (auto& kv : m->named_parameters()) {
    if (kv.key().find(".bias") != std::string::npos) kv.value().normal_(0.0, 0.5);  // biases that matter
    if (kv.key().find("norm") != std::string::npos) kv.value().uniform_(0.5, 1.5);
  }
  m->eval();
  return m;
}

void write_checkpoint(const sfs::path& dir, model::LlamaForCausalLM& m, const Variant& v) {
  sfs::create_directories(dir);
  model::NamedTensors t;
  for (auto& kv : m->named_parameters()) t.emplace_back(kv.key(), v.bf16 ? kv.value().to(torch::kBFloat16) : kv.value());
  if (v.bf16) {  // the reference model is what the file holds
    torch::NoGradGuard ng;
    for (auto& kv : m->named_parameters()) kv.value().copy_(kv.value().to(torch::kBFloat16).to(torch::kFloat));
  }
  model::write_model_weights(dir.string(), t, {{"format", "pt"}}, v.sharded ? 12000 : 0);
  auto hf = m->cfg.to_hf();
  if (v.bf16) hf["torch_dtype"] = "bfloat16";
  fs::write_file_atomic(dir / "config.json", hf.dump(2));
}

model::LlamaForCausalLM load(const sfs::path& dir) {
  auto j = json::parse(fs::read_file(dir / "config.json"));
  model::LlamaForCausalLM m(model::LlamaConfig::from_hf(j, (dir / "config.json").string()));
  model::load_weights(m, model::read_model_weights(dir.string()), dir.string());
  m->eval();
  return m;
}


}  // namespace

TEST(HfArchNumeric, FamiliesLoadToTheSameLogitsAndDecodeWithTheCache) {
  torch::NoGradGuard ng;
  const bool have_py = testutil::have_reference_torch();
  int k = 0;
  for (auto& v : variants()) {
    auto dir = testutil::temp_dir("hfarch_" + v.name);
    auto m = make(v.cfg, 100 + k++);
    EXPECT_EQ(v.cfg.parameter_count(), m->num_parameters()) << v.name;  // what the memory check counts
    write_checkpoint(dir, m, v);
    if (v.sharded) EXPECT_TRUE(sfs::exists(dir / "model.safetensors.index.json")) << v.name;
    auto loaded = load(dir);
    EXPECT_EQ(loaded->cfg.to_hf().dump(), m->cfg.to_hf().dump()) << v.name;  // the config round-trips
    auto ids = torch::randint(0, 67, {2, 20}, torch::kLong);
    auto full = m->forward_causal(ids);
    EXPECT_TRUE(torch::equal(loaded->forward_causal(ids), full)) << v.name;
    // KV cache: a prefix, then one token at a time
    auto cache = loaded->new_cache(2, 20);
    const int64_t P = 6;
    auto out = loaded->forward(ids.slice(1, 0, P), torch::arange(P).unsqueeze(0).expand({2, P}),
                               loaded->causal_mask(P).view({1, 1, P, P}), &cache);
    double worst = (out - full.slice(1, 0, P)).abs().max().item<double>();
    for (int64_t t = P; t < 20; ++t) {
      auto step = loaded->forward(ids.slice(1, t, t + 1), torch::full({2, 1}, t, torch::kLong), torch::Tensor(), &cache);
      worst = std::max(worst, (step.select(1, 0) - full.select(1, t)).abs().max().item<double>());
    }
    EXPECT_LT(worst, 1e-5) << v.name;
    // the independent Python reference (HF semantics, incl. biases and RoPE scaling)
    if (have_py) {
      std::vector<std::vector<int64_t>> idv(2);
      for (int b = 0; b < 2; ++b)
        for (int t = 0; t < 20; ++t) idv[b].push_back(ids[b][t].item<int64_t>());
      fs::write_file_atomic(dir / "ids.json", json({{"ids", idv}}).dump());
      std::string cmd = testutil::reference_python() + " " + testutil::source_dir() + "/tests/reference/hf_llama_reference.py " + dir.string() + " " +
                        (dir / "ids.json").string() + " " + (dir / "ref.json").string();
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
      auto refs = json::parse(fs::read_file(dir / "ref.json"))["logits"].get<std::vector<std::vector<std::vector<float>>>>();
      double diff = 0;
      for (int b = 0; b < 2; ++b)
        for (int t = 0; t < 20; ++t)
          for (int64_t x = 0; x < 67; ++x) diff = std::max(diff, std::abs(static_cast<double>(refs[b][t][x]) - full[b][t][x].item<double>()));
      std::cout << v.name << ": max |ours - python reference| = " << diff << "\n";
      EXPECT_LT(diff, 1e-4) << v.name;
    }
    if (const char* keep = std::getenv("SUBLIMINAL_EXPORT_CHECKPOINTS")) {  // for checks against real transformers elsewhere
      const auto dst = sfs::path(keep) / v.name;
      sfs::remove_all(dst);
      sfs::create_directories(dst.parent_path());
      sfs::copy(dir, dst, sfs::copy_options::recursive);
      std::vector<std::vector<int64_t>> idv(2);
      for (int b = 0; b < 2; ++b)
        for (int t = 0; t < 20; ++t) idv[b].push_back(ids[b][t].item<int64_t>());
      std::vector<std::vector<std::vector<float>>> lg(2, std::vector<std::vector<float>>(20, std::vector<float>(67)));
      for (int b = 0; b < 2; ++b)
        for (int t = 0; t < 20; ++t)
          for (int x = 0; x < 67; ++x) lg[b][t][x] = full[b][t][x].item<float>();
      fs::write_file_atomic(dst / "ours.json", json({{"ids", idv}, {"logits", lg}}).dump());
    }
    sfs::remove_all(dir);
  }
  if (!have_py) GTEST_SKIP() << "logits and cache checked; the Python reference needs " << testutil::reference_python() << " with torch";
}

TEST(HfArchNumeric, SlidingWindowIsEnforcedNotSilentlyIgnored) {
  torch::NoGradGuard ng;
  auto c = base_cfg("mistral");
  c.sliding_window = 8;
  auto m = make(c, 7);
  EXPECT_NO_THROW(m->forward_causal(torch::zeros({1, 8}, torch::kLong)));
  auto e = testutil::error_of([&] { m->forward_causal(torch::zeros({1, 9}, torch::kLong)); });
  EXPECT_NE(e.find("sliding window"), std::string::npos) << e;
}

TEST(HfArchNumeric, DamagedOrUnsupportedCheckpointsAreRejectedNamingTheProblem) {
  auto dir = testutil::temp_dir("hfarch_bad");
  Variant v{"qwen2", base_cfg("qwen2")};
  v.cfg.qkv_bias = true;
  v.sharded = true;
  auto m = make(v.cfg, 3);
  write_checkpoint(dir, m, v);
  auto cfg_json = json::parse(fs::read_file(dir / "config.json"));
  auto with_cfg = [&](json j) {
    fs::write_file_atomic(dir / "config.json", j.dump());
    return testutil::error_of([&] { load(dir); });
  };
  // config: unknown family, mismatched architecture, unsupported RoPE scaling / activation
  auto j = cfg_json;
  j["model_type"] = "gemma";
  std::string e = with_cfg(j);
  EXPECT_NE(e.find("\"model_type\""), std::string::npos) << e;
  EXPECT_NE(e.find("gemma"), std::string::npos) << e;
  j = cfg_json;
  j["architectures"] = {"LlamaForCausalLM"};
  e = with_cfg(j);
  EXPECT_NE(e.find("\"architectures\""), std::string::npos) << e;
  j = cfg_json;
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  e = with_cfg(j);
  EXPECT_NE(e.find("rope_scaling.rope_type"), std::string::npos) << e;
  j = cfg_json;
  j["hidden_act"] = "gelu";
  e = with_cfg(j);
  EXPECT_NE(e.find("hidden_act"), std::string::npos) << e;
  // the same weights read as Llama: the q/k/v biases are unexpected
  j = cfg_json;
  j["model_type"] = "llama";
  j["architectures"] = {"LlamaForCausalLM"};
  e = with_cfg(j);
  EXPECT_NE(e.find("unexpected tensor 'model.layers.0.self_attn.k_proj.bias'"), std::string::npos) << e;
  fs::write_file_atomic(dir / "config.json", cfg_json.dump());
  ASSERT_EQ(testutil::error_of([&] { load(dir); }), "");
  // weights: a missing tensor, a wrong shape, a truncated shard, a corrupted header
  auto weights = model::read_model_weights(dir.string());
  std::map<std::string, at::Tensor> w(weights.begin(), weights.end());
  for (auto& [k, t] : w) t = t.clone();
  auto m2 = make(v.cfg, 4);
  auto w1 = w;
  w1.erase("model.layers.1.self_attn.v_proj.bias");
  e = testutil::error_of([&] { model::load_weights(m2, w1, "ckpt"); });
  EXPECT_NE(e.find("missing tensor 'model.layers.1.self_attn.v_proj.bias'"), std::string::npos) << e;
  auto w2 = w;
  w2["model.layers.0.mlp.up_proj.weight"] = torch::zeros({48, 31});
  e = testutil::error_of([&] { model::load_weights(m2, w2, "ckpt"); });
  EXPECT_NE(e.find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("shape"), std::string::npos) << e;
  auto index = json::parse(fs::read_file(dir / "model.safetensors.index.json"));
  const std::string shard = index["weight_map"].begin().value().get<std::string>();
  const std::string good = fs::read_file(dir / shard);
  {
    std::ofstream o(dir / shard, std::ios::binary | std::ios::trunc);
    o << good.substr(0, good.size() - 64);
  }
  e = testutil::error_of([&] { model::read_model_weights(dir.string()); });
  EXPECT_NE(e.find(shard), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  std::string bad = good;
  bad[8] = '#';  // the header's opening brace
  {
    std::ofstream o(dir / shard, std::ios::binary | std::ios::trunc);
    o << bad;
  }
  e = testutil::error_of([&] { model::read_model_weights(dir.string()); });
  EXPECT_NE(e.find(shard), std::string::npos) << e;
  EXPECT_NE(e.find("JSON"), std::string::npos) << "[" << e << "]";
  sfs::remove_all(dir);
}

// transformers 5 writes RoPE as one "rope_parameters" object and no top-level rope_theta /
// rope_scaling. The config.json below is what transformers 5.24.0 saved for
// LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
// vocab_size=512, rope_theta=500000.0, rope_scaling={llama3, factor 8, low 1, high 4, original 8192})
// (its RoPE fields, verbatim): read as the older form with the same values reads.
TEST(HfArchNumeric, RopeParametersOfTransformers5AreRead) {
  const json v5 = json::parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
    "max_position_embeddings": 2048, "rms_norm_eps": 1e-06, "hidden_act": "silu",
    "rope_parameters": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192,
                        "rope_theta": 500000.0, "rope_type": "llama3"}})");
  json legacy = v5;
  legacy.erase("rope_parameters");
  legacy["rope_theta"] = 500000.0;
  legacy["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 8192}};
  const auto a = model::LlamaConfig::from_hf(v5, "v5/config.json"), b = model::LlamaConfig::from_hf(legacy, "legacy/config.json");
  EXPECT_EQ(a.rope_theta, 500000.0);
  EXPECT_EQ(a.rope_type, "llama3");
  EXPECT_EQ(a.rope_factor, 8.0);
  EXPECT_EQ(a.rope_original_max_position, 8192);
  EXPECT_TRUE(torch::equal(a.inv_freq(), b.inv_freq()));
  json plain = v5;
  plain["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1000000.0}};
  EXPECT_EQ(model::LlamaConfig::from_hf(plain, "plain/config.json").rope_theta, 1000000.0);
  EXPECT_EQ(model::LlamaConfig::from_hf(plain, "plain/config.json").rope_type, "default");
  // the two forms disagreeing, and per-layer-type RoPE (Gemma 3's form), are errors naming the field
  json both = plain;
  both["rope_theta"] = 10000.0;
  auto e = testutil::error_of([&] { model::LlamaConfig::from_hf(both, "both/config.json"); });
  EXPECT_NE(e.find("disagree"), std::string::npos) << e;
  json nested = v5;
  nested["rope_parameters"] = {{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
                               {"full_attention", {{"rope_type", "default"}, {"rope_theta", 1000000.0}}}};
  e = testutil::error_of([&] { model::LlamaConfig::from_hf(nested, "nested/config.json"); });
  EXPECT_NE(e.find("nested/config.json: field \"rope_parameters\""), std::string::npos) << e;
  json yarn = v5;
  yarn["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 10000.0}, {"factor", 4.0}};
  e = testutil::error_of([&] { model::LlamaConfig::from_hf(yarn, "yarn/config.json"); });
  EXPECT_NE(e.find("rope_parameters.rope_type"), std::string::npos) << e;
}
