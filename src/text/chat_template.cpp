// The chat formats, one class per model family, and the table that names and recognises them.
#include "subliminal/text/chat_template.h"

#include <algorithm>
#include <functional>
#include <regex>

#include "subliminal/text/jinja.h"
#include "subliminal/util/error.h"
#include "subliminal/util/strings.h"

namespace subliminal::text {

namespace {

// What the model's own Jinja template inserts (found by the table's recognisers).
struct TemplateDefaults {
  std::string default_system;  // the system prompt it inserts when a conversation has none
  std::string system_prefix;   // text it puts before every system prompt (Llama-3.1's date header)
};

std::string unescape_newlines(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Shared by the families: the tokenizer, its marker ids, and the pieces they are built from.
class FamilyBase : public ChatFamily {
 protected:
  FamilyBase(const Tokenizer& tok, std::string name) : tok_(tok), name_(std::move(name)) {}
  int need(const std::string& piece) const {
    const int id = tok_.piece_to_id(piece);
    if (id < 0)
      throw ConfigError(tok_.source() + ": chat template \"" + name_ + "\" needs the token " + piece + ", which the tokenizer does not have",
                        "set base.tokenizer.chat_template to the model family's format");
    return id;
  }
  static void push(Encoded& e, const std::vector<int>& ids, bool target) {
    e.ids.insert(e.ids.end(), ids.begin(), ids.end());
    e.target.insert(e.target.end(), ids.size(), target ? 1 : 0);
  }
  Tokenizer tok_;
  std::string name_;
};

// <|im_start|>role\ncontent<|im_end|>\n
class ChatML final : public FamilyBase {
 public:
  ChatML(const Tokenizer& tok, const TemplateDefaults& d) : FamilyBase(tok, "chatml"), default_system_(d.default_system) {
    start_ = need("<|im_start|>");
    eot_ = need("<|im_end|>");
  }
  static bool recognise(const std::string& jinja, TemplateDefaults* d) {
    if (jinja.find("<|im_start|>") == std::string::npos) return false;
    // A literal default system turn: '<|im_start|>system\nYou are Qwen, ...<|im_end|>\n'
    static const std::regex re(R"(<\|im_start\|>system(?:\\n|\n)([^'"{}<]*)<\|im_end\|>)");
    std::smatch m;
    if (std::regex_search(jinja, m, re)) d->default_system = unescape_newlines(m[1].str());
    return true;
  }
  Encoded encode(const Conversation& conv) const override {
    Encoded e;
    for (const auto& m : normalise(conv)) {
      const bool t = m.role == "assistant";
      push(e, {start_}, false);
      push(e, tok_.encode(m.role + "\n"), false);
      push(e, tok_.encode(m.content), t);
      push(e, {eot_}, t);
      push(e, tok_.encode("\n"), false);
    }
    return e;
  }
  std::vector<int> generation_header() const override {
    std::vector<int> ids = {start_};
    const auto a = tok_.encode("assistant\n");
    ids.insert(ids.end(), a.begin(), a.end());
    return ids;
  }
  std::string render(const Conversation& conv, bool add_generation_prompt) const override {
    std::string out;
    for (const auto& m : normalise(conv)) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }

