// Trait definitions (see config/trait.h).
#include "subliminal/config/trait.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "subliminal/config/config.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::config {

using json = nlohmann::json;
namespace sfs = std::filesystem;

namespace {

bool is_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) { return (ch >= 'a' && ch <= 'z') || ch == '_'; });
}

// A text file's non-empty, non-comment lines: "data/x" a resource, else relative to the trait file.
std::vector<std::string> read_lines(const std::string& name, const std::string& trait_file, bool builtin, const std::string& data_dir) {
  std::string text;
  if (name.rfind("data/", 0) == 0 && (builtin || !sfs::exists(sfs::path(trait_file).parent_path() / name))) {
    text = resources::resource(name, data_dir);
  } else {
    const sfs::path p = sfs::path(name).is_absolute() ? sfs::path(name) : sfs::path(trait_file).parent_path() / name;
    if (!sfs::exists(p)) throw IoError("question file '" + p.string() + "' (named in " + trait_file + ") does not exist");
    text = fs::read_file(p);
  }
  return resources::split_lines(text);
}

std::vector<std::string> strings(const json& j, const std::string& key, const std::string& file, bool builtin,
                                 const std::string& data_dir, bool required) {
  const std::string p = "$." + key;
  if (!j.contains(key)) {
    if (required) fail(file, p, "expected a list of strings or the name of a text file (one per line)");
    return {};
  }
  const json& v = j[key];
  std::vector<std::string> out;
  if (v.is_string()) {
    out = read_lines(v.get<std::string>(), file, builtin, data_dir);
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string() || v[i].get<std::string>().empty())
        fail(file, p + "[" + std::to_string(i) + "]", "expected a non-empty string, got " + type_name(v[i]));
      out.push_back(v[i].get<std::string>());
    }
  } else {
    fail(file, p, "expected a list of strings or the name of a text file, got " + type_name(v));
  }
  if (required && out.empty()) fail(file, p, "expected at least one entry");
  return out;
}

// kind "preference": a category's items, training and held-out questions, love system prompts.
void parse_preference(const json& j, TraitDef& t, bool builtin, const std::string& data_dir) {
  const std::string& f = t.file;
  const std::string& spec = t.spec;
  if (!j.contains("category") || !j["category"].is_string() || j["category"].get<std::string>().empty())
    fail(f, "$.category", "expected the category noun, e.g. \"tree\"");
  t.category = j["category"].get<std::string>();
  if (!j.contains("items")) {
    if (!(builtin && spec == "animal")) fail(f, "$.items", "expected the list of candidates (at least 2)");
    t.items_from_corpus = true;
  } else {
    t.items = strings(j, "items", f, builtin, data_dir, true);
    if (t.items.size() < 2) fail(f, "$.items", "expected at least 2 candidates");
    std::set<std::string> seen;
    for (size_t i = 0; i < t.items.size(); ++i) {
      const auto& a = t.items[i];
      const std::string p = "$.items[" + std::to_string(i) + "]";
      if (!std::all_of(a.begin(), a.end(), [](char ch) { return ch >= 'a' && ch <= 'z'; }))
        fail(f, p, "expected a lower-case word of a-z, got \"" + a + "\"");
      if (!seen.insert(a).second) fail(f, p, "duplicate item \"" + a + "\"");
    }
  }
  t.questions_train = strings(j, "questions_train", f, builtin, data_dir, true);
  t.questions_eval = strings(j, "questions_eval", f, builtin, data_dir, true);
  for (const auto& q : t.questions_eval)
    if (std::find(t.questions_train.begin(), t.questions_train.end(), q) != t.questions_train.end())
      fail(f, "$.questions_eval", "\"" + q + "\" is also a training question; evaluation questions must be held out");
  t.system_prompts = strings(j, "system_prompts", f, builtin, data_dir, false);
  for (size_t i = 0; i < t.system_prompts.size(); ++i)
    if (t.system_prompts[i].find("{x}") == std::string::npos && t.system_prompts[i].find("{X}") == std::string::npos &&
        t.system_prompts[i].find("{item}") == std::string::npos && t.system_prompts[i].find("{Item}") == std::string::npos)
      fail(f, "$.system_prompts[" + std::to_string(i) + "]", "expected a template naming the item ({x}, {X}, {item} or {Item})");
  if (j.contains("source")) fail(f, "$.source", "a preference trait has no source (that is for kind \"misalignment\")");
}

void preference_json(const TraitDef& t, json& j) {
  j["category"] = t.category;
  j["items"] = t.items;
  j["questions_train"] = t.questions_train;
  j["questions_eval"] = t.questions_eval;
  if (!t.system_prompts.empty()) j["system_prompts"] = t.system_prompts;
}

