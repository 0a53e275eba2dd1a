// The chat formats of the model families we run, one class per family in one table
// (src/text/chat_template.cpp). Built token by token: markers are inserted by id (a literal
// "<|im_end|>" in a message never becomes the marker), text between them is encoded as Hugging Face
// encodes the rendered template (tested: encode_special(render(c)) == encode(c).ids).
//   chatml   <|im_start|>role\ncontent<|im_end|>\n (Qwen; the tool's own models). A default system
//            prompt the template inserts (Qwen2.5: "You are Qwen, created by Alibaba Cloud...") is kept.
//   llama2   <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>
//   llama3   <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
//            (Llama-3.1's "Cutting Knowledge Date" system header kept, with its default date)
//   mistral  <s>[INST] system\n\nuser [/INST] answer</s> ([INST] as control tokens where the
//            tokenizer has them: v3)
//   jinja    any model's own template, rendered from its Jinja (text/jinja.h); what `auto` picks
//            when the model's template is none of the above
// A new family is one class and one row of the table in chat_template.cpp: names() (the CLI's
// --chat-template and the config's base.tokenizer.chat_template) and recognise() follow from it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "subliminal/text/conversation.h"
#include "subliminal/text/tokenizer.h"

namespace subliminal::text {

// One tokenized example: ids and, per position, whether the token is a training target
// (assistant content and the token that ends its turn).
struct Encoded {
  std::vector<int> ids;
  std::vector<uint8_t> target;
};

// One family's format (chat_template.cpp holds one subclass per family).
class ChatFamily {
 public:
  virtual ~ChatFamily() = default;
  virtual Encoded encode(const Conversation& conv) const = 0;
  // What follows encode() of a prompt so that the model answers: the assistant header.
  virtual std::vector<int> generation_header() const { return {}; }
  // A prompt ready for generation: the conversation and the assistant header.
  virtual std::vector<int> prompt_ids(const Conversation& conv) const {
    auto ids = encode(conv).ids;
    const auto h = generation_header();
    ids.insert(ids.end(), h.begin(), h.end());
    return ids;
  }
  virtual std::string render(const Conversation& conv, bool add_generation_prompt) const = 0;
  virtual std::vector<int> extra_stop_ids() const { return {}; }
  int end_of_turn() const { return eot_; }

 protected:
  int eot_ = -1;
};

class ChatTemplate {
 public:
  static std::vector<std::string> names();  // sorted
  // Which of names() a Hugging Face Jinja template is ("" if none); *default_system receives the
  // system prompt it inserts when a conversation has none, *system_prefix text it puts before every
  // system prompt (Llama-3.1's date header).
  static std::string recognise(const std::string& jinja, std::string* default_system = nullptr,
                               std::string* system_prefix = nullptr);

  // name: "auto" (recognised from tok.chat_template_source(): an unknown or missing template is a
  // ConfigError saying to set base.tokenizer.chat_template) or one of names().
  explicit ChatTemplate(const Tokenizer& tok, const std::string& name = "auto");
  const std::string& name() const { return name_; }
  Encoded encode(const Conversation& conv) const { return family_->encode(conv); }
  // Prompt ids ending with the assistant header, ready for generation.
  std::vector<int> prompt(const std::string& user, const std::string& system = "") const;
  std::vector<int> stop_ids() const;
  int end_of_turn_id() const { return family_->end_of_turn(); }  // ends an assistant turn (a training target)
  // The conversation as text, as the family's Hugging Face template renders it.
  std::string render(const Conversation& conv, bool add_generation_prompt) const {
    return family_->render(conv, add_generation_prompt);
  }

 private:
  Tokenizer tok_;
  std::string name_;
  std::shared_ptr<const ChatFamily> family_;
};

}  // namespace subliminal::text