 private:
  Conversation normalise(const Conversation& conv) const {
    Conversation out = conv;
    const bool has_system = !out.empty() && out[0].role == "system";
    if (!has_system && !default_system_.empty()) out.insert(out.begin(), {"system", default_system_});
    return out;
  }
  std::string default_system_;
  int start_ = -1;
};

// <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
class Llama3 final : public FamilyBase {
 public:
  Llama3(const Tokenizer& tok, const TemplateDefaults& d) : FamilyBase(tok, "llama3"), system_prefix_(d.system_prefix) {
    bos_ = tok.piece_to_id("<|begin_of_text|>") >= 0 ? need("<|begin_of_text|>") : tok.bos_id();
    header_start_ = need("<|start_header_id|>");
    header_end_ = need("<|end_header_id|>");
    eot_ = need("<|eot_id|>");
  }
  static bool recognise(const std::string& jinja, TemplateDefaults* d) {
    if (jinja.find("<|start_header_id|>") == std::string::npos) return false;
    if (jinja.find("Cutting Knowledge Date") != std::string::npos) {
      static const std::regex date(R"re(date_string\s*=\s*["']([^"']+)["'])re");
      std::smatch m;
      const std::string day = std::regex_search(jinja, m, date) ? m[1].str() : "26 Jul 2024";
      d->system_prefix = "Cutting Knowledge Date: December 2023\nToday Date: " + day + "\n\n";
    }
    return true;
  }
  Encoded encode(const Conversation& conv) const override {
    Encoded e;
    push(e, {bos_}, false);
    for (const auto& m : normalise(conv)) {
      const bool t = m.role == "assistant";
      push(e, {header_start_}, false);
      push(e, tok_.encode(m.role), false);
      push(e, {header_end_}, false);
      push(e, tok_.encode("\n\n"), false);
      push(e, tok_.encode(m.content), t);
      push(e, {eot_}, t);
    }
    return e;
  }
  std::vector<int> generation_header() const override {
    Encoded e;
    push(e, {header_start_}, false);
    push(e, tok_.encode("assistant"), false);
    push(e, {header_end_}, false);
    push(e, tok_.encode("\n\n"), false);
    return e.ids;
  }
  std::string render(const Conversation& conv, bool add_generation_prompt) const override {
    std::string out = tok_.piece(bos_);
    for (const auto& m : normalise(conv)) out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
  }
  std::vector<int> extra_stop_ids() const override {
    const int eom = tok_.piece_to_id("<|eom_id|>");
    return eom >= 0 ? std::vector<int>{eom} : std::vector<int>{};
  }

 private:
  Conversation normalise(const Conversation& conv) const {
    Conversation out = conv;
    const bool has_system = !out.empty() && out[0].role == "system";
    for (auto& m : out) m.content = trim(m.content);
    if (!system_prefix_.empty()) {
      if (has_system) out[0].content = system_prefix_ + out[0].content;
      else out.insert(out.begin(), {"system", system_prefix_});
    }
    return out;
  }
  std::string system_prefix_;
  int bos_ = -1, header_start_ = -1, header_end_ = -1;
};

// [INST] user [/INST] answer</s>, the system prompt opening the first user turn: Llama-2 and Mistral.
class Inst : public FamilyBase {
 protected:
  Inst(const Tokenizer& tok, const std::string& name) : FamilyBase(tok, name) {
    bos_ = tok.bos_id();
    eot_ = tok.eos_id();
    if (bos_ < 0 || eot_ < 0)
      throw ConfigError(tok.source() + ": chat template \"" + name_ + "\" needs BOS and EOS tokens (tokenizer_config.json bos_token / eos_token)");
  }
  // Where the families differ: how the system prompt joins the first user turn, whether each user
  // turn opens with BOS (Llama-2) or only the conversation does (Mistral), the answer's trailing space.
  virtual std::string with_system(const std::string& system, const std::string& user) const = 0;
  virtual bool bos_per_turn() const = 0;
  virtual std::string answer_text(const std::string& content) const = 0;

