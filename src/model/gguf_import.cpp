// GGUF -> Hugging Face model directory: llama.cpp's tensor names and q/k permutation back to HF
// (convert_hf_to_gguf.py, LlamaModel.permute), the tokenizer rebuilt from tokenizer.ggml.*.
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>

#include "subliminal/model/gguf.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/text/bpe.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"

namespace subliminal::model {

using json = nlohmann::json;
namespace sfs = std::filesystem;

namespace {

struct Meta {
  const GgufFile& f;
  std::string arch;
  const json& get(const std::string& key) const {
    if (!f.metadata().contains(key)) throw DataError(f.path() + ": metadata key '" + key + "' is missing");
    return f.metadata()[key];
  }
  bool has(const std::string& key) const { return f.metadata().contains(key); }
  int64_t integer(const std::string& key) const {
    const json& v = get(key);
    if (!v.is_number_integer()) throw DataError(f.path() + ": metadata key '" + key + "' is " + v.dump() + " (expected an integer)");
    return v.get<int64_t>();
  }
  int64_t integer(const std::string& key, int64_t dflt) const { return has(key) ? integer(key) : dflt; }
  double number(const std::string& key, double dflt) const {
    if (!has(key)) return dflt;
    const json& v = get(key);
    if (!v.is_number()) throw DataError(f.path() + ": metadata key '" + key + "' is " + v.dump() + " (expected a number)");
    return v.get<double>();
  }
  std::string string(const std::string& key, const std::string& dflt) const {
    if (!has(key)) return dflt;
    const json& v = get(key);
    if (!v.is_string()) throw DataError(f.path() + ": metadata key '" + key + "' is not a string");
    return v.get<std::string>();
  }
  const json& array(const std::string& key) const {
    const json& v = get(key);
    if (!v.is_array()) throw DataError(f.path() + ": metadata key '" + key + "' is not an array");
    return v;
  }
};

// llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) -> the HF tokenizer.json pieces they stand for
// (llama-vocab.cpp's regex lists for each LLAMA_VOCAB_PRE_TYPE).
json pre_tokenizer_for(const std::string& pre, const std::string& path, bool& nfc) {
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  const json byte_level_only = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  auto split = [](const char* re) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  nfc = false;
  if (pre == "default" || pre == "gpt2" || pre.empty()) return byte_level;
  if (pre == "smollm")  // "\p{N}" then GPT-2's regex (SmolLM, SmolLM2)
    return {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level}}};
  if (pre == "llama-bpe" || pre == "llama3")
    return {{"type", "Sequence"}, {"pretokenizers", {split(text::BpeTokenizer::llama3_pattern()), byte_level_only}}};
  if (pre == "qwen2") {
    nfc = true;
    return {{"type", "Sequence"}, {"pretokenizers", {split(text::BpeTokenizer::qwen2_pattern()), byte_level_only}}};
  }
  throw DataError(path + ": metadata key 'tokenizer.ggml.pre' is \"" + pre +
                  "\", a pre-tokenizer this importer does not know; supported: default, gpt2, smollm, llama-bpe, qwen2");
}

