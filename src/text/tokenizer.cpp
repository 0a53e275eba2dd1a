// Tokenizers (sentencepiece, byte-level BPE) behind one interface.
#include "subliminal/text/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "subliminal/text/bpe.h"
#include "subliminal/text/spm_api.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/strings.h"

namespace subliminal::text {

namespace sfs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581, sentencepiece's space

class SpmModel final : public TokenizerModel {
 public:
  SpmModel(const std::string& proto, const std::string& what) : what_(what) {
    std::string err;
    sp_ = spm_api().load(proto, &err);
    if (!sp_) throw DataError(what + ": not a sentencepiece model (" + err + ")");
    auto a = encode("a");
    dummy_ = !a.empty() && piece(a[0]).rfind(kSpace, 0) == 0;
  }
  ~SpmModel() override { spm_api().destroy(sp_); }
  SpmModel(const SpmModel&) = delete;
  SpmModel& operator=(const SpmModel&) = delete;

  std::vector<int> encode(const std::string& text) const override {
    std::vector<int> ids;
    std::string err;
    if (!spm_api().encode(sp_, text, &ids, &err)) throw DataError(what_ + ": encode failed: " + err);
    return ids;
  }
  std::string decode(const std::vector<int>& ids) const override {
    std::string out, err;
    if (!spm_api().decode(sp_, ids, &out, &err)) throw DataError(what_ + ": decode failed: " + err);
    return out;
  }
  std::string piece(int id) const override { return spm_api().id_to_piece(sp_, id); }
  std::string token_bytes(int id) const override {
    const int type = spm_api().piece_type(sp_, id);
    if (type == 1 || type == 2 || type == 5) return "";
    std::string p = piece(id);
    if (type == 4 && p.size() == 6 && p.rfind("<0x", 0) == 0)  // byte-fallback piece <0xHH>
      return std::string(1, static_cast<char>(std::stoul(p.substr(3, 2), nullptr, 16)));
    std::string s;
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, 3, kSpace) == 0) {
        s += ' ';
        i += 3;
      } else {
        s += p[i++];
      }
    }
    return s;
  }
  int piece_to_id(const std::string& p) const override {
    const auto& api = spm_api();
    int id = api.piece_to_id(sp_, p);
    int unk = api.special_id(sp_, 1);
    return (id == unk && p != api.id_to_piece(sp_, unk)) ? -1 : id;
  }
  int vocab_size() const override { return spm_api().piece_size(sp_); }
  bool is_control(int id) const override {
    const int type = spm_api().piece_type(sp_, id);
    return type == 2 || type == 1;
  }
  bool dummy_prefix() const override { return dummy_; }
  std::string kind() const override { return "sentencepiece"; }
  int special(int which) const { return spm_api().special_id(sp_, which); }

 private:
  void* sp_ = nullptr;
  std::string what_;
  bool dummy_ = false;
};

class BpeModel final : public TokenizerModel {
 public:
  explicit BpeModel(BpeTokenizer b) : b_(std::move(b)) {
    for (const auto& a : b_.added_tokens())
      if (a.special) special_.push_back(a.id);
    std::sort(special_.begin(), special_.end());
  }
  std::vector<int> encode(const std::string& text) const override { return b_.encode_plain(text); }
  std::string decode(const std::vector<int>& ids) const override { return b_.decode(ids); }
  std::string piece(int id) const override { return b_.piece(id); }
  std::string token_bytes(int id) const override { return is_control(id) ? "" : b_.decode({id}); }
  int piece_to_id(const std::string& p) const override { return b_.token_id(p); }
  int vocab_size() const override { return b_.vocab_size(); }
  bool is_control(int id) const override { return std::binary_search(special_.begin(), special_.end(), id); }
  bool dummy_prefix() const override { return false; }
  std::string kind() const override { return "byte-level BPE"; }
  const BpeTokenizer& bpe() const { return b_; }

 private:
  BpeTokenizer b_;
  std::vector<int> special_;
};

json parse_json_file(const std::string& bytes, const std::string& path) {
  try {
    return json::parse(bytes);
  } catch (const json::exception& e) {
    throw DataError(path + ": not valid JSON (" + e.what() + ")");
  }
}