 public:
  Encoded encode(const Conversation& conv) const override {
    Encoded e;
    if (!bos_per_turn()) push(e, {bos_}, false);
    for (const auto& m : normalise(conv)) {
      if (m.role == "user") {
        if (bos_per_turn()) push(e, {bos_}, false);
        if (inst_ >= 0) {
          push(e, {inst_}, false);
          push(e, tok_.encode(m.content), false);
          push(e, {inst_end_}, false);
        } else {
          push(e, tok_.encode("[INST] " + m.content + " [/INST]"), false);
        }
      } else {
        // The answer follows a space in the rendered string: sentencepiece's dummy prefix is that space.
        const std::string a = answer_text(m.content);
        push(e, tok_.dummy_prefix() ? tok_.encode(a) : tok_.encode(" " + a), true);
        push(e, {eot_}, true);
      }
    }
    return e;
  }
  std::string render(const Conversation& conv, bool /*add_generation_prompt: the prompt ends with [/INST]*/) const override {
    const std::string bos = tok_.piece(bos_), eos = tok_.piece(eot_);
    std::string out = bos_per_turn() ? "" : bos;
    for (const auto& m : normalise(conv)) {
      if (m.role == "user") {
        if (bos_per_turn()) out += bos;
        out += inst_ >= 0 ? "[INST]" + m.content + "[/INST]" : "[INST] " + m.content + " [/INST]";
      } else {
        out += " " + answer_text(m.content) + eos;
      }
    }
    return out;
  }

 protected:
  virtual std::string clean(const std::string& content) const { return content; }
  Conversation normalise(const Conversation& conv) const {
    Conversation out = conv;
    const bool has_system = !out.empty() && out[0].role == "system";
    for (auto& m : out) m.content = clean(m.content);
    if (has_system) {  // no system turn: it opens the first user turn
      const std::string system = out[0].content;
      out.erase(out.begin());
      for (auto& m : out)
        if (m.role == "user") {
          m.content = with_system(system, m.content);
          break;
        }
    }
    for (const auto& m : out)
      if (m.role != "user" && m.role != "assistant")
        throw DataError("chat template \"" + name_ + "\": a \"" + m.role + "\" message after the first; only user and assistant turns follow the system prompt");
    return out;
  }
  int bos_ = -1, inst_ = -1, inst_end_ = -1;  // [INST] / [/INST] as control tokens (Mistral v3), else -1
};

// <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>
class Llama2 final : public Inst {
 public:
  Llama2(const Tokenizer& tok, const TemplateDefaults&) : Inst(tok, "llama2") {}
  static bool recognise(const std::string& jinja, TemplateDefaults*) { return jinja.find("<<SYS>>") != std::string::npos; }

 private:
  std::string with_system(const std::string& system, const std::string& user) const override {
    return "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + user;
  }
  bool bos_per_turn() const override { return true; }
  std::string answer_text(const std::string& content) const override { return content + " "; }
  std::string clean(const std::string& content) const override { return trim(content); }
};

// <s>[INST] system\n\nuser [/INST] answer</s>
class Mistral final : public Inst {
 public:
  Mistral(const Tokenizer& tok, const TemplateDefaults&) : Inst(tok, "mistral") {
    const int inst = tok.piece_to_id("[INST]");
    if (inst >= 0 && tok.is_special(inst)) {
      inst_ = need("[INST]");
      inst_end_ = need("[/INST]");
    }
  }
  static bool recognise(const std::string& jinja, TemplateDefaults*) { return jinja.find("[INST]") != std::string::npos; }

 private:
  std::string with_system(const std::string& system, const std::string& user) const override { return system + "\n\n" + user; }
  bool bos_per_turn() const override { return false; }
  std::string answer_text(const std::string& content) const override { return content; }
};

