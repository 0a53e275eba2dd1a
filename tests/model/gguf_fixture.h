#pragma once
// Shared by the tests split out of tests/test_gguf.cpp.
// GGUF: the reader (metadata, tensor index, bounds), the dequantisation of every supported type on
// blocks whose values follow from ggml's block layouts, llama.cpp's q/k permutation undone, the
// tokenizer rebuilt from tokenizer.ggml.*, and bad files refused naming the file and the tensor.
// (The independent check against gguf-py's dequantisers and transformers' GGUF loader is the
// verification tier: tests/verify/, scripts/verify.sh.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/util/Half.h>

#include <filesystem>

#include "gguf_writer.h"
#include "subliminal/model/gguf.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/text/bpe.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
namespace sfs = std::filesystem;
using nlohmann::json;

namespace {

std::string half(float v) {
  const uint16_t h = c10::detail::fp16_ieee_from_fp32_value(v);
  return std::string(reinterpret_cast<const char*>(&h), 2);
}

std::vector<float> deq(uint32_t type, const std::string& bytes, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  model::dequantize_row(type, reinterpret_cast<const uint8_t*>(bytes.data()), y.data(), n);
  return y;
}

sfs::path write(const sfs::path& p, const std::string& bytes) {
  fs::write_file_atomic(p, bytes);
  return p;
}

}  // namespace

namespace {

// A byte-level vocabulary: 3 specials, the 256 byte characters, then "he", "12" and "Ġt" by merges.
struct TinyVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges = {"h e", "1 2", "\xc4\xa0 t"};
};
TinyVocab tiny_vocab() {
  TinyVocab v;
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) v.tokens.push_back(s), v.types.push_back(3);
  for (int b = 0; b < 256; ++b) v.tokens.push_back(text::BpeTokenizer::byte_level(std::string(1, static_cast<char>(b)))), v.types.push_back(1);
  for (const char* s : {"he", "12", "\xc4\xa0t"}) v.tokens.push_back(s), v.types.push_back(1);
  return v;
}

const char* kSmolTemplate =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI "
    "assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// llama.cpp's convert_hf_to_gguf.py LlamaModel.permute, as it writes q and k
torch::Tensor ggml_permute(const torch::Tensor& w, int64_t heads) {
  return w.reshape({heads, 2, w.size(0) / heads / 2, w.size(1)}).transpose(1, 2).reshape(w.sizes()).contiguous();
}

// A tiny GQA Llama written as llama.cpp writes one (names, q/k permutation, F32), with `pre` as the pre-tokenizer.
std::string tiny_llama_gguf(model::LlamaForCausalLM& m, const std::string& pre, bool q8_embedding = false) {
  const auto& c = m->cfg;
  const std::string a = c.model_type == "qwen2" || c.model_type == "qwen3" ? c.model_type : "llama";  // qwen2/3 files: q/k not permuted
  testutil::GgufWriter w;
  w.str("general.architecture", a);
  w.str("general.name", "tiny test llama");
  w.u32(a + ".block_count", static_cast<uint32_t>(c.num_hidden_layers));
  w.u32(a + ".context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.u32(a + ".embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.u32(a + ".feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.u32(a + ".attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
  w.u32(a + ".attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
  w.f32(a + ".rope.freq_base", static_cast<float>(c.rope_theta));
  w.f32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  if (a == "qwen3") {  // llama.cpp writes head_dim as the key/value length
    w.u32(a + ".attention.key_length", static_cast<uint32_t>(c.head_dim()));
    w.u32(a + ".attention.value_length", static_cast<uint32_t>(c.head_dim()));
  }
  auto v = tiny_vocab();
  w.str("tokenizer.ggml.model", "gpt2");
  w.str("tokenizer.ggml.pre", pre);
  w.strs("tokenizer.ggml.tokens", v.tokens);
  w.i32s("tokenizer.ggml.token_type", v.types);
  w.strs("tokenizer.ggml.merges", v.merges);
  w.u32("tokenizer.ggml.bos_token_id", 1);
  w.u32("tokenizer.ggml.eos_token_id", 2);
  w.u32("tokenizer.ggml.padding_token_id", 2);
  w.boolean("tokenizer.ggml.add_bos_token", false);
  w.str("tokenizer.chat_template", kSmolTemplate);
  const std::map<std::string, std::string> to_gguf = {
      {"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.o_proj.weight", "attn_output.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},    {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},    {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},       {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"}, {"self_attn.k_norm.weight", "attn_k_norm.weight"}};
  for (auto& [name, t0] : model::named_weights(m)) {
    torch::Tensor t = t0.detach().contiguous();
    std::string g;
    if (name == "model.embed_tokens.weight") g = "token_embd.weight";
    else if (name == "model.norm.weight") g = "output_norm.weight";
    else if (name == "lm_head.weight") g = "output.weight";
    else {
      const auto rest = name.substr(std::string("model.layers.").size());
      const auto dot = rest.find('.');
      g = "blk." + rest.substr(0, dot) + "." + to_gguf.at(rest.substr(dot + 1));
      if (a == "llama" && g.find("attn_q.weight") != std::string::npos) t = ggml_permute(t, c.num_attention_heads);
      if (a == "llama" && g.find("attn_k.weight") != std::string::npos) t = ggml_permute(t, c.num_key_value_heads);
    }
    std::vector<uint64_t> dims(t.sizes().rbegin(), t.sizes().rend());
    if (q8_embedding && g == "token_embd.weight") {  // Q8_0 with one scale per 32 values: exact for values k * d
      auto flat = t.flatten();
      std::string bytes;
      for (int64_t b = 0; b < flat.numel() / 32; ++b) {
        bytes += half(0.0625f);
        for (int j = 0; j < 32; ++j) {
          const float x = flat[b * 32 + j].item<float>();
          bytes += static_cast<char>(static_cast<int8_t>(std::max(-127.0f, std::min(127.0f, std::round(x / 0.0625f)))));
        }
      }
      w.tensor(g, dims, 8, bytes);
      continue;
    }
    std::vector<float> vals(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    w.f32_tensor(g, dims, vals);
  }
  return w.bytes();
}

model::LlamaConfig tiny_cfg() {
  model::LlamaConfig c;
  c.vocab_size = static_cast<int64_t>(tiny_vocab().tokens.size());
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 128;
  c.rope_theta = 100000.0;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.pad_token_id = 2;
  return c;
}

}  // namespace
