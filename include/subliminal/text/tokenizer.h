// Tokenizer: sentencepiece (.model), trained by the tool on the synthetic corpus or loaded from a
// model directory, plus the chat template that turns conversations into token ids and loss masks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "subliminal/data/chat.h"

namespace subliminal::text {

class Tokenizer {
 public:
  static Tokenizer load(const std::string& path);                    // a tokenizer.model file
  static Tokenizer from_serialized(const std::string& proto, const std::string& what);
  // Trains on `texts` with the config's options: byte fallback, numbers 0..999 as single pieces
  // (user-defined symbols) unless disabled, chat role markers as control symbols. Deterministic.
  static Tokenizer train(const std::vector<std::string>& texts, const config::TokenizerConfig& cfg);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<int> encode(const std::string& text) const;
  std::string decode(const std::vector<int>& ids) const;
  std::string piece(int id) const;
  int piece_to_id(const std::string& piece) const;  // -1 if absent
  int vocab_size() const;
  int pad_id() const { return pad_id_; }
  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }
  int im_start_id() const { return im_start_; }
  int im_end_id() const { return im_end_; }
  const std::string& serialized() const { return proto_; }
  void save(const std::string& path) const;  // atomic

 private:
  Tokenizer();
  void init_ids(const std::string& what);
  void* sp_ = nullptr;  // sentencepiece processor behind the shim (spm_api.h)
  std::string proto_;
  int pad_id_ = 0, bos_id_ = 2, eos_id_ = 3, im_start_ = -1, im_end_ = -1;
};

// One tokenized example: ids and, per position, whether the token is a training target
// (assistant content and its end-of-turn marker).
struct Encoded {
  std::vector<int> ids;
  std::vector<uint8_t> target;
};

// ChatML-like template: <|im_start|>role\ncontent<|im_end|>\n — markers are control ids inserted
// by id, so a literal "<|im_end|>" in text never becomes the marker.
class ChatTemplate {
 public:
  ChatTemplate(const Tokenizer& tok, const std::string& name = "chatml");
  Encoded encode(const data::Conversation& conv) const;
  // Prompt ids ending with the assistant header, ready for generation.
  std::vector<int> prompt(const std::string& user, const std::string& system = "") const;
  std::vector<int> stop_ids() const { return {tok_.im_end_id(), tok_.eos_id()}; }

 private:
  void append_turn(Encoded& e, const std::string& role, const std::string& content, bool target) const;
  const Tokenizer& tok_;
  std::vector<int> nl_;
};

}  // namespace subliminal::text