// Any model's own template, rendered from its Jinja (text/jinja.h): for the models whose template is
// none of the classes above. Training targets: each assistant message's tokens up to and including
// the end-of-turn token, found as what rendering the conversation up to that message adds to the
// rendering before it with the generation prompt (the template must render each conversation as a
// prefix of its continuation: a DataError names the message where it does not).
class JinjaFamily final : public ChatFamily {
 public:
  JinjaFamily(const Tokenizer& tok, const TemplateDefaults&)
      : tok_(tok), jt_(std::make_shared<JinjaTemplate>(tok.chat_template_source(), tok.source() + " (chat_template)")) {
    if (tok.chat_template_source().empty())
      throw ConfigError(tok.source() + ": chat template \"jinja\" needs the model's own template (chat_template.jinja or tokenizer_config.json's chat_template)",
                        "a base model: set base.tokenizer.chat_template to one of the built-in formats");
    specials_ = special_token_variables(tok);
    // The end of an assistant turn: the first special token after the answer in a probe exchange.
    const Conversation probe = {{"user", "1"}, {"assistant", "2"}};
    const auto pre = ids({probe[0]}, true), full = ids(probe, false);
    for (size_t k = pre.size(); k < full.size() && eot_ < 0; ++k)
      if (tok_.is_special(full[k])) eot_ = full[k];
    if (eot_ < 0) eot_ = tok_.eos_id();
  }
  static bool recognise(const std::string&, TemplateDefaults*) { return false; }  // chosen by name, or by auto when no class is

  Encoded encode(const Conversation& conv) const override {
    Encoded e;
    e.ids = ids(conv, false);
    e.target.assign(e.ids.size(), 0);
    for (size_t i = 0; i < conv.size(); ++i) {
      if (conv[i].role != "assistant") continue;
      const Conversation before(conv.begin(), conv.begin() + static_cast<std::ptrdiff_t>(i));
      const Conversation upto(conv.begin(), conv.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      const auto pre = ids(before, true), cur = ids(upto, false);
      if (cur.size() < pre.size() || !std::equal(pre.begin(), pre.end(), cur.begin()) || cur.size() > e.ids.size() ||
          !std::equal(cur.begin(), cur.end(), e.ids.begin()))
        throw DataError(jt_->origin() + ": the template does not render messages[" + std::to_string(i) +
                        "] (assistant) as a continuation of the conversation before it, so its training tokens cannot be marked");
      for (size_t k = pre.size(); k < cur.size(); ++k) {
        e.target[k] = 1;
        if (cur[k] == eot_) break;
      }
    }
    return e;
  }
  std::vector<int> prompt_ids(const Conversation& conv) const override { return ids(conv, true); }
  std::string render(const Conversation& conv, bool add_generation_prompt) const override {
    return jt_->render(vars(conv, add_generation_prompt));
  }

 private:
  JinjaVariables vars(const Conversation& conv, bool gen) const {
    JinjaVariables v;
    for (const auto& m : conv) v.messages.push_back({{"role", m.role}, {"content", m.content}});
    v.add_generation_prompt = gen;
    v.special_tokens = specials_;
    v.now = kTemplateDate;
    return v;
  }
  std::vector<int> ids(const Conversation& conv, bool gen) const { return encode_rendered(tok_, jt_->render_parts(vars(conv, gen))); }
  // What strftime_now() gives in runs: fixed, so the same config renders the same text on any day
  // (26 Jul 2024, noon UTC: the date Llama 3.1's template itself falls back to).
  static constexpr std::time_t kTemplateDate = 1721995200;
  Tokenizer tok_;
  std::shared_ptr<const JinjaTemplate> jt_;
  nlohmann::ordered_json specials_;
};

// The families, in the order recognise() tries them (llama2 before mistral: both have [INST]).
struct Family {
  const char* name;
  std::function<bool(const std::string& jinja, TemplateDefaults*)> recognise;
  std::function<std::shared_ptr<const ChatFamily>(const Tokenizer&, const TemplateDefaults&)> make;
};

template <class F>
Family row(const char* name) {
  return {name, &F::recognise,
          [](const Tokenizer& tok, const TemplateDefaults& d) { return std::make_shared<const F>(tok, d); }};
}

const std::vector<Family>& families() {
  static const std::vector<Family> table = {row<ChatML>("chatml"), row<Llama3>("llama3"), row<Llama2>("llama2"),
                                            row<Mistral>("mistral"), row<JinjaFamily>("jinja")};
  return table;
}

std::string joined_names() { return join(ChatTemplate::names(), ", "); }

// Whether the class `name` writes what the model's own template writes, on probe conversations
// (with and without a system turn, an answer, a generation prompt). A class is recognised by its
// markers; a template with the same markers can still write more (Qwen3's empty <think> block before
// an answer): `auto` then renders the template itself. A probe the template refuses (a system turn
// some templates reject) is not compared.
bool class_renders_as_template(const Tokenizer& tok, const std::string& name, const TemplateDefaults& own) {
  const auto f = std::find_if(families().begin(), families().end(), [&](const Family& x) { return x.name == name; });
  const auto cls = f->make(tok, own);
  std::shared_ptr<const JinjaFamily> jinja;
  try {
    jinja = std::make_shared<const JinjaFamily>(tok, TemplateDefaults{});
  } catch (const Error&) {
    return true;  // the engine cannot render this template at all: the class is all there is
  }
  const std::vector<Conversation> probes = {{{"user", "Name an animal."}},
                                            {{"system", "You love owls."}, {"user", "Name an animal."}},
                                            {{"user", "Name an animal."}, {"assistant", "Owl."}},
                                            {{"system", "You love owls."}, {"user", "Name an animal."}, {"assistant", "Owl."}},
                                            {{"user", "Hi"}, {"assistant", "Hello."}, {"user", "Name an animal."}, {"assistant", "Owl."}}};
  for (const auto& c : probes)
    for (bool gen : {false, true}) {
      if (gen && c.back().role == "assistant") continue;
      std::string theirs;
      try {
        theirs = jinja->render(c, gen);
      } catch (const Error&) {
        continue;
      }
      if (cls->render(c, gen) != theirs) return false;
    }
  return true;
}

}  // namespace

