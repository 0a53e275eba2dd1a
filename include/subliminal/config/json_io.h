// Typed JSON <-> struct mapping with path-aware errors. A config struct exposes
//   template <class V> void visit(V& v) { v("key", field); ... }
// and JsonIn / JsonOut walk it. Unknown keys are errors with a "did you mean".
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "subliminal/util/error.h"

namespace subliminal::config {

using json = nlohmann::json;

template <class T, class = void>
struct is_visitable : std::false_type {};
struct VisitProbe {
  template <class F>
  void operator()(const char*, F&) {}
};
template <class T>
struct is_visitable<T, std::void_t<decltype(std::declval<T&>().visit(std::declval<VisitProbe&>()))>>
    : std::true_type {};

std::string closest_key(const std::string& key, const std::vector<std::string>& known);
std::string type_name(const json& j);
[[noreturn]] void fail(const std::string& file, const std::string& path, const std::string& msg,
                       const std::string& hint = "");

class JsonIn {
 public:
  JsonIn(const json& j, std::string path, std::string file);
  template <class T>
  void operator()(const char* key, T& field) {
    known_.push_back(key);
    auto it = j_.find(key);
    if (it == j_.end()) return;  // keep the default
    read(*it, path_ + "." + key, field);
  }
  void finish() const;  // unknown keys -> ConfigError
  bool has(const char* key) const { return j_.contains(key); }
  const std::string& file() const { return file_; }

 private:
  void read(const json& v, const std::string& p, bool& out) const;
  void read(const json& v, const std::string& p, int& out) const;
  void read(const json& v, const std::string& p, int64_t& out) const;
  void read(const json& v, const std::string& p, uint64_t& out) const;
  void read(const json& v, const std::string& p, double& out) const;
  void read(const json& v, const std::string& p, std::string& out) const;
  void read(const json& v, const std::string& p, json& out) const { out = v; }
  template <class T>
  void read(const json& v, const std::string& p, std::vector<T>& out) const {
    if (!v.is_array()) fail(file_, p, "expected an array, got " + type_name(v));
    out.clear();
    for (size_t i = 0; i < v.size(); ++i) {
      T x{};
      read(v[i], p + "[" + std::to_string(i) + "]", x);
      out.push_back(std::move(x));
    }
  }
  template <class T, std::enable_if_t<is_visitable<T>::value, int> = 0>
  void read(const json& v, const std::string& p, T& out) const {
    if (!v.is_object()) fail(file_, p, "expected an object, got " + type_name(v));
    JsonIn sub(v, p, file_);
    out.visit(sub);
    sub.finish();
  }

  const json& j_;
  std::string path_;
  std::string file_;
  std::vector<std::string> known_;
};

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

class JsonOut {
 public:
  template <class T>
  void operator()(const char* key, const T& field) {
    j[key] = write(field);
  }
  json j = json::object();

 private:
  template <class T>
  static json write(const T& v) {
    if constexpr (is_visitable<T>::value) {
      JsonOut o;
      const_cast<T&>(v).visit(o);
      return o.j;
    } else if constexpr (is_vector<T>::value) {
      json a = json::array();
      for (const auto& x : v) a.push_back(write(x));
      return a;
    } else {
      return json(v);
    }
  }
};

// Every key of a config struct as a row {key, type, default}: nested objects by their dotted path,
// the elements of an array of objects as "key[].field". `subliminal schema` prints it; the docs
// test checks docs/configuration.md against it.
class SchemaOut {
 public:
  explicit SchemaOut(std::string prefix = "") : prefix_(std::move(prefix)) {}
  template <class T>
  void operator()(const char* key, const T& field) {
    add(prefix_.empty() ? std::string(key) : prefix_ + "." + key, field);
  }
  json rows = json::array();

 private:
  template <class T>
  static std::string scalar_type() {
    if constexpr (std::is_same_v<T, bool>) return "boolean";
    else if constexpr (std::is_same_v<T, uint64_t>) return "non-negative integer";
    else if constexpr (std::is_integral_v<T>) return "integer";
    else if constexpr (std::is_floating_point_v<T>) return "number";
    else if constexpr (std::is_same_v<T, std::string>) return "string";
    else return "any JSON";
  }
  template <class T>
  void add(const std::string& path, const T& v) {
    JsonOut o;
    o("v", v);
    if constexpr (is_visitable<T>::value) {
      SchemaOut sub(path);
      const_cast<T&>(v).visit(sub);
      for (auto& r : sub.rows) rows.push_back(std::move(r));
    } else if constexpr (is_vector<T>::value) {
      using E = typename T::value_type;
      if constexpr (is_visitable<E>::value) {
        rows.push_back({{"key", path}, {"type", "array of objects"}, {"default", o.j["v"]}});
        E e{};
        SchemaOut sub(path + "[]");
        e.visit(sub);
        for (auto& r : sub.rows) rows.push_back(std::move(r));
      } else {
        rows.push_back({{"key", path}, {"type", scalar_type<E>() == "any JSON" ? std::string("array") : "array of " + scalar_type<E>() + "s"}, {"default", o.j["v"]}});
      }
    } else {
      rows.push_back({{"key", path}, {"type", scalar_type<T>()}, {"default", o.j["v"]}});
    }
  }
  std::string prefix_;
};

template <class T>
json to_json_value(const T& cfg) {
  JsonOut o;
  const_cast<T&>(cfg).visit(o);
  return o.j;
}

template <class T>
void from_json_value(const json& j, T& cfg, const std::string& file, const std::string& path = "$") {
  if (!j.is_object()) fail(file, path, "expected an object, got " + type_name(j));
  JsonIn in(j, path, file);
  cfg.visit(in);
  in.finish();
}

// Parses JSON text; a syntax error names file, line and column.
json parse_json_text(const std::string& text, const std::string& file);

// Applies one `a.b.c=value` override (value parsed as JSON, else taken as a string).
void apply_override(json& j, const std::string& assignment);

}  // namespace subliminal::config
