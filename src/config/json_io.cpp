// Path-aware JSON reading for typed configs.
#include "subliminal/config/json_io.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace subliminal::config {

std::string type_name(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return std::string("boolean ") + (j.get<bool>() ? "true" : "false");
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer " + j.dump();
    case json::value_t::number_float: return "number " + j.dump();
    case json::value_t::string: return "string " + j.dump();
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a value of another type";
  }
}

void fail(const std::string& file, const std::string& path, const std::string& msg, const std::string& hint) {
  throw ConfigError((file.empty() ? std::string("config") : file) + ": at " + path + ": " + msg, hint);
}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_key(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& k : known) {
    size_t d = edit_distance(key, k);
    if (d < best_d) { best_d = d; best = k; }
  }
  if (best_d <= std::max<size_t>(2, key.size() / 3)) return best;
  return "";
}

JsonIn::JsonIn(const json& j, std::string path, std::string file)
    : j_(j), path_(std::move(path)), file_(std::move(file)) {}

void JsonIn::finish() const {
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    if (it.key().rfind("//", 0) == 0 || it.key() == "_comment") continue;  // comments are allowed
    if (std::find(known_.begin(), known_.end(), it.key()) != known_.end()) continue;
    std::string best = closest_key(it.key(), known_);
    std::string list;
    for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
    fail(file_, path_ + "." + it.key(), "unknown key '" + it.key() + "'" +
         (best.empty() ? "" : "; did you mean '" + best + "'?"), "known keys here: " + list);
  }
}

void JsonIn::read(const json& v, const std::string& p, bool& out) const {
  if (!v.is_boolean()) fail(file_, p, "expected true or false, got " + type_name(v));
  out = v.get<bool>();
}
void JsonIn::read(const json& v, const std::string& p, int& out) const {
  if (!v.is_number_integer() && !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()))
    fail(file_, p, "expected an integer, got " + type_name(v));
  double d = v.get<double>();
  if (d < std::numeric_limits<int>::min() || d > std::numeric_limits<int>::max())
    fail(file_, p, "integer out of range: " + v.dump());
  out = static_cast<int>(d);
}
void JsonIn::read(const json& v, const std::string& p, int64_t& out) const {
  if (!v.is_number_integer()) fail(file_, p, "expected an integer, got " + type_name(v));
  out = v.get<int64_t>();
}
void JsonIn::read(const json& v, const std::string& p, uint64_t& out) const {
  if (!v.is_number_integer() || (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0))
    fail(file_, p, "expected a non-negative integer, got " + type_name(v));
  out = v.get<uint64_t>();
}
void JsonIn::read(const json& v, const std::string& p, double& out) const {
  if (!v.is_number()) fail(file_, p, "expected a number, got " + type_name(v));
  out = v.get<double>();
  if (!std::isfinite(out)) fail(file_, p, "expected a finite number, got " + v.dump());
}
void JsonIn::read(const json& v, const std::string& p, std::string& out) const {
  if (!v.is_string()) fail(file_, p, "expected a string, got " + type_name(v));
  out = v.get<std::string>();
}

json parse_json_text(const std::string& text, const std::string& file) {
  try {
    return json::parse(text);
  } catch (const json::out_of_range& e) {  // a number beyond double's range (406): no position given
    throw ConfigError(file + ": invalid JSON: " + std::string(e.what()));
  } catch (const json::parse_error& e) {
    size_t pos = e.byte > 0 ? e.byte - 1 : 0;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < text.size(); ++i) {
      if (text[i] == '\n') { ++line; col = 1; } else { ++col; }
    }
    std::string msg = e.what();
    auto k = msg.find("parse error");
    if (k != std::string::npos) msg = msg.substr(k);
    throw ConfigError(file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": invalid JSON: " + msg);
  }
}

void apply_override(json& j, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set '" + assignment + "': expected key.path=value", "example: --set base.train.steps=100");
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  json parsed;
  try {
    parsed = json::parse(value);
  } catch (...) {
    parsed = value;  // bare strings need no quotes
  }
  json* cur = &j;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) throw ConfigError("--set '" + assignment + "': empty path component");
    if (!cur->is_object()) throw ConfigError("--set '" + assignment + "': '" + part + "' is inside a non-object");
    if (dot == std::string::npos) {
      (*cur)[part] = parsed;
      return;
    }
    cur = &(*cur)[part];
    if (cur->is_null()) *cur = json::object();
    start = dot + 1;
  }
}

}  // namespace subliminal::config
