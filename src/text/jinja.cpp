// Chat templates rendered from their Jinja source with llama.cpp's engine (see jinja.h).
#include "subliminal/text/jinja.h"

#include <exception>

#include "jinja/lexer.h"
#include "jinja/parser.h"
#include "jinja/runtime.h"
#include "jinja/value.h"
#include "json.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/util/error.h"

namespace subliminal::text {

struct JinjaTemplate::Impl {
  std::string source;
  jinja::program program;
};

namespace {
// The engine's messages name the construct and show the source around it ("parser: ... at line N").
std::string what_of(const std::exception& e) {
  std::string w = e.what();
  while (!w.empty() && (w.back() == '\n' || w.back() == ' ')) w.pop_back();
  return w;
}

void set_globals(jinja::context& ctx, const nlohmann::ordered_json& obj, bool mark_input) {
  if (obj.empty()) return;
  jinja::global_from_json(ctx, common_json::parse(obj.dump()), mark_input);
}
}  // namespace

JinjaTemplate::JinjaTemplate(const std::string& source, std::string origin) : impl_(std::make_unique<Impl>()), origin_(std::move(origin)) {
  impl_->source = source;
  try {
    jinja::lexer lx;
    const auto tokens = lx.tokenize(source);
    impl_->program = jinja::parse_from_tokens(tokens);
  } catch (const std::exception& e) {
    throw DataError(origin_ + ": the chat template does not parse as Jinja: " + what_of(e));
  }
}

JinjaTemplate::~JinjaTemplate() = default;
JinjaTemplate::JinjaTemplate(JinjaTemplate&&) noexcept = default;

std::vector<RenderedPart> JinjaTemplate::render_parts(const JinjaVariables& v) const {
  try {
    jinja::context ctx(impl_->source);
    ctx.current_time = v.now;
    // As transformers: tools and documents are defined (None) unless given; the special tokens; then
    // the template's own keyword arguments (a later key wins); the conversation last, its strings
    // marked as input.
    nlohmann::ordered_json globals = {{"tools", nullptr}, {"documents", nullptr}};
    for (auto it = v.special_tokens.begin(); it != v.special_tokens.end(); ++it)
      if (!it.value().is_null()) globals[it.key()] = it.value();
    for (auto it = v.extra.begin(); it != v.extra.end(); ++it) globals[it.key()] = it.value();
    globals["add_generation_prompt"] = v.add_generation_prompt;
    set_globals(ctx, globals, false);
    set_globals(ctx, nlohmann::ordered_json{{"messages", v.messages}}, true);
    jinja::runtime rt(ctx);
    const auto results = rt.execute(impl_->program);
    const auto parts = jinja::runtime::gather_string_parts(results);
    std::vector<RenderedPart> out;
    for (const auto& p : parts->val_str.parts)
      if (!p.val.empty()) out.push_back({p.val, p.is_input});
    return out;
  } catch (const jinja::raised_exception& e) {
    throw DataError(origin_ + ": the chat template raised an exception for this conversation: " + what_of(e));
  } catch (const std::exception& e) {
    throw DataError(origin_ + ": the chat template could not be rendered: " + what_of(e));
  }
}

std::string JinjaTemplate::render(const JinjaVariables& v) const {
  std::string s;
  for (const auto& p : render_parts(v)) s += p.text;
  return s;
}

nlohmann::ordered_json special_token_variables(const Tokenizer& tok) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (tok.bos_id() >= 0) j["bos_token"] = tok.piece(tok.bos_id());
  if (tok.eos_id() >= 0) j["eos_token"] = tok.piece(tok.eos_id());
  return j;
}

std::vector<int> encode_rendered(const Tokenizer& tok, const std::vector<RenderedPart>& parts) {
  // One string, as Hugging Face encodes the rendering (text between special tokens is one chunk),
  // with no special token matched across a byte of the conversation's text.
  std::string text;
  std::vector<char> plain;
  for (const auto& p : parts) {
    text += p.text;
    plain.insert(plain.end(), p.text.size(), p.from_input ? 1 : 0);
  }
  return tok.encode_special(text, plain);
}

}  // namespace subliminal::text
