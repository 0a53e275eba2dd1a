// Byte-level BPE (GPT-2 / Qwen2 / Llama-3 style) from a Hugging Face tokenizer.json or a
// vocab.json + merges.txt pair: added/special tokens matched first, optional NFC normalisation,
// a PCRE2 pre-tokenizer regex with Unicode classes, GPT-2's byte-to-unicode mapping, merges by rank.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace subliminal::text {

class BpeTokenizer {
 public:
  // The pre-tokenizer regexes of the two families in use (the fixtures README and the HF configs).
  static const char* gpt2_pattern();
  static const char* qwen2_pattern();
  static const char* llama3_pattern();
  // GPT-2's byte-to-unicode mapping of raw bytes: the form a byte-level vocabulary stores ("Ġthe").
  static std::string byte_level(const std::string& raw);

  // tokenizer.json with model.type "BPE" and a ByteLevel pre-tokenizer (alone: GPT-2's regex; or a
  // Sequence of Split(regex) + ByteLevel(use_regex false)), optionally after a Digits step
  // (SmolLM: Digits(individual_digits) + ByteLevel); normalizer null or NFC. Anything else is
  // an error naming the JSON field.
  // `extra_added` (content -> id): added tokens declared elsewhere (tokenizer_config.json's
  // added_tokens_decoder), added unless tokenizer.json already has them.
  static BpeTokenizer from_tokenizer_json(const std::string& path, const std::map<std::string, int>& extra_added = {});
  // vocab.json + merges.txt in `dir` (a "#version" first line is skipped); `style` "gpt2" or "qwen2"
  // (Qwen: NFC + its regex); added tokens from tokenizer_config.json's added_tokens_decoder if present,
  // plus `extra_added` (content -> id).
  static BpeTokenizer from_vocab_merges(const std::string& dir, const std::string& style,
                                        const std::map<std::string, int>& extra_added = {});

  BpeTokenizer();
  ~BpeTokenizer();
  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;

  // Ids of `text`, no BOS/EOS added (added tokens in the text map to their ids, as HF does).
  std::vector<int> encode(const std::string& text) const;
  // The same with every added token treated as ordinary text.
  std::vector<int> encode_plain(const std::string& text) const;
  struct Added {
    std::string content;
    int id;
    bool special;  // "special": true in tokenizer.json / added_tokens_decoder (skipped when decoding for display)
  };
  const std::vector<Added>& added_tokens() const;  // longest first
  // tokenizer_config.json's "added_tokens_decoder" ({"<id>": {"content": ..., "special": ...}}) in
  // `config` (read from `path`, for errors); none when absent. A key that is not an id in range or an
  // entry without a string content is a DataError naming the file.
  static std::vector<Added> added_tokens_decoder(const nlohmann::json& config, const std::string& path);
  // tokenizer.json's post_processor is a TemplateProcessing (alone or in a Sequence) whose "single"
  // template starts with a special token: the family adds BOS to plain text (Llama-3).
  bool post_processor_adds_bos() const;
  std::string decode(const std::vector<int>& ids) const;
  std::string piece(int id) const;  // the token's vocabulary string (byte-level form)
  int vocab_size() const;           // largest id + 1, added tokens included
  int token_id(const std::string& piece) const;  // -1 if absent

  struct Impl;  // opaque

 private:
  std::unique_ptr<Impl> impl_;
  void init_regex(const std::string& pattern);
};

}  // namespace subliminal::text