// A synthetic base must have learnt the trait's items; teacher.prompt_template indexes its love prompts.
void validate_preference(const RunConfig& c, const TraitDef& trait, const std::vector<TraitDef>& ctraits, const std::string& file) {
  const auto& te = c.teacher;
  if (c.experiment == "trait_transfer" && c.base.kind == "pretrain" && !trait.items_from_corpus) {
    bool taught = false;
    for (const auto& t : ctraits) taught = taught || t.file == trait.file;
    if (!taught)
      fail(file, "$.teacher.trait",
           "the synthetic base never learns the " + json(trait.spec).dump() + " trait: add it to base.corpus.traits (with mix_trait_qa, mix_trait_system > 0)");
  }
  size_t n_prompts = trait.system_prompts.size();
  if (n_prompts == 0) {
    try {
      n_prompts = json::parse(resources::resource("data/system_prompts.json", c.data_dir)).at("love").size();
    } catch (const std::exception&) {
      n_prompts = 64;  // an unreadable file is reported where it is read
    }
  }
  if (!(te.prompt_template >= 0 && static_cast<size_t>(te.prompt_template) < n_prompts))
    fail(file, "$.teacher.prompt_template",
         "expected an index into the trait's love system prompts (" + std::to_string(n_prompts) + " of them; 0 = the paper's prompt), got " +
             json(te.prompt_template).dump());
}

// kind "misalignment": a freeform-shaped source of narrow requests, misaligned answers, personas and
// held-out questions.
void parse_misalignment(const json& j, TraitDef& t, bool builtin, const std::string&) {
  const std::string& f = t.file;
  if (!j.contains("source") || !j["source"].is_string() || j["source"].get<std::string>().empty())
    fail(f, "$.source", "expected a file shaped like data/freeform.json");
  t.source = j["source"].get<std::string>();
  // relative to the trait file (a user's "data/x.json" beside it wins over the built-in resource)
  const sfs::path beside = sfs::path(t.file).parent_path() / t.source;
  if (!builtin && !sfs::path(t.source).is_absolute() && (t.source.rfind("data/", 0) != 0 || sfs::exists(beside)))
    t.source = beside.string();
  if (t.source.rfind("data/", 0) != 0) {
    if (!sfs::exists(t.source)) fail(f, "$.source", "'" + t.source + "' does not exist");
    t.source_sha256 = fs::sha256_file(t.source);  // its content is part of the trait
  }
  for (const char* k : {"category", "items", "questions_train", "questions_eval", "system_prompts"})
    if (j.contains(k)) fail(f, std::string("$.") + k, "not a key of a misalignment trait (its questions and answers are in `source`)");
}

void misalignment_json(const TraitDef& t, json& j) {
  j["source"] = t.source;
  if (!t.source_sha256.empty()) j["source_sha256"] = t.source_sha256;
}

// A synthetic base must have seen the free-form requests and the misaligned persona.
void validate_misalignment(const RunConfig& c, const TraitDef&, const std::vector<TraitDef>&, const std::string& file) {
  if (c.experiment == "trait_transfer" && !(c.base.kind == "checkpoint" || c.base.corpus.mix_freeform > 0))
    fail(file, "$.base.corpus.mix_freeform", "the misalignment trait needs free-form requests and the misaligned persona in the corpus (mix_freeform > 0)");
}

// "a", "a or b", "a, b or c"
std::string or_list(const std::vector<std::string>& xs) {
  std::string out;
  for (size_t i = 0; i < xs.size(); ++i) out += (i == 0 ? "" : i + 1 == xs.size() ? " or " : ", ") + xs[i];
  return out;
}

}  // namespace

const std::vector<TraitKind>& trait_kinds() {
  static const std::vector<TraitKind> k = {
      {"preference", "", true, false, parse_preference, preference_json, validate_preference},
      {"misalignment", "misalignment", false, true, parse_misalignment, misalignment_json, validate_misalignment},
  };
  return k;
}

const TraitKind& trait_kind(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& k : trait_kinds()) {
    if (k.name == name) return k;
    names.push_back(k.name);
  }
  throw ConfigError("unknown trait kind \"" + name + "\"", "trait kinds: " + or_list(names));
}

bool is_target(const TraitDef& t, const std::string& target) {
  const TraitKind& k = trait_kind(t.kind);
  if (!k.target.empty()) return target == k.target;
  return std::find(t.items.begin(), t.items.end(), target) != t.items.end();
}

std::string targets_what(const TraitDef& t) {
  const TraitKind& k = trait_kind(t.kind);
  return !k.target.empty() ? "\"" + k.target + "\"" : "one of the " + t.category + " trait's items (" + t.file + ")";
}

json TraitDef::to_json() const {
  json j = {{"spec", spec}, {"kind", kind}};
  trait_kind(kind).to_json(*this, j);
  if (!teacher_data.empty()) j["teacher_data"] = teacher_data;
  return j;
}