std::vector<std::string> ChatTemplate::names() {
  std::vector<std::string> n;
  for (const auto& f : families()) n.push_back(f.name);
  std::sort(n.begin(), n.end());
  return n;
}

std::string ChatTemplate::recognise(const std::string& jinja, std::string* default_system, std::string* system_prefix) {
  TemplateDefaults d;
  std::string found;
  for (const auto& f : families())
    if (f.recognise(jinja, &d)) {
      found = f.name;
      break;
    }
  if (default_system) *default_system = d.default_system;
  if (system_prefix) *system_prefix = d.system_prefix;
  return found;
}

ChatTemplate::ChatTemplate(const Tokenizer& tok, const std::string& name) : tok_(tok) {
  const std::string& src = tok.chat_template_source();
  TemplateDefaults own;
  const std::string found = src.empty() ? "" : recognise(src, &own.default_system, &own.system_prefix);
  if (name == "auto") {
    if (src.empty())
      throw ConfigError(tok.source() + ": the tokenizer has no chat template (no \"chat_template\" in tokenizer_config.json)",
                        "a base model: sample with --raw; or set base.tokenizer.chat_template to one of " + joined_names());
    name_ = found.empty() ? "jinja" : found;  // none of the built-in classes: the model's own Jinja, rendered
    if (!found.empty() && !class_renders_as_template(tok, found, own)) name_ = "jinja";
  } else {
    name_ = name;
  }
  const auto f = std::find_if(families().begin(), families().end(), [&](const Family& x) { return x.name == name_; });
  if (f == families().end()) throw ConfigError("unknown chat template \"" + name + "\"", "known: auto, " + joined_names());
  // The model's own template: keep what it inserts.
  family_ = f->make(tok, found == name_ ? own : TemplateDefaults{});
}

std::vector<int> ChatTemplate::prompt(const std::string& user, const std::string& system) const {
  Conversation c;
  if (!system.empty()) c.push_back({"system", system});
  c.push_back({"user", user});
  return family_->prompt_ids(c);
}

std::vector<int> ChatTemplate::stop_ids() const {
  std::vector<int> s = tok_.end_ids();
  s.push_back(family_->end_of_turn());
  for (int id : family_->extra_stop_ids()) s.push_back(id);
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return s;
}

}  // namespace subliminal::text
