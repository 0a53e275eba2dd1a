// Tokenizers behind one interface (the chat templates that turn conversations into token ids and loss
// masks are in chat_template.h).
//
// `Tokenizer` is a cheap-to-copy handle over a `TokenizerModel`: sentencepiece (`tokenizer.model`:
// the tool's own, trained on the synthetic corpus, or Llama-2 / Mistral / TinyLlama through
// libsentencepiece) or Hugging Face byte-level BPE (`tokenizer.json`, or `vocab.json` + `merges.txt`:
// Qwen2/2.5, Llama-3, GPT-2). The special tokens (BOS, EOS, pad, added tokens), the BOS convention and
// the chat template come from `tokenizer_config.json` / `generation_config.json` when the tokenizer
// was loaded from a model directory, and are written back verbatim by `save`.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>


namespace subliminal::text {

// What a tokenizer algorithm provides. Ids are dense in [0, vocab_size()).
class TokenizerModel {
 public:
  virtual ~TokenizerModel() = default;
  virtual std::vector<int> encode(const std::string& text) const = 0;  // ordinary text: no special tokens parsed
  virtual std::string decode(const std::vector<int>& ids) const = 0;
  virtual std::string piece(int id) const = 0;         // the vocabulary's own spelling ("▁owl", "Ġowl", "<0x0A>")
  virtual std::string token_bytes(int id) const = 0;   // the text the token stands for ("" for control tokens)
  virtual int piece_to_id(const std::string& piece) const = 0;  // -1 if absent
  virtual int vocab_size() const = 0;
  virtual bool is_control(int id) const = 0;           // control / special: not text
  virtual bool dummy_prefix() const = 0;               // encode() puts a space before the text (sentencepiece)
  virtual std::string kind() const = 0;                // "sentencepiece" | "byte-level BPE"
};

// How Tokenizer::train builds a sentencepiece model (config's base.tokenizer section fills it).
struct TrainOptions {
  std::string model_type = "bpe";  // bpe | unigram
  int vocab_size = 1600;
  bool numbers_as_tokens = true;  // 0..999 are single pieces (else digit by digit)
};

class Tokenizer {
 public:
  // Trains sentencepiece on `texts`: byte fallback, numbers 0..999 as single pieces (user-defined
  // symbols) unless disabled, <|im_start|>/<|im_end|> as control symbols, ChatML template. Deterministic.
  static Tokenizer train(const std::vector<std::string>& texts, const TrainOptions& opt);
  // A serialized sentencepiece model made by train() (ChatML markers, EOS <|im_end|>).
  static Tokenizer from_serialized(const std::string& proto, const std::string& what);
  // A model directory (tokenizer.model preferred, else tokenizer.json, else vocab.json + merges.txt;
  // with tokenizer_config.json / generation_config.json when present), a `tokenizer.model`, a
  // `tokenizer.json`, or a folder with vocab.json + merges.txt (`bpe_style` gpt2 | qwen2 says which
  // pre-tokenizer such a pair uses; tokenizer.json says it itself).
  static Tokenizer load(const std::string& path, const std::string& bpe_style = "qwen2");

  std::vector<int> encode(const std::string& text) const;  // ordinary text: "<|im_end|>" in it is just text
  // As Hugging Face's tokenizer(text, add_special_tokens=False): the special/added tokens known from
  // the tokenizer's files are matched in the text first (longest first), the rest is encoded as text.
  std::vector<int> encode_special(const std::string& text) const;
  // The same, but a special token is not matched where any of its bytes has plain[byte] set (text
  // that came from a conversation: a chat template's rendering, see jinja.h).
  std::vector<int> encode_special(const std::string& text, const std::vector<char>& plain) const;
  std::string decode(const std::vector<int>& ids) const;  // control/special tokens skipped
  std::string piece(int id) const;
  std::string token_bytes(int id) const;
  int piece_to_id(const std::string& piece) const;  // vocabulary or added token; -1 if absent
  int vocab_size() const;
  bool is_special(int id) const;
  bool dummy_prefix() const;
  std::string kind() const;

  int pad_id() const { return pad_; }  // never -1 (falls back to EOS, then 0): padding is masked anyway
  int bos_id() const { return bos_; }  // -1: none (Qwen)
  int eos_id() const { return eos_; }  // tokenizer_config's eos_token, else the model's own
  bool add_bos() const { return add_bos_; }  // the family's convention for plain (non-chat) text
  // generation_config.json's eos_token_id list (ids generation stops at), plus eos_id().
  std::vector<int> end_ids() const;
  // The Jinja chat template from tokenizer_config.json / chat_template.jinja ("" if none).
  const std::string& chat_template_source() const { return chat_template_; }
  const std::string& source() const { return source_; }

  // The tokenizer's files (name -> bytes), as loaded or as made by train(): what save() writes and
  // what identifies the tokenizer (two models share a vocabulary iff their fingerprints are equal).
  const std::map<std::string, std::string>& files() const { return files_; }
  std::string fingerprint() const;
  void save(const std::string& dir) const;  // every file, each written atomically

 private:
  Tokenizer() = default;
  void finish_specials();
  std::shared_ptr<const TokenizerModel> model_;
  std::map<std::string, std::string> files_;
  std::vector<std::pair<std::string, int>> specials_;  // matched by encode_special, longest first
  std::vector<int> special_ids_;                       // sorted
  std::vector<int> gen_eos_;
  std::string chat_template_, source_;
  int pad_ = 0, bos_ = -1, eos_ = -1;
  bool add_bos_ = false;
};

// The ChatML Jinja template written into the tokenizer_config.json of the tool's own models.
const std::string& chatml_jinja();

}  // namespace subliminal::text