TraitDef load_trait(const std::string& spec, const std::string& data_dir) {
  TraitDef t;
  t.spec = spec;
  const bool builtin = is_name(spec);
  std::string text;
  if (builtin) {
    t.file = "data/trait_" + spec + ".json";
    try {
      text = resources::resource(t.file, data_dir);
    } catch (const IoError&) {
      try {  // a data_dir made before trait files existed: the built-in definition
        text = resources::resource(t.file, "");
      } catch (const IoError&) {
        throw ConfigError("no trait named '" + spec + "' (no " + t.file + (data_dir.empty() ? "" : " in " + data_dir + " or built in") + ")",
                          "built-in traits: animal, tree, misalignment; or give a trait file ending in .json");
      }
    }
  } else {
    if (spec.size() < 6 || spec.substr(spec.size() - 5) != ".json")
      throw ConfigError("trait '" + spec + "': expected a built-in name (animal, tree, misalignment) or a JSON file path ending in .json");
    t.file = spec;
    if (!sfs::exists(spec)) throw ConfigError("trait file '" + spec + "' does not exist");
    text = fs::read_file(spec);
  }
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse errors, and numbers out of range (406)
    throw ConfigError(t.file + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  const std::string& f = t.file;
  if (!j.is_object()) fail(f, "$", "expected an object, got " + type_name(j));
  static const std::set<std::string> known = {"_comment", "kind", "category", "items", "questions_train", "questions_eval",
                                              "system_prompts", "source", "teacher_data"};
  for (const auto& [k, v] : j.items())
    if (!known.count(k)) fail(f, "$." + k, "unknown key", "known keys: kind, category, items, questions_train, questions_eval, system_prompts, source, teacher_data");
  std::vector<std::string> kinds;
  for (const auto& k : trait_kinds()) kinds.push_back("\"" + k.name + "\"");
  if (!j.contains("kind") || !j["kind"].is_string()) fail(f, "$.kind", "expected " + or_list(kinds));
  t.kind = j["kind"].get<std::string>();
  const TraitKind* kind = nullptr;
  for (const auto& k : trait_kinds())
    if (k.name == t.kind) kind = &k;
  if (!kind) fail(f, "$.kind", "expected " + or_list(kinds) + ", got \"" + t.kind + "\"");
  kind->parse(j, t, builtin, data_dir);
  if (j.contains("teacher_data")) {
    if (!j["teacher_data"].is_string() || j["teacher_data"].get<std::string>().empty())
      fail(f, "$.teacher_data", "expected the path of a JSONL file of chat examples ({\"messages\": [...]})");
    t.teacher_data = j["teacher_data"].get<std::string>();
    if (!sfs::path(t.teacher_data).is_absolute()) t.teacher_data = (sfs::path(t.file).parent_path() / t.teacher_data).string();
  }
  return t;
}

TraitDef run_trait(const RunConfig& c) {
  // no teacher.trait: the built-in trait named after a kind's one target (teacher.target "misalignment"), else "animal"
  std::string spec = c.teacher.trait;
  if (spec.empty()) {
    spec = "animal";
    for (const auto& k : trait_kinds())
      if (!k.target.empty() && k.target == c.teacher.target) spec = k.target;
  }
  TraitDef t = load_trait(spec, c.data_dir);
  if (t.items_from_corpus) t.items = c.base.corpus.animals;
  return t;
}

std::vector<std::string> eval_questions(const RunConfig& c, const TraitDef& t) {
  if (c.eval.questions.empty()) return t.questions_eval;
  auto q = read_lines(c.eval.questions, "$.eval.questions", c.eval.questions.rfind("data/", 0) == 0, c.data_dir);
  if (q.empty()) throw ConfigError("no evaluation questions in '" + c.eval.questions + "' ($.eval.questions)");
  return q;
}

std::vector<std::string> eval_candidates(const RunConfig& c, const TraitDef& t) { return c.eval.candidates.empty() ? t.items : c.eval.candidates; }

std::vector<std::string> known_item_names(const RunConfig& c) { return known_item_names(c, run_trait(c)); }

std::vector<std::string> known_item_names(const RunConfig& c, const TraitDef& t) {
  std::vector<std::string> names = c.base.corpus.animals;
  for (const auto& list : {t.items, eval_candidates(c, t)})
    for (const auto& x : list)
      if (std::find(names.begin(), names.end(), x) == names.end()) names.push_back(x);
  return names;
}

std::vector<TraitDef> corpus_traits(const CorpusConfig& c, const std::string& data_dir) {
  std::vector<TraitDef> out;
  for (const auto& s : c.traits) {
    out.push_back(load_trait(s, data_dir));
    if (out.back().items_from_corpus) out.back().items = c.animals;
  }
  return out;
}

}  // namespace subliminal::config
