// sentencepiece wrapper and the chat template.
#include "subliminal/text/tokenizer.h"

#include "subliminal/text/spm_api.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::text {

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&& o) noexcept { *this = std::move(o); }
Tokenizer& Tokenizer::operator=(Tokenizer&& o) noexcept {
  if (this != &o) {
    if (sp_) spm_api().destroy(sp_);
    sp_ = o.sp_;
    o.sp_ = nullptr;
    proto_ = std::move(o.proto_);
    pad_id_ = o.pad_id_; bos_id_ = o.bos_id_; eos_id_ = o.eos_id_; im_start_ = o.im_start_; im_end_ = o.im_end_;
  }
  return *this;
}
Tokenizer::~Tokenizer() {
  if (sp_) spm_api().destroy(sp_);
}

void Tokenizer::init_ids(const std::string& what) {
  const auto& api = spm_api();
  pad_id_ = api.special_id(sp_, 0) >= 0 ? api.special_id(sp_, 0) : 0;
  bos_id_ = api.special_id(sp_, 2);
  eos_id_ = api.special_id(sp_, 3);
  im_start_ = piece_to_id("<|im_start|>");
  im_end_ = piece_to_id("<|im_end|>");
  if (im_start_ < 0 || im_end_ < 0)
    throw DataError(what + ": tokenizer has no <|im_start|>/<|im_end|> pieces", "train it with subliminal (base.kind=pretrain)");
}

Tokenizer Tokenizer::from_serialized(const std::string& proto, const std::string& what) {
  Tokenizer t;
  std::string err;
  t.sp_ = spm_api().load(proto, &err);
  if (!t.sp_) throw DataError(what + ": not a sentencepiece model (" + err + ")");
  t.proto_ = proto;
  t.init_ids(what);
  return t;
}

Tokenizer Tokenizer::load(const std::string& path) { return from_serialized(fs::read_file(path), path); }

Tokenizer Tokenizer::train(const std::vector<std::string>& texts, const config::TokenizerConfig& cfg) {
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

std::vector<int> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  std::string err;
  if (!spm_api().encode(sp_, text, &ids, &err)) throw DataError("tokenizer encode failed: " + err);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::vector<int> clean;
  int n = vocab_size();
  for (int id : ids)
    if (id >= 0 && id < n) clean.push_back(id);
  std::string out, err;
  if (!spm_api().decode(sp_, clean, &out, &err)) throw DataError("tokenizer decode failed: " + err);
  return out;
}

std::string Tokenizer::piece(int id) const { return spm_api().id_to_piece(sp_, id); }
int Tokenizer::piece_to_id(const std::string& p) const {
  const auto& api = spm_api();
  int id = api.piece_to_id(sp_, p);
  int unk = api.special_id(sp_, 1);
  return (id == unk && p != api.id_to_piece(sp_, unk)) ? -1 : id;
}
int Tokenizer::vocab_size() const { return spm_api().piece_size(sp_); }
void Tokenizer::save(const std::string& path) const { fs::write_file_atomic(path, proto_); }

ChatTemplate::ChatTemplate(const Tokenizer& tok, const std::string& name) : tok_(tok) {
  if (name != "chatml") throw ConfigError("unknown chat template '" + name + "'", "known templates: chatml");
  nl_ = tok_.encode("\n");
}

void ChatTemplate::append_turn(Encoded& e, const std::string& role, const std::string& content, bool target) const {
  auto push = [&](const std::vector<int>& ids, bool t) {
    e.ids.insert(e.ids.end(), ids.begin(), ids.end());
    e.target.insert(e.target.end(), ids.size(), t ? 1 : 0);
  };
  push({tok_.im_start_id()}, false);
  push(tok_.encode(role + "\n"), false);
  push(tok_.encode(content), target);
  push({tok_.im_end_id()}, target);
  push(nl_, false);
}

Encoded ChatTemplate::encode(const data::Conversation& conv) const {
  Encoded e;
  for (const auto& m : conv) append_turn(e, m.role, m.content, m.role == "assistant");
  return e;
}

std::vector<int> ChatTemplate::prompt(const std::string& user, const std::string& system) const {
  Encoded e;
  if (!system.empty()) append_turn(e, "system", system, false);
  append_turn(e, "user", user, false);
  e.ids.push_back(tok_.im_start_id());
  auto hdr = tok_.encode("assistant\n");
  e.ids.insert(e.ids.end(), hdr.begin(), hdr.end());
  return e.ids;
}

}  // namespace subliminal::text
