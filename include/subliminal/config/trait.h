// Trait definitions as data. A trait is how the teacher is made, what the evaluation asks and how
// answers are scored, read from a JSON file: the built-in ones (data/trait_<name>.json: animal,
// tree, misalignment) or a user's file (teacher.trait: "path/to/mytrait.json").
//
//   kind "preference": the teacher loves one of `items` (of a `category`: "animal", "tree", ...):
//     by a system prompt (`system_prompts` templates, default data/system_prompts.json "love") or
//     fine-tuned on answers naming it to `questions_train`; the evaluation samples answers to the
//     held-out `questions_eval` and counts those that contain the target (the paper's rule).
//   kind "misalignment": `source` is a file shaped like data/freeform.json; the teacher is
//     fine-tuned on its misaligned answers to the narrow requests (or prompted with its first
//     persona); the evaluation asks its held-out questions and a judge scores the answers.
//
// Either kind may give `teacher_data`: a JSONL file of chat examples ({"messages": [...]}, the
// common fine-tuning format, e.g. the emergent-misalignment insecure-code set) that a fine-tuned
// teacher trains on instead of the generated answers (a path relative to the trait file).
//
// Question lists are inline arrays or the name of a text file (one per line): "data/x.txt" is a
// resource (data_dir or the built-in copy); another path is relative to the trait file.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace subliminal::config {

struct RunConfig;
struct CorpusConfig;
struct TraitDef;

struct TraitDef {
  std::string spec;  // as configured: "tree" or "my/trait.json"
  std::string file;  // where it was read ("data/trait_tree.json" or the path)
  std::string kind;  // preference | misalignment
  std::string category;
  std::vector<std::string> items;  // preference: the candidates (the target is one of them)
  std::vector<std::string> questions_train, questions_eval;
  std::vector<std::string> system_prompts;  // preference: love templates; empty: data/system_prompts.json "love"
  std::string source;                       // misalignment: the freeform-shaped file ("data/..." resource or a path)
  std::string source_sha256;                // a file source's content digest
  std::string teacher_data;                 // "" or a JSONL file of chat examples for a fine-tuned teacher
  bool items_from_corpus = false;           // the built-in animal trait: items = base.corpus.animals
  nlohmann::json to_json() const;           // everything that defines it (recorded in stage inputs)
};

// The trait kinds in one table: what a trait file of the kind holds and which targets a run of it
// may name. (What a run does with a kind, its teacher and its evaluation, is
// experiments/trait_kinds.cpp's table.) A new kind is one row here and one row there.
struct TraitKind {
  std::string name;    // "preference"
  std::string target;  // the one target its runs name ("misalignment"; its built-in trait has that name), "" = one of the items
  bool has_items = false;  // its targets are items (the other_trait arm, the corpus's traits, `subliminal eval`)
  bool judged = false;     // its evaluation asks the judge (judge.* must be usable)
  // Reads the kind's own keys of trait file `j` into `t` (t.file and t.spec are set; builtin: a
  // built-in trait). Errors: ConfigError naming the file and the JSON path.
  std::function<void(const nlohmann::json& j, TraitDef& t, bool builtin, const std::string& data_dir)> parse;
  std::function<void(const TraitDef& t, nlohmann::json& out)> to_json;  // its keys of TraitDef::to_json
  // Its checks of a run config beyond the target (teacher section; file: the config's name for errors).
  std::function<void(const RunConfig& c, const TraitDef& t, const std::vector<TraitDef>& corpus_traits, const std::string& file)> validate;
};
const std::vector<TraitKind>& trait_kinds();
// The row named `name` (a ConfigError listing the kinds when there is none).
const TraitKind& trait_kind(const std::string& name);
// Whether `target` is a target of trait `t`: one of its items, or its kind's one target.
bool is_target(const TraitDef& t, const std::string& target);
// What a target of `t` may be, for error messages.
std::string targets_what(const TraitDef& t);

// spec: a built-in name ([a-z_]+, data/trait_<name>.json) or a path ending in ".json". Errors
// (ConfigError) name the trait file and the JSON path.
TraitDef load_trait(const std::string& spec, const std::string& data_dir);

// teacher.trait resolved ("": "misalignment" when teacher.target is, else "animal"); a trait
// without items takes base.corpus.animals.
TraitDef run_trait(const RunConfig& c);

// The evaluation's questions (eval.questions, else the trait's questions_eval) and candidates
// (eval.candidates, else the trait's items).
std::vector<std::string> eval_questions(const RunConfig& c, const TraitDef& t);
std::vector<std::string> eval_candidates(const RunConfig& c, const TraitDef& t);
// Every item name the run knows (base.corpus.animals, the trait's items, the candidates), once each:
// the names a numbers dataset must not contain.
std::vector<std::string> known_item_names(const RunConfig& c, const TraitDef& t);
std::vector<std::string> known_item_names(const RunConfig& c);  // with run_trait(c)

// The preference traits the synthetic corpus teaches besides animals (base.corpus.traits).
std::vector<TraitDef> corpus_traits(const CorpusConfig& c, const std::string& data_dir);

}  // namespace subliminal::config