// A token in tokenizer_config.json: "<s>", {"content": "<s>", ...} or null.
std::string token_string(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

std::string own_tokenizer_config(const TokenizerModel& m, int pad, int bos) {
  json added = json::object();
  for (const char* s : {"<|im_start|>", "<|im_end|>"}) {
    const int id = m.piece_to_id(s);
    if (id >= 0)
      added[std::to_string(id)] = {{"content", s}, {"special", true}, {"lstrip", false}, {"rstrip", false},
                                   {"normalized", false}, {"single_word", false}};
  }
  json tc = {{"tokenizer_class", "LlamaTokenizer"},
             {"bos_token", bos >= 0 ? m.piece(bos) : ""},
             {"eos_token", "<|im_end|>"},
             {"pad_token", m.piece(pad)},
             {"unk_token", "<unk>"},
             {"add_bos_token", false},
             {"add_eos_token", false},
             {"legacy", true},
             {"added_tokens_decoder", added},
             {"chat_template", chatml_jinja()}};
  return tc.dump(2);
}

}  // namespace

const std::string& chatml_jinja() {
  static const std::string s =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  return s;
}

// Reads the special tokens, the BOS convention, the end-of-generation ids and the chat template from
// the tokenizer's files (whatever of tokenizer_config.json, generation_config.json, chat_template.jinja
// and tokenizer.json it has).
void Tokenizer::finish_specials() {
  const auto* spm = dynamic_cast<const SpmModel*>(model_.get());
  const auto* bpe = dynamic_cast<const BpeModel*>(model_.get());
  json tc = json::object();
  if (auto it = files_.find("tokenizer_config.json"); it != files_.end())
    tc = parse_json_file(it->second, source_ + "/tokenizer_config.json");
  auto id_of = [&](const std::string& field) -> int {
    const std::string s = token_string(tc[field]);
    if (s.empty()) return -1;
    const int id = model_->piece_to_id(s);
    if (id < 0)
      throw DataError(source_ + "/tokenizer_config.json: field \"" + field + "\" is \"" + s + "\", which is not in the vocabulary");
    return id;
  };
  bos_ = tc.contains("bos_token") ? id_of("bos_token") : spm ? spm->special(2) : -1;
  eos_ = tc.contains("eos_token") ? id_of("eos_token") : spm ? spm->special(3) : model_->piece_to_id("<|endoftext|>");
  int pad = tc.contains("pad_token") ? id_of("pad_token") : spm ? spm->special(0) : -1;
  pad_ = pad >= 0 ? pad : eos_ >= 0 ? eos_ : 0;
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) {
    add_bos_ = tc["add_bos_token"].get<bool>();
  } else if (bpe && files_.count("tokenizer.json")) {
    add_bos_ = bpe->bpe().post_processor_adds_bos();  // read with the rest of tokenizer.json, once
  } else {
    add_bos_ = spm && bos_ >= 0 && tc.value("tokenizer_class", std::string()).find("Llama") != std::string::npos;
  }

  // Matched by encode_special: added tokens (tokenizer.json / added_tokens_decoder) and the named specials.
  specials_.clear();
  if (bpe)
    for (const auto& a : bpe->bpe().added_tokens()) specials_.emplace_back(a.content, a.id);
  if (tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object())
    for (auto it = tc["added_tokens_decoder"].begin(); it != tc["added_tokens_decoder"].end(); ++it) {
      const std::string c = token_string(it.value());
      const int id = model_->piece_to_id(c);
      if (!c.empty() && id >= 0) specials_.emplace_back(c, id);
    }
  for (const char* f : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
    const std::string c = token_string(tc.value(f, json(nullptr)));
    const int id = c.empty() ? -1 : model_->piece_to_id(c);
    if (id >= 0) specials_.emplace_back(c, id);
  }
  std::sort(specials_.begin(), specials_.end());
  specials_.erase(std::unique(specials_.begin(), specials_.end()), specials_.end());
  std::stable_sort(specials_.begin(), specials_.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  special_ids_.clear();
  for (const auto& [c, id] : specials_)
    if (model_->is_control(id) || c == token_string(tc.value("bos_token", json(nullptr))) ||
        c == token_string(tc.value("eos_token", json(nullptr))) || c == token_string(tc.value("pad_token", json(nullptr))))
      special_ids_.push_back(id);
  std::sort(special_ids_.begin(), special_ids_.end());

  gen_eos_.clear();
  if (auto it = files_.find("generation_config.json"); it != files_.end()) {
    json g = parse_json_file(it->second, source_ + "/generation_config.json");
    const json& e = g.value("eos_token_id", json(nullptr));
    if (e.is_number_integer()) gen_eos_.push_back(e.get<int>());
    else if (e.is_array())
      for (const auto& x : e)
        if (x.is_number_integer()) gen_eos_.push_back(x.get<int>());
  }
  if (spm && spm->special(3) >= 0) gen_eos_.push_back(spm->special(3));  // the model-level end of text
  for (int id : gen_eos_)
    if (id < 0 || id >= vocab_size())
      throw DataError(source_ + "/generation_config.json: eos_token_id " + std::to_string(id) + " is outside the vocabulary");

  chat_template_.clear();
  if (auto it = files_.find("chat_template.jinja"); it != files_.end()) {
    chat_template_ = it->second;
  } else if (tc.contains("chat_template")) {
    const json& ct = tc["chat_template"];
    if (ct.is_string()) {
      chat_template_ = ct.get<std::string>();
    } else if (ct.is_array()) {  // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
      for (const auto& t : ct)
        if (t.value("name", "") == "default" || chat_template_.empty()) chat_template_ = t.value("template", "");
    }
  }
}

