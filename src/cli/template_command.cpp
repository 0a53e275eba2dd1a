// `subliminal template`: a conversation rendered by a model's own chat template (its Jinja), as
// transformers' apply_chat_template renders it; with --model, also its token ids.
#include <ctime>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "subliminal/cli/commands.h"
#include "subliminal/text/jinja.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::cli {

using json = nlohmann::ordered_json;  // keys in the file's order, as Python reads them (tojson writes them so)

namespace {

// "YYYY-MM-DD" -> noon UTC of that day (noon: the same date in every time zone within 11 hours).
std::time_t parse_date(const std::string& s, const std::string& what) {
  std::tm tm{};
  int y = 0, m = 0, d = 0;
  char tail = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 || d > 31)
    throw ConfigError(what + ": \"" + s + "\" is not a date: expected YYYY-MM-DD");
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  tm.tm_hour = 12;
  return timegm(&tm);
}

std::time_t today_noon() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  tm.tm_hour = 12;
  tm.tm_min = tm.tm_sec = 0;
  return timegm(&tm);
}

// The messages of a conversation file: a JSON array of messages, or an object with "messages" (its
// other keys become template variables, e.g. "enable_thinking": false).
void read_messages(const json& v, const std::string& where, text::JinjaVariables& vars) {
  const json* msgs = &v;
  const std::string base = v.is_object() ? "$.messages" : "$";
  if (v.is_object()) {
    if (!v.contains("messages")) throw ConfigError(where + ": expected a JSON array of messages or an object with \"messages\"");
    msgs = &v["messages"];
    for (auto it = v.begin(); it != v.end(); ++it)
      if (it.key() != "messages") vars.extra[it.key()] = it.value();
  }
  if (!msgs->is_array()) throw ConfigError(where + ": " + base + ": expected an array of {\"role\": ..., \"content\": ...}");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string at = where + ": " + base + "[" + std::to_string(i) + "]";
    if (!m.is_object()) throw ConfigError(at + ": expected an object with \"role\" and \"content\"");
    if (!m.contains("role") || !m["role"].is_string()) throw ConfigError(at + ".role: expected a string (system, user, assistant, ...)");
    if (!m.contains("content")) throw ConfigError(at + ".content: missing");
  }
  vars.messages = *msgs;
}

json parse_json_text(const std::string& bytes, const std::string& where) {
  try {
    return json::parse(bytes);
  } catch (const json::exception& e) {
    throw ConfigError(where + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

}  // namespace

int cmd_template(const TemplateArgs& a) {
  if (a.jsonl) {  // one case per standard-input line (the template tests): {"template", "messages", ...} -> {"text"} or {"error"}
    std::string line;
    int lineno = 0;
    while (std::getline(std::cin, line)) {
      ++lineno;
      const std::string where = "standard input line " + std::to_string(lineno);
      const json v = parse_json_text(line, where);
      json out;
      try {
        if (!v.is_object() || !v.contains("template") || !v["template"].is_string())
          throw ConfigError(where + ": $.template: expected the path of a .jinja file");
        const std::string path = v["template"].get<std::string>();
        text::JinjaTemplate t(fs::read_file(path), path);
        text::JinjaVariables vars;
        read_messages(json{{"messages", v.value("messages", json::array())}}, where, vars);
        vars.add_generation_prompt = v.value("add_generation_prompt", false);
        vars.special_tokens = v.value("special_tokens", json::object());
        vars.extra = v.value("variables", json::object());
        vars.now = v.contains("date") ? parse_date(v["date"].get<std::string>(), where + ": $.date") : today_noon();
        out["text"] = t.render(vars);
      } catch (const ConfigError&) {
        throw;
      } catch (const Error& e) {
        out["error"] = e.what();
      }
      std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n" << std::flush;
    }
    return 0;
  }
  if (a.messages.empty()) throw ConfigError("template: --messages FILE.json is required");
  if (a.model.empty() == a.templ.empty()) throw ConfigError("template: give one of --model DIR or --template FILE.jinja");
  text::JinjaVariables vars;
  read_messages(parse_json_text(fs::read_file(a.messages), a.messages), a.messages, vars);
  vars.add_generation_prompt = a.add_generation_prompt;
  vars.now = a.date.empty() ? today_noon() : parse_date(a.date, "--date");
  if (!a.templ.empty()) {
    if (!std::filesystem::exists(a.templ)) throw ConfigError("--template '" + a.templ + "' does not exist");
    if (!a.bos.empty()) vars.special_tokens["bos_token"] = a.bos;
    if (!a.eos.empty()) vars.special_tokens["eos_token"] = a.eos;
    text::JinjaTemplate t(fs::read_file(a.templ), a.templ);
    std::cout << t.render(vars) << std::flush;
    return 0;
  }
  if (!std::filesystem::is_directory(a.model)) throw ConfigError("--model '" + a.model + "' is not a directory");
  const auto tok = text::Tokenizer::load(a.model);
  if (tok.chat_template_source().empty())
    throw ConfigError(a.model + ": the model has no chat template (no chat_template.jinja, no \"chat_template\" in tokenizer_config.json)",
                      "render a template file instead: --template FILE.jinja");
  const std::string origin = std::filesystem::exists(std::filesystem::path(a.model) / "chat_template.jinja")
                                 ? (std::filesystem::path(a.model) / "chat_template.jinja").string()
                                 : (std::filesystem::path(a.model) / "tokenizer_config.json").string() + " (chat_template)";
  vars.special_tokens = text::special_token_variables(tok);
  if (!a.bos.empty()) vars.special_tokens["bos_token"] = a.bos;
  if (!a.eos.empty()) vars.special_tokens["eos_token"] = a.eos;
  text::JinjaTemplate t(tok.chat_template_source(), origin);
  const auto parts = t.render_parts(vars);
  std::string rendered;
  for (const auto& p : parts) rendered += p.text;
  std::cout << rendered << std::flush;
  std::cerr << "token ids: " << json(text::encode_rendered(tok, parts)).dump() << "\n";
  return 0;
}

}  // namespace subliminal::cli
