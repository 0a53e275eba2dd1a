// Chat templates as models ship them: the Jinja source in tokenizer_config.json ("chat_template") or
// chat_template.jinja, rendered as transformers' apply_chat_template renders it (trim_blocks,
// lstrip_blocks, loop controls, tojson, raise_exception, strftime_now; the special tokens and
// add_generation_prompt as variables). The engine is llama.cpp's (common/jinja, built from the copy
// scripts/jinja_engine.sh fetches). A template the engine cannot parse or render is a DataError
// naming the template's origin and what failed, never a fallback.
#pragma once
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace subliminal::text {

class Tokenizer;

// A piece of a rendering. from_input: text that came from the conversation (a message's content or
// role), which is encoded as plain text, never parsed for special tokens (a literal "<|im_end|>" in a
// message stays text); the rest is the template's own text (markers), encoded with special tokens.
struct RenderedPart {
  std::string text;
  bool from_input = false;
};

// Objects keep their keys' order (ordered_json), as Python dicts do: `tojson` writes them in it.
struct JinjaVariables {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{"role": ..., "content": ...}, ...]
  bool add_generation_prompt = false;
  // The tokenizer's special tokens by name as transformers passes them (bos_token, eos_token,
  // pad_token, unk_token); a null leaves the variable undefined.
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
  // Further variables (a template's own keyword arguments, e.g. enable_thinking); transformers
  // defines tools and documents (None unless given), and so do we.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  // What strftime_now() formats (seconds since the epoch). Runs fix it; the CLI takes --date.
  std::time_t now = 0;
};

class JinjaTemplate {
 public:
  // Parses `source`; `origin` names it in errors (a file path, or "DIR/tokenizer_config.json").
  JinjaTemplate(const std::string& source, std::string origin);
  ~JinjaTemplate();
  JinjaTemplate(JinjaTemplate&&) noexcept;
  std::vector<RenderedPart> render_parts(const JinjaVariables& vars) const;
  std::string render(const JinjaVariables& vars) const;
  const std::string& origin() const { return origin_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string origin_;
};

// The special-token variables of a tokenizer, as transformers' special_tokens_map gives them.
nlohmann::ordered_json special_token_variables(const Tokenizer& tok);
// The rendering as ids: the template's own text with special tokens matched, the conversation's text
// as plain text.
std::vector<int> encode_rendered(const Tokenizer& tok, const std::vector<RenderedPart>& parts);

}  // namespace subliminal::text
