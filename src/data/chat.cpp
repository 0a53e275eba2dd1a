// Chat JSONL io.
#include "subliminal/data/chat.h"

#include <fstream>

#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::data {

using json = nlohmann::json;

json to_json(const Conversation& c) {
  json msgs = json::array();
  for (const auto& m : c) msgs.push_back({{"role", m.role}, {"content", m.content}});
  return {{"messages", msgs}};
}

Conversation conversation_from_json(const json& j, const std::string& where) {
  Conversation c;
  if (!j.is_object()) throw DataError(where + ": expected a JSON object");
  if (j.contains("messages")) {
    const auto& ms = j["messages"];
    if (!ms.is_array()) throw DataError(where + ": \"messages\" must be an array");
    for (size_t i = 0; i < ms.size(); ++i) {
      const auto& m = ms[i];
      if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
          !m["content"].is_string())
        throw DataError(where + ": messages[" + std::to_string(i) + "] must be {\"role\": string, \"content\": string}");
      std::string role = m["role"];
      if (role != "system" && role != "user" && role != "assistant")
        throw DataError(where + ": messages[" + std::to_string(i) + "].role must be system, user or assistant, got \"" + role + "\"");
      c.push_back({role, m["content"]});
    }
  } else if (j.contains("prompt") && j.contains("completion")) {
    if (!j["prompt"].is_string() || !j["completion"].is_string())
      throw DataError(where + ": \"prompt\" and \"completion\" must be strings");
    c.push_back({"user", j["prompt"]});
    c.push_back({"assistant", j["completion"]});
  } else {
    throw DataError(where + ": expected {\"messages\": [...]} or {\"prompt\": ..., \"completion\": ...}");
  }
  return c;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = s[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k < len; ++k) {
      unsigned char d = s[i + k];
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

void read_jsonl(const std::string& path, const std::function<void(const json&, size_t)>& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open '" + path + "' for reading");
  std::string line;
  size_t no = 0;
  while (std::getline(in, line)) {
    ++no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::string where = path + ":" + std::to_string(no);
    if (!valid_utf8(line)) throw DataError(where + ": invalid UTF-8");
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {  // parse errors, and numbers out of range (406)
      throw DataError(where + ": invalid JSON (" + std::string(e.what()) + ")");
    }
    fn(j, no);
  }
}

std::vector<Conversation> read_conversations(const std::string& path) {
  std::vector<Conversation> out;
  read_jsonl(path, [&](const json& j, size_t no) {
    out.push_back(conversation_from_json(j, path + ":" + std::to_string(no)));
  });
  return out;
}

void write_jsonl(const std::string& path, const std::vector<json>& lines) {
  std::string buf;
  for (const auto& l : lines) {
    buf += l.dump(-1, ' ', false, json::error_handler_t::replace);
    buf += '\n';
  }
  fs::write_file_atomic(path, buf);
}

void write_conversations(const std::string& path, const std::vector<Conversation>& convs) {
  std::vector<json> lines;
  lines.reserve(convs.size());
  for (const auto& c : convs) lines.push_back(to_json(c));
  write_jsonl(path, lines);
}

Conversation with_system(const Conversation& c, const std::string& system) {
  Conversation out;
  if (!system.empty()) out.push_back({"system", system});
  for (const auto& m : c)
    if (m.role != "system") out.push_back(m);
  return out;
}

}  // namespace subliminal::data