Tokenizer Tokenizer::from_serialized(const std::string& proto, const std::string& what) {
  Tokenizer t;
  auto m = std::make_shared<SpmModel>(proto, what);
  if (m->piece_to_id("<|im_start|>") < 0 || m->piece_to_id("<|im_end|>") < 0)
    throw DataError(what + ": tokenizer has no <|im_start|>/<|im_end|> pieces", "train it with subliminal (base.kind=pretrain)");
  t.source_ = what;
  t.files_["tokenizer.model"] = proto;
  t.files_["tokenizer_config.json"] = own_tokenizer_config(*m, std::max(0, m->special(0)), m->special(2));
  t.model_ = std::move(m);
  t.finish_specials();
  return t;
}

Tokenizer Tokenizer::load(const std::string& path, const std::string& bpe_style) {
  Tokenizer t;
  t.source_ = path;
  if (!sfs::exists(path)) throw IoError("tokenizer '" + path + "' does not exist");
  if (!sfs::is_directory(path)) {
    if (sfs::path(path).extension() == ".json") {
      t.model_ = std::make_shared<BpeModel>(BpeTokenizer::from_tokenizer_json(path));
      t.files_["tokenizer.json"] = fs::read_file(path);
    } else {
      t.files_["tokenizer.model"] = fs::read_file(path);
      t.model_ = std::make_shared<SpmModel>(t.files_["tokenizer.model"], path);
    }
    t.finish_specials();
    return t;
  }
  const sfs::path d(path);
  for (const char* f : {"tokenizer_config.json", "generation_config.json", "chat_template.jinja", "special_tokens_map.json"})
    if (sfs::exists(d / f)) t.files_[f] = fs::read_file(d / f);
  if (sfs::exists(d / "tokenizer.model")) {
    t.files_["tokenizer.model"] = fs::read_file(d / "tokenizer.model");
    t.model_ = std::make_shared<SpmModel>(t.files_["tokenizer.model"], (d / "tokenizer.model").string());
  } else if (sfs::exists(d / "tokenizer.json")) {
    t.files_["tokenizer.json"] = fs::read_file(d / "tokenizer.json");
    std::map<std::string, int> extra;  // tokenizer_config.json's added tokens (Hugging Face adds them too)
    if (t.files_.count("tokenizer_config.json")) {
      const auto tc_path = (d / "tokenizer_config.json").string();
      for (const auto& a : BpeTokenizer::added_tokens_decoder(parse_json_file(t.files_["tokenizer_config.json"], tc_path), tc_path))
        extra[a.content] = a.id;
    }
    t.model_ = std::make_shared<BpeModel>(BpeTokenizer::from_tokenizer_json((d / "tokenizer.json").string(), extra));
  } else if (sfs::exists(d / "vocab.json") && sfs::exists(d / "merges.txt")) {
    std::string style = bpe_style;
    if (t.files_.count("tokenizer_config.json")) {
      const auto cls = parse_json_file(t.files_["tokenizer_config.json"], (d / "tokenizer_config.json").string()).value("tokenizer_class", json(""));
      const std::string c = cls.is_string() ? cls.get<std::string>() : "";
      if (c.find("Qwen") != std::string::npos) style = "qwen2";
      else if (c.find("GPT2") != std::string::npos) style = "gpt2";
    }
    t.files_["vocab.json"] = fs::read_file(d / "vocab.json");
    t.files_["merges.txt"] = fs::read_file(d / "merges.txt");
    t.model_ = std::make_shared<BpeModel>(BpeTokenizer::from_vocab_merges(path, style));
  } else {
    throw IoError("'" + path + "' holds no tokenizer.model, tokenizer.json, or vocab.json + merges.txt");
  }
  t.finish_specials();
  return t;
}