// tokenizer.json + tokenizer_config.json + generation_config.json from tokenizer.ggml.*
void write_tokenizer(const Meta& m, int64_t context, const sfs::path& dir, json& record) {
  const std::string& path = m.f.path();
  const std::string model = m.string("tokenizer.ggml.model", "");
  if (model != "gpt2")
    throw DataError(path + ": metadata key 'tokenizer.ggml.model' is \"" + model +
                        "\"; this importer rebuilds byte-level BPE tokenizers (\"gpt2\": GPT-2, SmolLM, Llama 3, Qwen2) only",
                    model == "llama" ? "a sentencepiece model: import the original Hugging Face directory instead (base.kind checkpoint)" : "");
  const json& tokens = m.array("tokenizer.ggml.tokens");
  const json& merges = m.array("tokenizer.ggml.merges");
  const json types = m.has("tokenizer.ggml.token_type") ? m.array("tokenizer.ggml.token_type") : json::array();
  if (!types.empty() && types.size() != tokens.size())
    throw DataError(path + ": metadata key 'tokenizer.ggml.token_type' has " + std::to_string(types.size()) + " entries for " +
                    std::to_string(tokens.size()) + " tokens");
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!tokens[i].is_string())
      throw DataError(path + ": metadata key 'tokenizer.ggml.tokens' entry " + std::to_string(i) + " is not a UTF-8 string");
    const int type = types.empty() ? 1 : types[i].get<int>();
    std::string t = tokens[i].get<std::string>();
    // 1 normal, 2 unknown, 3 control, 4 user-defined (stored as raw text), 5 unused, 6 byte
    if (type == 3 || type == 4) added.push_back({{"id", i}, {"content", t}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                                                 {"normalized", type == 4}, {"special", type == 3}});
    if (type == 4) t = text::BpeTokenizer::byte_level(t);
    if (vocab.contains(t))
      throw DataError(path + ": metadata key 'tokenizer.ggml.tokens' has \"" + t + "\" twice (ids " + std::to_string(vocab[t].get<int>()) +
                      " and " + std::to_string(i) + ")");
    vocab[t] = i;
  }
  json merge_list = json::array();
  for (size_t i = 0; i < merges.size(); ++i) {
    if (!merges[i].is_string() || merges[i].get<std::string>().find(' ') == std::string::npos)
      throw DataError(path + ": metadata key 'tokenizer.ggml.merges' entry " + std::to_string(i) + " is not \"a b\"");
    merge_list.push_back(merges[i]);
  }
  bool nfc = false;
  const std::string pre = m.string("tokenizer.ggml.pre", "default");
  json pre_tok = pre_tokenizer_for(pre, path, nfc);
  const bool add_bos = m.has("tokenizer.ggml.add_bos_token") && m.get("tokenizer.ggml.add_bos_token").get<bool>();
  const int64_t n = static_cast<int64_t>(tokens.size());
  auto token_at = [&](const char* key) -> json {
    if (!m.has(key)) return nullptr;
    const int64_t id = m.integer(key);
    if (id < 0 || id >= n) throw DataError(path + ": metadata key '" + key + "' is " + std::to_string(id) + ", not a token id (0.." + std::to_string(n - 1) + ")");
    return tokens[static_cast<size_t>(id)];
  };
  const json bos = token_at("tokenizer.ggml.bos_token_id"), eos = token_at("tokenizer.ggml.eos_token_id"),
             unk = token_at("tokenizer.ggml.unknown_token_id"), pad = token_at("tokenizer.ggml.padding_token_id");
  json post = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  if (add_bos) {
    if (bos.is_null()) throw DataError(path + ": 'tokenizer.ggml.add_bos_token' is true but 'tokenizer.ggml.bos_token_id' is missing");
    const std::string b = bos.get<std::string>();
    const int64_t bid = m.integer("tokenizer.ggml.bos_token_id");
    post = {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", b}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair", {{{"SpecialToken", {{"id", b}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                      {{"SpecialToken", {{"id", b}, {"type_id", 1}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{b, {{"id", b}, {"ids", {bid}}, {"tokens", {b}}}}}}};
  }
  const json tj = {{"version", "1.0"},
                   {"truncation", nullptr},
                   {"padding", nullptr},
                   {"added_tokens", added},
                   {"normalizer", nfc ? json{{"type", "NFC"}} : json(nullptr)},
                   {"pre_tokenizer", pre_tok},
                   {"post_processor", post},
                   {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
                   {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                              {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                              {"vocab", vocab}, {"merges", merge_list}}}};
  fs::write_file_atomic(dir / "tokenizer.json", tj.dump(1));
  json decoder = json::object();
  for (const auto& a : added)
    decoder[std::to_string(a["id"].get<int64_t>())] = {{"content", a["content"]}, {"lstrip", false}, {"normalized", a["normalized"]},
                                                       {"rstrip", false}, {"single_word", false}, {"special", a["special"]}};
  json tc = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"add_bos_token", add_bos}, {"add_eos_token", false},
             {"clean_up_tokenization_spaces", false}, {"model_max_length", context}, {"added_tokens_decoder", decoder}};
  for (const auto& [k, v] : {std::pair<const char*, const json*>{"bos_token", &bos}, {"eos_token", &eos}, {"unk_token", &unk}, {"pad_token", &pad}})
    if (!v->is_null()) tc[k] = *v;
  if (m.has("tokenizer.chat_template")) tc["chat_template"] = m.string("tokenizer.chat_template", "");
  fs::write_file_atomic(dir / "tokenizer_config.json", tc.dump(2));
  json gen = json::object();
  if (!bos.is_null()) gen["bos_token_id"] = m.integer("tokenizer.ggml.bos_token_id");
  if (!eos.is_null()) gen["eos_token_id"] = m.integer("tokenizer.ggml.eos_token_id");
  if (!pad.is_null()) gen["pad_token_id"] = m.integer("tokenizer.ggml.padding_token_id");
  fs::write_file_atomic(dir / "generation_config.json", gen.dump(2));
  record["tokenizer"] = {{"model", model}, {"pre", pre}, {"tokens", tokens.size()}, {"merges", merges.size()}, {"added_tokens", added.size()},
                         {"add_bos", add_bos}, {"chat_template", m.has("tokenizer.chat_template")}};
}

// Undoes convert_hf_to_gguf.py's LlamaModel.permute on q/k rows:
// w.reshape(H, 2, D/2, in).swapaxes(1, 2) was stored; reshape(H, D/2, 2, in).swapaxes(1, 2) is HF's.
torch::Tensor unpermute(const torch::Tensor& w, int64_t heads) {
  const int64_t out = w.size(0);
  auto rest = w.sizes().slice(1).vec();
  std::vector<int64_t> shape = {heads, out / heads / 2, 2};
  shape.insert(shape.end(), rest.begin(), rest.end());
  return w.reshape(shape).transpose(1, 2).reshape(w.sizes()).contiguous();
}

}  // namespace

GgufImportResult import_gguf(const std::string& gguf_path, const std::string& out_dir, bool overwrite) {
  const auto t0 = std::chrono::steady_clock::now();
  const sfs::path out(out_dir);
  if (sfs::exists(out) && !overwrite)
    throw ConfigError(out_dir + " already exists", "pass --force to replace it, or choose another --out");
  GgufFile f = GgufFile::open(gguf_path);
  Meta m{f, ""};
  m.arch = m.string("general.architecture", "");
  if (m.arch != "llama" && m.arch != "qwen2" && m.arch != "qwen3")
    throw DataError(gguf_path + ": metadata key 'general.architecture' is \"" + m.arch + "\"; supported: llama (Llama, Mistral, SmolLM), qwen2, qwen3");
  const std::string a = m.arch;
  LlamaConfig c;
  c.model_type = a;
  c.hidden_size = m.integer(a + ".embedding_length");
  c.intermediate_size = m.integer(a + ".feed_forward_length");
  c.num_hidden_layers = m.integer(a + ".block_count");
  c.num_attention_heads = m.integer(a + ".attention.head_count");
  c.num_key_value_heads = m.integer(a + ".attention.head_count_kv", c.num_attention_heads);
  c.max_position_embeddings = m.integer(a + ".context_length");
  c.rms_norm_eps = m.number(a + ".attention.layer_norm_rms_epsilon", 1e-5);
  c.rope_theta = m.number(a + ".rope.freq_base", 10000.0);
  for (auto [k, v] : {std::pair<const char*, int64_t>{"embedding_length", c.hidden_size}, {"feed_forward_length", c.intermediate_size},
                      {"block_count", c.num_hidden_layers}, {"attention.head_count", c.num_attention_heads},
                      {"attention.head_count_kv", c.num_key_value_heads}, {"context_length", c.max_position_embeddings}})
    if (v <= 0 || v > (int64_t(1) << 24)) throw DataError(gguf_path + ": metadata key '" + a + "." + k + "' is " + std::to_string(v) + " (expected 1 .. 2^24)");
  if (c.hidden_size % c.num_attention_heads != 0 || c.num_attention_heads % c.num_key_value_heads != 0)
    throw DataError(gguf_path + ": " + std::to_string(c.num_attention_heads) + " heads (" + std::to_string(c.num_key_value_heads) +
                    " key/value) do not divide the embedding length " + std::to_string(c.hidden_size));
  const int64_t head_dim = m.integer(a + ".attention.key_length", m.integer(a + ".rope.dimension_count", c.hidden_size / c.num_attention_heads));
  if (head_dim != c.hidden_size / c.num_attention_heads || a == "qwen3") c.head_dim_override = head_dim;
  c.qk_norm = a == "qwen3";  // blk.N.attn_q_norm / attn_k_norm: one RMSNorm weight over head_dim each
  if (m.has(a + ".rope.scaling.type")) {
    const std::string st = m.string(a + ".rope.scaling.type", "none");
    if (st == "linear") {
      c.rope_type = "linear";
      c.rope_factor = m.number(a + ".rope.scaling.factor", 1.0);
    } else if (st != "none") {
      throw DataError(gguf_path + ": metadata key '" + a + ".rope.scaling.type' is \"" + st + "\"; supported: none, linear");
    }
  }
  if (f.has_tensor("rope_freqs.weight"))
    throw DataError(gguf_path + ": tensor 'rope_freqs.weight' (Llama 3.1 frequency scaling baked into the file) is not supported by this importer");
  const json& toks = m.array("tokenizer.ggml.tokens");
  c.vocab_size = static_cast<int64_t>(toks.size());
  c.bos_token_id = m.integer("tokenizer.ggml.bos_token_id", -1);
  c.eos_token_id = m.integer("tokenizer.ggml.eos_token_id", -1);
  c.pad_token_id = m.integer("tokenizer.ggml.padding_token_id", c.eos_token_id);
  c.tie_word_embeddings = !f.has_tensor("output.weight");
  c.qkv_bias = f.has_tensor("blk.0.attn_q.bias");
  if (a == "qwen2" && !c.qkv_bias) throw DataError(gguf_path + ": a qwen2 model without q/k/v biases (no tensor 'blk.0.attn_q.bias')");

  // llama.cpp names -> HF names (and the head count to unpermute by; 0: as stored)
  std::map<std::string, std::pair<std::string, int64_t>> names = {{"token_embd.weight", {"model.embed_tokens.weight", 0}},
                                                                  {"output_norm.weight", {"model.norm.weight", 0}},
                                                                  {"output.weight", {"lm_head.weight", 0}}};
  const bool permuted = a == "llama";  // convert_hf_to_gguf permutes q/k for llama-architecture files only
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".", h = "model.layers." + std::to_string(i) + ".";
    names[b + "attn_norm.weight"] = {h + "input_layernorm.weight", 0};
    names[b + "ffn_norm.weight"] = {h + "post_attention_layernorm.weight", 0};
    names[b + "attn_q.weight"] = {h + "self_attn.q_proj.weight", permuted ? c.num_attention_heads : 0};
    names[b + "attn_k.weight"] = {h + "self_attn.k_proj.weight", permuted ? c.num_key_value_heads : 0};
    names[b + "attn_v.weight"] = {h + "self_attn.v_proj.weight", 0};
    names[b + "attn_output.weight"] = {h + "self_attn.o_proj.weight", 0};
    names[b + "attn_q.bias"] = {h + "self_attn.q_proj.bias", 0};
    names[b + "attn_k.bias"] = {h + "self_attn.k_proj.bias", 0};
    names[b + "attn_v.bias"] = {h + "self_attn.v_proj.bias", 0};
    if (c.qk_norm) {
      names[b + "attn_q_norm.weight"] = {h + "self_attn.q_norm.weight", 0};
      names[b + "attn_k_norm.weight"] = {h + "self_attn.k_norm.weight", 0};
    }
    names[b + "ffn_gate.weight"] = {h + "mlp.gate_proj.weight", 0};
    names[b + "ffn_up.weight"] = {h + "mlp.up_proj.weight", 0};
    names[b + "ffn_down.weight"] = {h + "mlp.down_proj.weight", 0};
  }
  NamedTensors weights;
  json types = json::object(), per_tensor = json::object();
  int64_t params = 0;
  for (const auto& t : f.tensors()) {
    auto it = names.find(t.name);
    if (it == names.end())
      throw DataError(gguf_path + ": tensor '" + t.name + "' has no Hugging Face counterpart in a " + a + " model (with " +
                      std::to_string(c.num_hidden_layers) + " blocks)");
    if (!ggml_type_supported(t.type))
      throw DataError(gguf_path + ": tensor '" + t.name + "' has type " + ggml_type_name(t.type) +
                      ", which cannot be dequantised; supported: F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K");
    std::vector<float> v = f.dequantize(t);
    torch::Tensor w = torch::from_blob(v.data(), t.torch_shape(), torch::kFloat).clone();
    if (it->second.second > 0) {
      if (w.dim() != 2 || w.size(0) % (2 * it->second.second) != 0)
        throw DataError(gguf_path + ": tensor '" + t.name + "' of shape " + c10::str(w.sizes()) + " cannot be split into " +
                        std::to_string(it->second.second) + " heads");
      w = unpermute(w, it->second.second);
    }
    types[ggml_type_name(t.type)] = types.value(ggml_type_name(t.type), 0) + 1;
    per_tensor[t.name] = ggml_type_name(t.type);
    params += w.numel();
    weights.push_back({it->second.first, w});
  }
  if (!f.has_tensor("token_embd.weight")) throw DataError(gguf_path + ": no tensor 'token_embd.weight'");
  if (f.tensor("token_embd.weight").torch_shape() != std::vector<int64_t>{c.vocab_size, c.hidden_size})
    throw DataError(gguf_path + ": tensor 'token_embd.weight' has shape " + c10::str(f.tensor("token_embd.weight").torch_shape()) +
                    " for " + std::to_string(c.vocab_size) + " tokens of width " + std::to_string(c.hidden_size));

  // Written beside the destination, checked by loading it, then renamed into place.
  const sfs::path tmp = out.string() + ".tmp." + std::to_string(::getpid());
  sfs::remove_all(tmp);
  fs::make_dirs(tmp);
  std::string r_name;
  try {
    json record = {{"source", sfs::absolute(gguf_path).string()}, {"source_sha256", fs::sha256_file(gguf_path)}, {"gguf_version", f.version()},
                 {"architecture", a}, {"name", m.string("general.name", "")}, {"file_type", m.integer("general.file_type", -1)},
                 {"tensor_types", types}, {"tensors", per_tensor}, {"parameters", params}};
  json cfg = c.to_hf();
  cfg["torch_dtype"] = "float32";
  fs::write_file_atomic(tmp / "config.json", cfg.dump(2));
  write_model_weights(tmp.string(), weights, {{"format", "pt"}, {"source", "gguf"}});
  weights.clear();
  write_tokenizer(m, c.max_position_embeddings, tmp, record);
  record["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fs::write_file_atomic(tmp / "gguf_import.json", record.dump(2));
  {
    auto loaded = load_model_dir(tmp.string());  // the directory must load as a model before it appears
    (void)loaded;
  }
    r_name = record["name"];
  } catch (...) {
    std::error_code ec;
    sfs::remove_all(tmp, ec);  // nothing half-written is left behind
    throw;
  }
  if (sfs::exists(out)) sfs::remove_all(out);
  sfs::rename(tmp, out);
  fs::fsync_dir(out.parent_path().empty() ? sfs::path(".") : out.parent_path());
  GgufImportResult r;
  r.arch = a;
  r.name = r_name;
  r.out_dir = out.string();
  r.parameters = params;
  r.tensor_types = types;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace subliminal::model