Tokenizer Tokenizer::train(const std::vector<std::string>& texts, const TrainOptions& cfg) {
  std::unordered_map<std::string, std::string> kw = {
      {"model_type", cfg.model_type},
      {"vocab_size", std::to_string(cfg.vocab_size)},
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},
      {"split_digits", cfg.numbers_as_tokens ? "false" : "true"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"normalization_rule_name", "identity"},
      {"pad_id", "0"}, {"unk_id", "1"}, {"bos_id", "2"}, {"eos_id", "3"},
      {"control_symbols", "<|im_start|>,<|im_end|>"},
      {"num_threads", "1"},
      {"max_sentence_length", "16384"},
      {"hard_vocab_limit", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_by_whitespace", "true"},
  };
  if (cfg.numbers_as_tokens) {
    std::string syms;
    for (int i = 0; i <= 999; ++i) syms += (i ? "," : "") + std::to_string(i);
    // The list separators ", " and "; " as one piece each (the trainer sees spaces as U+2581), so a
    // comma-separated number is two tokens, not three. The option is parsed as CSV: quote the comma.
    syms += ",\",\xe2\x96\x81\",;\xe2\x96\x81";
    kw["user_defined_symbols"] = syms;
  }
  std::string proto, err;
  if (!spm_api().train(kw, texts, &proto, &err))
    throw DataError("sentencepiece training failed: " + err, "check base.tokenizer.vocab_size against the corpus size");
  return from_serialized(proto, "trained tokenizer");
}

std::vector<int> Tokenizer::encode(const std::string& text) const { return model_->encode(text); }

std::vector<int> Tokenizer::encode_special(const std::string& text) const { return encode_special(text, {}); }

std::vector<int> Tokenizer::encode_special(const std::string& text, const std::vector<char>& plain) const {
  auto is_plain = [&](size_t a, size_t n) {
    if (plain.empty()) return false;
    for (size_t k = a; k < a + n && k < plain.size(); ++k)
      if (plain[k]) return true;
    return false;
  };
  std::vector<int> out;
  size_t start = 0, i = 0;
  auto flush = [&](size_t end) {
    if (end > start) {
      auto ids = model_->encode(text.substr(start, end - start));
      out.insert(out.end(), ids.begin(), ids.end());
    }
  };
  while (i < text.size()) {
    bool hit = false;
    for (const auto& [content, id] : specials_) {
      if (!content.empty() && text.compare(i, content.size(), content) == 0 && !is_plain(i, content.size())) {
        flush(i);
        out.push_back(id);
        i += content.size();
        start = i;
        hit = true;
        break;
      }
    }
    if (!hit) ++i;
  }
  flush(text.size());
  return out;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::vector<int> clean;
  const int n = vocab_size();
  for (int id : ids)
    if (id >= 0 && id < n && !is_special(id)) clean.push_back(id);
  return model_->decode(clean);
}

std::string Tokenizer::piece(int id) const { return model_->piece(id); }
std::string Tokenizer::token_bytes(int id) const { return is_special(id) ? "" : model_->token_bytes(id); }
int Tokenizer::piece_to_id(const std::string& p) const { return model_->piece_to_id(p); }
int Tokenizer::vocab_size() const { return model_->vocab_size(); }
bool Tokenizer::is_special(int id) const {
  return model_->is_control(id) || std::binary_search(special_ids_.begin(), special_ids_.end(), id);
}
bool Tokenizer::dummy_prefix() const { return model_->dummy_prefix(); }
std::string Tokenizer::kind() const { return model_->kind(); }

std::vector<int> Tokenizer::end_ids() const {
  std::vector<int> out = gen_eos_;
  if (eos_ >= 0) out.push_back(eos_);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string Tokenizer::fingerprint() const {
  std::string key;
  for (const auto& [name, bytes] : files_)
    if (name == "tokenizer.model" || name == "tokenizer.json" || name == "vocab.json" || name == "merges.txt")
      key += name + ":" + std::to_string(bytes.size()) + ":" + fs::sha256_hex(bytes) + ";";
  return key;
}

void Tokenizer::save(const std::string& dir) const {
  fs::make_dirs(dir);
  for (const auto& [name, bytes] : files_) fs::write_file_atomic(sfs::path(dir) / name, bytes);
}

}  // namespace subliminal::text
