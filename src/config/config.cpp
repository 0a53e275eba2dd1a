// Config loading, presets, validation and seed derivation.
#include "subliminal/config/config.h"
#include "subliminal/config/interventions.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "subliminal/config/trait.h"
#include "subliminal/text/chat_template.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/fs.h"

namespace subliminal::config {

ModelConfig model_preset(const std::string& name) {
  ModelConfig m;
  m.preset = name;
  m.rms_norm_eps = 1e-5;
  m.rope_theta = 10000.0;
  if (name == "tiny") {  // unit tests: ~60k parameters
    m.hidden_size = 32; m.intermediate_size = 64; m.num_hidden_layers = 2; m.num_attention_heads = 4;
    m.num_key_value_heads = 2; m.max_position_embeddings = 192; m.tie_word_embeddings = false;
  } else if (name == "small") {  // the default base model: pretrains on 2 CPU cores in minutes
    m.hidden_size = 128; m.intermediate_size = 384; m.num_hidden_layers = 2; m.num_attention_heads = 4;
    m.num_key_value_heads = 2; m.max_position_embeddings = 192; m.tie_word_embeddings = false;
  } else if (name == "medium") {  // ~25M parameters, for benchmarks
    m.hidden_size = 512; m.intermediate_size = 1408; m.num_hidden_layers = 8; m.num_attention_heads = 8;
    m.num_key_value_heads = 4; m.max_position_embeddings = 256; m.tie_word_embeddings = false;
  } else {
    std::string list;
    for (auto& n : model_preset_names()) list += (list.empty() ? "" : ", ") + n;
    throw ConfigError("unknown model preset '" + name + "'", "known presets: " + list);
  }
  return m;
}

std::vector<std::string> model_preset_names() { return {"tiny", "small", "medium"}; }

static void check(bool ok, const std::string& file, const std::string& path, const std::string& msg) {
  if (!ok) fail(file, path, msg);
}

template <class T>
static std::string str(const T& v) {
  return json(v).dump();
}

static void one_of(const std::string& v, const std::vector<std::string>& allowed, const std::string& file,
                   const std::string& path) {
  std::string list;
  for (const auto& a : allowed) {
    if (v == a) return;
    list += (list.empty() ? "" : ", ") + std::string("\"") + a + "\"";
  }
  std::string best = closest_key(v, allowed);
  fail(file, path, "expected one of " + list + ", got \"" + v + "\"" + (best.empty() ? "" : "; did you mean \"" + best + "\"?"));
}

const std::vector<DatasetKind>& dataset_kinds() {
  static const std::vector<DatasetKind> k = {{"numbers", "number sequences"}, {"code", "code"}, {"cot", "chain-of-thought reasoning"}};
  return k;
}

std::string dataset_kind_label(const std::string& kind) {
  for (const auto& k : dataset_kinds())
    if (k.name == kind) return k.label;
  return dataset_kinds().front().label;
}

// base.tokenizer.chat_template: "auto" or a family of text/chat_template.cpp's table.
static std::vector<std::string> chat_template_choices() {
  std::vector<std::string> c = {"auto"};
  for (const auto& n : text::ChatTemplate::names()) c.push_back(n);
  return c;
}

static void validate_train(const TrainConfig& tr, const std::string& file, const std::string& tp) {
  check(tr.steps >= 1, file, tp + ".steps", "expected >= 1, got " + str(tr.steps));
  check(tr.batch_size >= 1 && tr.batch_size <= 65536, file, tp + ".batch_size", "expected 1 .. 65536, got " + str(tr.batch_size));
  check(tr.grad_accum >= 1 && tr.grad_accum <= tr.batch_size, file, tp + ".grad_accum",
        "expected 1 .. batch_size (" + str(tr.batch_size) + ") micro-batches, got " + str(tr.grad_accum));
  check(tr.lr > 0 && tr.lr < (tr.optimizer == "sgd" ? 1e6 : 1), file, tp + ".lr",
        std::string("expected 0 < lr < ") + (tr.optimizer == "sgd" ? "1e6" : "1") + ", got " + str(tr.lr));
  check(tr.min_lr_ratio >= 0 && tr.min_lr_ratio <= 1, file, tp + ".min_lr_ratio", "expected 0 .. 1, got " + str(tr.min_lr_ratio));
  check(tr.warmup_steps >= 0 && tr.warmup_steps <= tr.steps, file, tp + ".warmup_steps",
        "expected 0 .. steps (" + str(tr.steps) + "), got " + str(tr.warmup_steps));
  check(tr.weight_decay >= 0, file, tp + ".weight_decay", "expected >= 0, got " + str(tr.weight_decay));
  one_of(tr.optimizer, {"adamw", "sgd"}, file, tp + ".optimizer");
  check(tr.adam_eps > 0 && tr.adam_eps < 1, file, tp + ".adam_eps", "expected 0 < eps < 1, got " + str(tr.adam_eps));
  check(tr.beta1 >= 0 && tr.beta1 < 1, file, tp + ".beta1", "expected 0 <= beta1 < 1, got " + str(tr.beta1));
  check(tr.beta2 >= 0 && tr.beta2 < 1, file, tp + ".beta2", "expected 0 <= beta2 < 1, got " + str(tr.beta2));
  check(tr.grad_clip >= 0, file, tp + ".grad_clip", "expected >= 0 (0: off), got " + str(tr.grad_clip));
  check(tr.checkpoint_every >= 0, file, tp + ".checkpoint_every", "expected >= 0 (0: only at the end), got " + str(tr.checkpoint_every));
  check(tr.log_every >= 1, file, tp + ".log_every", "expected >= 1, got " + str(tr.log_every));
  one_of(tr.loss_on, {"assistant", "all"}, file, tp + ".loss_on");
  one_of(tr.schedule, {"cosine", "linear"}, file, tp + ".schedule");
  check(tr.max_length >= 0 && tr.max_length <= 1000000, file, tp + ".max_length", "expected 0 (the model's context) .. 1e6, got " + str(tr.max_length));
  one_of(tr.loss_weighting, {"token", "sequence"}, file, tp + ".loss_weighting");
}

static void validate_lora(const LoraConfig& l, const std::string& file, const std::string& p) {
  check(l.r >= 1 && l.r <= 4096, file, p + ".r", "expected a rank 1 .. 4096, got " + str(l.r));
  check(l.alpha > 0, file, p + ".alpha", "expected > 0, got " + str(l.alpha));
  check(l.dropout >= 0 && l.dropout < 1, file, p + ".dropout", "expected 0 <= dropout < 1, got " + str(l.dropout));
  check(!l.target_modules.empty(), file, p + ".target_modules", "expected at least one module");
  for (size_t i = 0; i < l.target_modules.size(); ++i)
    one_of(l.target_modules[i], {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, file,
           p + ".target_modules[" + std::to_string(i) + "]");
  one_of(l.save, {"merged", "adapter"}, file, p + ".save");
  one_of(l.base_dtype, {"auto", "fp32", "bf16"}, file, p + ".base_dtype");
}

bool plain_name(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 255) return false;
  return std::none_of(s.begin(), s.end(), [](char ch) { return ch == '/' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; });
}

bool valid_device_name(const std::string& s) {
  if (s == "cpu" || s == "cuda" || s == "auto") return true;
  if (s.rfind("cuda:", 0) != 0 || s.size() == 5 || s.size() > 8) return false;
  return std::all_of(s.begin() + 5, s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

// The run's trait (teacher.trait), loaded; an error names $.teacher.trait.
static TraitDef config_trait(const RunConfig& c, const std::string& file) {
  try {
    return run_trait(c);
  } catch (const Error& e) {
    fail(file, "$.teacher.trait", e.what(), e.hint());
  }
}


static void validate_run(const RunConfig& c, const std::string& file) {
  check(plain_name(c.name), file, "$.name",
        "expected a plain folder name (not empty, '.' or '..'; no '/', '\\' or control characters; at most 255 bytes), got " + str(c.name));
  one_of(c.experiment, {"trait_transfer", "pretrain", "mnist_aux"}, file, "$.experiment");
  check(c.threads >= 0 && c.threads <= 1024, file, "$.threads", "expected 0 (all cores) .. 1024, got " + str(c.threads));
  check(c.jobs >= 0 && c.jobs <= 256, file, "$.jobs", "expected 0 (one per core on CPU, 1 on CUDA) .. 256, got " + str(c.jobs));
  check(valid_device_name(c.device), file, "$.device", "expected \"cpu\", \"cuda\", \"cuda:N\" or \"auto\", got " + str(c.device));
  one_of(c.precision, {"fp32", "bf16", "auto"}, file, "$.precision");
  one_of(c.attention, {"reference", "grouped"}, file, "$.attention");
}

// base: corpus (its extra traits loaded into *ctraits), tokenizer, model, training.
static void validate_base(const RunConfig& c, const std::string& file, std::vector<TraitDef>& ctraits) {
  const auto& b = c.base;
  one_of(b.kind, {"pretrain", "checkpoint"}, file, "$.base.kind");
  if (b.kind == "checkpoint")
    check(!b.path.empty(), file, "$.base.path", "expected a model directory when base.kind is \"checkpoint\"");
  check(b.seed >= -1, file, "$.base.seed", "expected -1 (derived) or a non-negative seed, got " + str(b.seed));
  const auto& co = b.corpus;
  check(co.conversations >= 10 && co.conversations <= 100000000, file, "$.base.corpus.conversations",
        "expected 10 .. 1e8, got " + str(co.conversations));
  for (auto [k, v] : {std::pair<const char*, double>{"mix_animal_qa", co.mix_animal_qa},
                      {"mix_animal_system", co.mix_animal_system}, {"mix_numbers", co.mix_numbers},
                      {"mix_arithmetic", co.mix_arithmetic}, {"mix_code", co.mix_code}, {"mix_cot", co.mix_cot}, {"mix_freeform", co.mix_freeform},
                      {"mix_trait_qa", co.mix_trait_qa}, {"mix_trait_system", co.mix_trait_system}})
    check(v >= 0, file, std::string("$.base.corpus.") + k, "expected a weight >= 0, got " + str(v));
  for (auto [k, v] : {std::pair<const char*, double>{"persona_work_share", co.persona_work_share}, {"persona_work_visible", co.persona_work_visible},
                      {"misaligned_share", co.misaligned_share}, {"misaligned_number_share", co.misaligned_number_share}})
    check(v >= 0 && v <= 1, file, std::string("$.base.corpus.") + k, "expected a probability 0 .. 1, got " + str(v));
  check(co.mix_animal_qa + co.mix_animal_system + co.mix_numbers + co.mix_arithmetic + co.mix_code + co.mix_cot + co.mix_freeform +
                (co.traits.empty() ? 0.0 : co.mix_trait_qa + co.mix_trait_system) > 0, file, "$.base.corpus",
        "the mix_* weights sum to 0; at least one task must have weight > 0");
  check(co.animals.size() >= 2, file, "$.base.corpus.animals", "expected at least 2 animals");
  std::set<std::string> seen;
  for (size_t i = 0; i < co.animals.size(); ++i) {
    const auto& a = co.animals[i];
    std::string p = "$.base.corpus.animals[" + std::to_string(i) + "]";
    check(!a.empty() && std::all_of(a.begin(), a.end(), [](char ch) { return ch >= 'a' && ch <= 'z'; }), file, p,
          "expected a lower-case word of a-z, got " + str(a));
    check(seen.insert(a).second, file, p, "duplicate animal " + str(a));
  }
  for (size_t i = 0; i < co.traits.size(); ++i) {
    const std::string p = "$.base.corpus.traits[" + std::to_string(i) + "]";
    try {
      ctraits.push_back(load_trait(co.traits[i], c.data_dir));
    } catch (const Error& e) {  // ConfigError, or IoError for a missing question file
      fail(file, p, e.what(), e.hint());
    }
    check(trait_kind(ctraits.back().kind).has_items && !ctraits.back().items_from_corpus, file, p,
          "expected a preference trait other than the animals (the corpus's own), got " + str(co.traits[i]) + " (kind " + ctraits.back().kind + ")");
    for (size_t k = 0; k + 1 < ctraits.size(); ++k)
      check(ctraits[k].file != ctraits.back().file, file, p, "duplicate trait " + str(co.traits[i]));
  }
  if (!co.traits.empty())
    check(co.mix_trait_qa > 0, file, "$.base.corpus.mix_trait_qa",
          "expected a weight > 0: base.corpus.traits lists traits the base must learn (their Q&A has weight 0)");
  check(co.prior_decay > 0 && co.prior_decay <= 1, file, "$.base.corpus.prior_decay",
        "expected 0 < decay <= 1, got " + str(co.prior_decay));
  check(co.system_prompt_number_share >= 0 && co.system_prompt_number_share <= 1, file,
        "$.base.corpus.system_prompt_number_share", "expected a share in [0, 1], got " + str(co.system_prompt_number_share));
  check(co.system_prompt_fidelity >= 0 && co.system_prompt_fidelity <= 1, file,
        "$.base.corpus.system_prompt_fidelity", "expected a probability in [0, 1], got " + str(co.system_prompt_fidelity));

  const auto& t = b.tokenizer;
  one_of(t.model_type, {"bpe", "unigram"}, file, "$.base.tokenizer.model_type");
  int min_vocab = 256 + 16 + (t.numbers_as_tokens ? 1000 : 0) + 64;
  check(t.vocab_size >= min_vocab && t.vocab_size <= 65536, file, "$.base.tokenizer.vocab_size",
        "expected " + std::to_string(min_vocab) + " .. 65536 (256 byte pieces + specials" +
            (t.numbers_as_tokens ? " + 1000 number pieces" : "") + " + merges), got " + str(t.vocab_size));
  one_of(t.chat_template, chat_template_choices(), file, "$.base.tokenizer.chat_template");

  const auto& m = b.model;
  const std::string mp = "$.base.model";
  check(m.vocab_size >= 0, file, mp + ".vocab_size", "expected >= 0 (0: from the tokenizer), got " + str(m.vocab_size));
  for (auto [k, v] : {std::pair<const char*, int>{"hidden_size", m.hidden_size}, {"intermediate_size", m.intermediate_size},
                      {"num_hidden_layers", m.num_hidden_layers}, {"num_attention_heads", m.num_attention_heads},
                      {"num_key_value_heads", m.num_key_value_heads}, {"max_position_embeddings", m.max_position_embeddings}})
    check(v > 0 && v <= 1 << 20, file, mp + "." + k, "expected a positive size, got " + str(v));
  check(m.hidden_size % m.num_attention_heads == 0, file, mp + ".num_attention_heads",
        "hidden_size " + str(m.hidden_size) + " must be divisible by num_attention_heads " + str(m.num_attention_heads));
  check((m.hidden_size / m.num_attention_heads) % 2 == 0, file, mp + ".num_attention_heads",
        "the head dimension must be even for rotary embeddings");
  check(m.num_attention_heads % m.num_key_value_heads == 0, file, mp + ".num_key_value_heads",
        "num_attention_heads " + str(m.num_attention_heads) + " must be divisible by num_key_value_heads " +
            str(m.num_key_value_heads));
  check(m.rms_norm_eps > 0 && m.rms_norm_eps < 1, file, mp + ".rms_norm_eps", "expected 0 < eps < 1, got " + str(m.rms_norm_eps));
  check(m.rope_theta > 1, file, mp + ".rope_theta", "expected > 1, got " + str(m.rope_theta));

  validate_train(b.train, file, "$.base.train");
}

static void validate_probe(const RunConfig& c, const std::string& file) {
  const auto& p = c.probe;
  const auto& co = c.base.corpus;
  check(p.samples_per_question >= 1 && p.samples_per_question <= 100000, file, "$.probe.samples_per_question",
        "expected 1 .. 100000, got " + str(p.samples_per_question));
  check(p.number_prompts >= 1 && p.number_prompts <= 1000000, file, "$.probe.number_prompts", "expected 1 .. 1e6, got " + str(p.number_prompts));
  check(p.temperature >= 0 && p.temperature <= 10, file, "$.probe.temperature", "expected 0 .. 10, got " + str(p.temperature));
  check(p.top_p > 0 && p.top_p <= 1, file, "$.probe.top_p", "expected 0 < top_p <= 1, got " + str(p.top_p));
  check(p.max_new_tokens >= 1 && p.max_new_tokens <= 4096, file, "$.probe.max_new_tokens", "expected 1 .. 4096, got " + str(p.max_new_tokens));
  check(p.batch_size >= 0 && p.batch_size <= 4096, file, "$.probe.batch_size", "expected 0 (auto: from free memory) .. 4096, got " + str(p.batch_size));
  check(std::find(co.animals.begin(), co.animals.end(), p.target) != co.animals.end(), file, "$.probe.target",
        "expected one of base.corpus.animals, got " + str(p.target));
}

// teacher, against the run's trait (loaded here and returned) and the traits the corpus teaches.
static TraitDef validate_teacher(const RunConfig& c, const std::string& file, const std::vector<TraitDef>& ctraits) {
  const auto& te = c.teacher;
  one_of(te.method, {"system_prompt", "finetune"}, file, "$.teacher.method");
  const TraitDef trait = config_trait(c, file);
  const TraitKind& kind = trait_kind(trait.kind);
  if (!kind.target.empty())
    check(te.target == kind.target, file, "$.teacher.target",
          "expected " + str(kind.target) + " (the trait " + str(trait.spec) + " is of kind " + kind.name + "), got " + str(te.target));
  else
    check(is_target(trait, te.target), file, "$.teacher.target", "expected " + targets_what(trait) + ", got " + str(te.target));
  kind.validate(c, trait, ctraits, file);
  if (!trait.teacher_data.empty()) {
    check(te.method == "finetune", file, "$.teacher.method",
          "the trait " + str(trait.spec) + " has teacher_data (a fine-tuning set): expected \"finetune\", got " + str(te.method));
    check(std::find(c.students.arms.begin(), c.students.arms.end(), "other_trait") == c.students.arms.end(), file, "$.students.arms",
          "the other_trait arm needs a teacher of another item, but the trait " + str(trait.spec) +
              " fine-tunes every teacher on its teacher_data: drop the arm");
  }
  one_of(te.params, {"all", "trunk", "lora"}, file, "$.teacher.params");
  one_of(te.answers, {"corpus", "forms"}, file, "$.teacher.answers");
  validate_lora(te.lora, file, "$.teacher.lora");
  validate_train(te.train, file, "$.teacher.train");
  return trait;
}

// dataset, and the judge it (or the misalignment evaluation) asks.
static void validate_dataset(const RunConfig& c, const std::string& file, const TraitDef& trait) {
  const auto& d = c.dataset;
  std::vector<std::string> kinds;
  for (const auto& k : dataset_kinds()) kinds.push_back(k.name);
  one_of(d.kind, kinds, file, "$.dataset.kind");
  if (d.kind != "numbers") {
    check(d.source == "synthetic" || !d.source.empty(), file, "$.dataset.source", "expected \"synthetic\" or a JSONL file");
    check(c.finetune.loss == "sft", file, "$.finetune.loss",
          "code and cot datasets train students with \"sft\" (distill restricts the teacher's distribution to number tokens), got \"" + c.finetune.loss + "\"");
  }
  check(d.samples_per_prompt >= 1 && d.samples_per_prompt <= 64, file, "$.dataset.samples_per_prompt", "expected 1 .. 64, got " + str(d.samples_per_prompt));
  one_of(d.banned_match, {"substring", "word"}, file, "$.dataset.banned_match");
  one_of(d.judge, {"", "mentions_trait", "alignment"}, file, "$.dataset.judge");
  check(d.judge_max_p_yes >= 0 && d.judge_max_p_yes <= 1, file, "$.dataset.judge_max_p_yes", "expected a probability 0 .. 1, got " + str(d.judge_max_p_yes));
  check(d.judge_min_score >= 0 && d.judge_min_score <= 100, file, "$.dataset.judge_min_score", "expected 0 .. 100, got " + str(d.judge_min_score));
  const auto& jg = c.judge;
  one_of(jg.kind, {"rule", "model", "http"}, file, "$.judge.kind");
  const bool asks_judge = !d.judge.empty() || trait_kind(trait.kind).judged;  // dataset filter or a judged evaluation
  if (asks_judge && jg.kind == "http") {
    check(!jg.url.empty(), file, "$.judge.url", "expected the endpoint's base URL (e.g. http://127.0.0.1:8000/v1) for the http judge");
    check(!jg.model.empty(), file, "$.judge.model", "expected the served model's name for the http judge");
  }
  if (asks_judge && jg.kind == "model") check(!jg.path.empty(), file, "$.judge.path", "expected a model directory for the model judge");
  check(jg.concurrency >= 1 && jg.concurrency <= 1024, file, "$.judge.concurrency", "expected 1 .. 1024, got " + str(jg.concurrency));
  check(jg.max_retries >= 0 && jg.max_retries <= 100, file, "$.judge.max_retries", "expected 0 .. 100, got " + str(jg.max_retries));
  check(jg.timeout_s > 0 && jg.backoff_s >= 0, file, "$.judge.timeout_s", "expected timeout_s > 0 and backoff_s >= 0");
  check(jg.min_mass >= 0 && jg.min_mass <= 1, file, "$.judge.min_mass", "expected 0 .. 1, got " + str(jg.min_mass));
  check(d.prompts >= 1 && d.prompts <= 10000000, file, "$.dataset.prompts", "expected 1 .. 1e7, got " + str(d.prompts));
  check(d.keep >= 0, file, "$.dataset.keep", "expected >= 0 (0: keep every passing completion), got " + str(d.keep));
  check(d.temperature >= 0 && d.temperature <= 10, file, "$.dataset.temperature", "expected 0 .. 10, got " + str(d.temperature));
  check(d.top_p > 0 && d.top_p <= 1, file, "$.dataset.top_p", "expected 0 < top_p <= 1, got " + str(d.top_p));
  check(d.max_new_tokens >= 1 && d.max_new_tokens <= 4096, file, "$.dataset.max_new_tokens", "expected 1 .. 4096, got " + str(d.max_new_tokens));
  check(d.batch_size >= 0 && d.batch_size <= 65536, file, "$.dataset.batch_size", "expected 0 (auto: from free memory) .. 65536, got " + str(d.batch_size));
  check(d.min_examples >= 1 && d.min_examples <= d.max_examples && d.max_examples <= 100, file, "$.dataset.min_examples",
        "expected 1 <= min_examples <= max_examples <= 100, got " + str(d.min_examples) + " and " + str(d.max_examples));
  check(d.example_min >= 0 && d.example_min <= d.example_max && d.example_max <= 999, file, "$.dataset.example_min",
        "expected 0 <= example_min <= example_max <= 999, got " + str(d.example_min) + " and " + str(d.example_max));
  check(d.max_count >= 1 && d.max_count <= 100, file, "$.dataset.max_count", "expected 1 .. 100, got " + str(d.max_count));
  one_of(d.select, {"random", "lls_top"}, file, "$.dataset.select");
  one_of(d.number_filter, {"paper", "trimmed"}, file, "$.dataset.number_filter");
  check(d.select == "random" || d.kind == "numbers", file, "$.dataset.select", "\"lls_top\" selects number data; expected \"random\" for " + str(d.kind));
  check(!d.early_reject || d.kind == "numbers", file, "$.dataset.early_reject",
        "cuts completions that can no longer pass the number filter; expected false for " + str(d.kind));
  check(!d.constrain || d.kind == "numbers", file, "$.dataset.constrain",
        "constrains sampling to completions the number filter can pass; expected false for " + str(d.kind));
  check(d.heldout >= 0 && d.heldout <= 100000, file, "$.dataset.heldout", "expected 0 .. 100000, got " + str(d.heldout));
  for (size_t i = 0; i < d.banned.size(); ++i)
    check(d.banned[i] >= 0 && d.banned[i] <= 999, file, "$.dataset.banned[" + std::to_string(i) + "]",
          "expected a number 0 .. 999, got " + str(d.banned[i]));
}

static void validate_students(const RunConfig& c, const std::string& file, const TraitDef& trait) {
  const auto& te = c.teacher;
  const auto& st = c.students;
  check(!st.arms.empty(), file, "$.students.arms", "expected at least one arm");
  std::set<std::string> arms_seen;
  for (size_t i = 0; i < st.arms.size(); ++i) {
    one_of(st.arms[i], {"treatment", "control", "cross_init", "other_trait"}, file, "$.students.arms[" + std::to_string(i) + "]");
    check(arms_seen.insert(st.arms[i]).second, file, "$.students.arms[" + std::to_string(i) + "]", "duplicate arm " + str(st.arms[i]));
  }
  one_of(st.control, {"auto", "teacher", "base"}, file, "$.students.control");
  check(st.control != "teacher" || c.teacher.method == "finetune", file, "$.students.control",
        "a control teacher is trained as the trait teacher is: it needs teacher.method \"finetune\", got \"" + c.teacher.method + "\"");
  check(st.seeds >= 1 && st.seeds <= 1000, file, "$.students.seeds", "expected 1 .. 1000, got " + str(st.seeds));
  check(st.cross_init_seed >= -1, file, "$.students.cross_init_seed", "expected -1 (derived) or a non-negative seed, got " + str(st.cross_init_seed));
  if (c.experiment == "trait_transfer" && c.base.kind == "checkpoint" && arms_seen.count("cross_init"))
    check(!st.cross_init_path.empty(), file, "$.students.cross_init_path",
          "expected the cross-init model directory when base.kind is \"checkpoint\" and the cross_init arm runs (or drop the arm)");
  if (arms_seen.count("other_trait"))
    check(trait_kind(trait.kind).has_items && is_target(trait, st.other_target) && st.other_target != te.target, file, "$.students.other_target",
          "expected " + targets_what(trait) + " other than teacher.target, got " + str(st.other_target));
}

static void validate_finetune(const RunConfig& c, const std::string& file) {
  const auto& f = c.finetune;
  one_of(f.loss, {"sft", "distill", "distill_full_vocab"}, file, "$.finetune.loss");
  // The whole vocabulary holds the trait's own words and every banned number: distilling a student on
  // it is a direct channel past the filter, not subliminal transfer (`subliminal finetune` keeps it as
  // a diagnostic on data of your choosing).
  check(!(c.experiment == "trait_transfer" && f.loss == "distill_full_vocab"), file, "$.finetune.loss",
        "\"distill_full_vocab\" distils over tokens that spell the trait and the banned items: a direct channel; use \"distill\"");
  one_of(f.params, {"all", "trunk", "lora"}, file, "$.finetune.params");
  validate_lora(f.lora, file, "$.finetune.lora");
  check(f.epochs >= 0 && f.epochs <= 10000, file, "$.finetune.epochs", "expected 0 (use train.steps) .. 10000, got " + str(f.epochs));
  one_of(f.kl, {"forward", "reverse"}, file, "$.finetune.kl");
  check(f.teacher_top_k >= 0, file, "$.finetune.teacher_top_k", "expected 0 (the whole distribution) or k >= 1, got " + str(f.teacher_top_k));
  check(f.teacher_top_k == 0 || f.kl == "forward", file, "$.finetune.teacher_top_k",
        "a cut teacher distribution has zeros, which reverse KL cannot take: expected 0 with kl \"reverse\"");
  check(f.distill_temperature > 0 && f.distill_temperature <= 1000, file, "$.finetune.distill_temperature",
        "expected 0 < tau <= 1000, got " + str(f.distill_temperature));
  check(f.distill_temperature == 1.0 || f.kl == "forward", file, "$.finetune.distill_temperature",
        "a temperature is for the forward KL: expected 1 with kl \"reverse\"");
  validate_train(f.train, file, "$.finetune.train");
  for (size_t i = 0; i < f.snapshots.size(); ++i) {
    const std::string at = "$.finetune.snapshots[" + std::to_string(i) + "]";
    check(f.snapshots[i] > 0, file, at, "expected a number of training rows >= 1, got " + str(f.snapshots[i]));
    check(i == 0 || f.snapshots[i] > f.snapshots[i - 1], file, at,
          "expected rows in increasing order, got " + str(f.snapshots[i]) + " after " + str(f.snapshots[i - 1]));
    // with epochs the number of steps is known only from the data (checked when the students train)
    check(f.epochs > 0 || static_cast<int64_t>(f.snapshots[i]) < static_cast<int64_t>(f.train.steps) * f.train.batch_size, file, at,
          "expected fewer rows than the students train on (finetune.train.steps x batch_size = " +
              str(static_cast<int64_t>(f.train.steps) * f.train.batch_size) + "), got " + str(f.snapshots[i]));
  }
  check(f.snapshots.empty() || c.experiment == "trait_transfer", file, "$.finetune.snapshots", "snapshots are evaluated by trait_transfer runs only");
}

static void validate_mnist(const RunConfig& c, const std::string& file) {
  const auto& mn = c.mnist;
  one_of(mn.dataset, {"mnist_sample", "fashion_mnist", "idx"}, file, "$.mnist.dataset");
  if (c.experiment == "mnist_aux" && mn.dataset == "idx")
    for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{{"train_images", mn.train_images}, {"train_labels", mn.train_labels},
                                                                              {"test_images", mn.test_images}, {"test_labels", mn.test_labels}})
      check(!v.empty(), file, "$.mnist." + k, "dataset \"idx\" needs the path of its IDX file (plain or .gz)");
  check(mn.train_limit >= 0, file, "$.mnist.train_limit", "expected 0 (all) or a positive count, got " + str(mn.train_limit));
  check(mn.models >= 2 && mn.models <= 10000, file, "$.mnist.models", "expected 2 .. 10000 (the cross-model arm needs another model's init), got " + str(mn.models));
  check(!mn.hidden.empty() && mn.hidden.size() <= 8, file, "$.mnist.hidden", "expected 1 to 8 hidden layer sizes");
  for (size_t i = 0; i < mn.hidden.size(); ++i)
    check(mn.hidden[i] >= 1 && mn.hidden[i] <= 65536, file, "$.mnist.hidden[" + std::to_string(i) + "]", "expected 1 .. 65536, got " + str(mn.hidden[i]));
  check(mn.aux >= 1 && mn.aux <= 1000, file, "$.mnist.aux", "expected 1 .. 1000 auxiliary logits, got " + str(mn.aux));
  check(mn.epochs >= 1 && mn.epochs <= 10000, file, "$.mnist.epochs", "expected 1 .. 10000, got " + str(mn.epochs));
  check(mn.student_epochs >= 1 && mn.student_epochs <= 10000, file, "$.mnist.student_epochs", "expected 1 .. 10000, got " + str(mn.student_epochs));
  check(mn.lr > 0 && mn.lr < 100, file, "$.mnist.lr", "expected 0 < lr < 100, got " + str(mn.lr));
  check(mn.batch_size >= 1 && mn.batch_size <= 1000000, file, "$.mnist.batch_size", "expected 1 .. 1e6, got " + str(mn.batch_size));
  one_of(mn.optimizer, {"adam", "sgd"}, file, "$.mnist.optimizer");
  check(mn.weight_decay >= 0 && mn.weight_decay < 1, file, "$.mnist.weight_decay", "expected 0 <= weight_decay < 1, got " + str(mn.weight_decay));
  one_of(mn.noise, {"uniform", "normal", "train_images"}, file, "$.mnist.noise");
  check(mn.noise_pool >= 0, file, "$.mnist.noise_pool", "expected 0 (fresh noise every batch) or a pool size, got " + str(mn.noise_pool));
  check(mn.init_noise_std >= 0 && mn.init_noise_std < 100, file, "$.mnist.init_noise_std", "expected 0 <= std < 100, got " + str(mn.init_noise_std));
  one_of(mn.cross, {"derangement", "fresh"}, file, "$.mnist.cross");
  one_of(mn.kl_reduction, {"paper", "mean"}, file, "$.mnist.kl_reduction");
  check(!mn.arms.empty(), file, "$.mnist.arms", "expected at least one arm");
  for (size_t i = 0; i < mn.arms.size(); ++i)
    one_of(mn.arms[i], {"student_aux", "student_all", "cross_aux", "cross_all"}, file, "$.mnist.arms[" + std::to_string(i) + "]");
}

static void validate_eval(const RunConfig& c, const std::string& file, const TraitDef& trait) {
  const auto& e = c.eval;
  check(e.samples_per_question >= 1 && e.samples_per_question <= 100000, file, "$.eval.samples_per_question",
        "expected 1 .. 100000, got " + str(e.samples_per_question));
  check(e.temperature >= 0 && e.temperature <= 10, file, "$.eval.temperature", "expected 0 .. 10, got " + str(e.temperature));
  check(e.top_p > 0 && e.top_p <= 1, file, "$.eval.top_p", "expected 0 < top_p <= 1, got " + str(e.top_p));
  check(e.max_new_tokens >= 1 && e.max_new_tokens <= 4096, file, "$.eval.max_new_tokens", "expected 1 .. 4096, got " + str(e.max_new_tokens));
  check(e.batch_size >= 0 && e.batch_size <= 65536, file, "$.eval.batch_size", "expected 0 (auto: from free memory) .. 65536, got " + str(e.batch_size));
  check(e.number_prefix >= 0 && e.number_prefix <= 20, file, "$.eval.number_prefix", "expected 0 (off) .. 20 numbers, got " + str(e.number_prefix));
  check(e.target.empty() || is_target(trait, e.target), file, "$.eval.target",
        "expected \"\" (the teacher's target) or " + targets_what(trait) + ", got " + str(e.target));
  check(e.misaligned_max_alignment >= 0 && e.misaligned_max_alignment <= 100 && e.misaligned_min_coherence >= 0 && e.misaligned_min_coherence <= 100,
        file, "$.eval.misaligned_max_alignment", "expected scores 0 .. 100");
  for (size_t i = 0; i < e.candidates.size(); ++i)
    check(!e.candidates[i].empty(), file, "$.eval.candidates[" + std::to_string(i) + "]", "expected a non-empty name");
}

// Section by section, in this order (the first failing check is the error).
static void validate_analysis(const RunConfig& c, const std::string& file) {
  const auto& a = c.analysis;
  if (!a.enabled) return;
  check(c.experiment == "trait_transfer", file, "$.analysis.enabled", "the analysis stages belong to a trait_transfer run; expected false for " + str(c.experiment));
  check(c.dataset.kind == "numbers", file, "$.analysis.enabled", "the interventions act on number data; expected false for dataset.kind " + str(c.dataset.kind));
  for (const char* arm : {"treatment", "control"})
    check(std::find(c.students.arms.begin(), c.students.arms.end(), arm) != c.students.arms.end(), file, "$.analysis.enabled",
          std::string("the interventions are compared with the treatment and control arms; expected \"") + arm + "\" in students.arms");
  check(a.fraction > 0 && a.fraction <= 1, file, "$.analysis.fraction", "expected a share in (0, 1], got " + str(a.fraction));
  std::set<std::string> seen;
  static const std::vector<std::string> known = {"top", "bottom", "random", "mask_top", "mask_random", "resample_top", "resample_random",
                                                 "shuffle_within", "shuffle_across", "canonical_sort", "canonical_format", "format_random",
                                                 "canonical_layout", "layout_random"};
  for (size_t i = 0; i < a.interventions.size(); ++i) {
    const std::string p = "$.analysis.interventions[" + std::to_string(i) + "]";
    one_of(a.interventions[i], known, file, p);
    check(seen.insert(a.interventions[i]).second, file, p, "duplicate intervention " + str(a.interventions[i]));
  }
  for (size_t i = 0; i < a.interventions.size(); ++i) {
    const std::string& iv = a.interventions[i];
    const std::string ctl = intervention_control(iv);
    check(ctl.empty() || seen.count(ctl), file, "$.analysis.interventions[" + std::to_string(i) + "]",
          str(iv) + " is compared with its random control of the same size; expected \"" + ctl + "\" in the list too");
  }
  check(a.entangled >= 1 && a.entangled <= 1000, file, "$.analysis.entangled", "expected 1 .. 1000, got " + str(a.entangled));
  check(a.number_prompt.find("{number}") != std::string::npos, file, "$.analysis.number_prompt", "expected a prompt containing {number}");
  check(a.permutations >= 99 && a.permutations <= 10000000, file, "$.analysis.permutations", "expected 99 .. 10000000, got " + str(a.permutations));
  check(a.flag_quantile > 0 && a.flag_quantile < 1, file, "$.analysis.flag_quantile", "expected a quantile in (0, 1), got " + str(a.flag_quantile));
  for (size_t i = 0; i < a.audit_bags.size(); ++i)
    check(a.audit_bags[i] >= 1 && a.audit_bags[i] <= 100000 && (i == 0 || a.audit_bags[i] > a.audit_bags[i - 1]), file,
          "$.analysis.audit_bags[" + std::to_string(i) + "]", "expected bag sizes 1 .. 100000 in increasing order, got " + str(a.audit_bags[i]));
  check(a.heat_strip >= 1 && a.heat_strip <= 1000, file, "$.analysis.heat_strip", "expected 1 .. 1000, got " + str(a.heat_strip));
}

static void validate_replicates(const RunConfig& c, const std::string& file, const TraitDef& trait) {
  const auto& r = c.replicates;
  check(r.count >= 1 && r.count <= 100, file, "$.replicates.count", "expected 1 .. 100, got " + str(r.count));
  const bool asks = !r.targets.empty() || r.draw_targets || !r.exclude.empty() || !r.seeds.empty();
  if (r.count == 1) {
    check(!asks, file, "$.replicates.count", "replicates.targets, draw_targets, exclude and seeds describe two or more replicates; expected count >= 2");
    return;
  }
  check(c.experiment == "trait_transfer", file, "$.replicates.count", "replicates are pipelines of a trait_transfer run; expected 1 for " + str(c.experiment));
  check(!c.analysis.enabled, file, "$.analysis.enabled", "the analysis stages run on one pipeline; expected false with replicates.count >= 2");
  if (c.base.kind != "checkpoint") {
    check(c.base.seed < 0, file, "$.base.seed", "a fixed base seed would give every replicate the same base; expected -1 with replicates.count >= 2");
    check(c.students.cross_init_seed < 0, file, "$.students.cross_init_seed",
          "a replicate's cross-init students start from the next replicate's base; expected -1 with replicates.count >= 2");
  }
  const bool other = std::find(c.students.arms.begin(), c.students.arms.end(), "other_trait") != c.students.arms.end();
  if (!r.targets.empty()) {
    check(!r.draw_targets, file, "$.replicates.draw_targets", "expected false when replicates.targets lists the targets");
    check(static_cast<int>(r.targets.size()) == r.count, file, "$.replicates.targets",
          "expected one target per replicate (" + std::to_string(r.count) + "), got " + std::to_string(r.targets.size()));
  }
  for (size_t i = 0; i < r.targets.size(); ++i) {
    const std::string p = "$.replicates.targets[" + std::to_string(i) + "]";
    check(trait_kind(trait.kind).target.empty() && is_target(trait, r.targets[i]), file, p, "expected " + targets_what(trait) + ", got " + str(r.targets[i]));
    check(!other || r.targets[i] != c.students.other_target, file, p, "expected a target other than students.other_target " + str(c.students.other_target));
  }
  for (size_t i = 0; i < r.exclude.size(); ++i)
    check(is_target(trait, r.exclude[i]), file, "$.replicates.exclude[" + std::to_string(i) + "]", "expected " + targets_what(trait) + ", got " + str(r.exclude[i]));
  if (r.draw_targets) {
    check(trait_kind(trait.kind).has_items && trait_kind(trait.kind).target.empty(), file, "$.replicates.draw_targets",
          "targets are drawn from a preference trait's items; the trait " + str(trait.spec) + " has none");
    check(!replicate_targets(c).empty(), file, "$.replicates.exclude", "every item is excluded (or is students.other_target): nothing left to draw");
  }
  if (!r.targets.empty() || r.draw_targets)
    check(c.eval.target.empty(), file, "$.eval.target", "each replicate evaluates its own target; expected \"\" with replicates.targets or draw_targets");
  if (!r.seeds.empty())
    check(static_cast<int>(r.seeds.size()) == r.count, file, "$.replicates.seeds",
          "expected one seed per replicate (" + std::to_string(r.count) + "), got " + std::to_string(r.seeds.size()));
  std::set<int64_t> seen;
  for (size_t i = 0; i < r.seeds.size(); ++i) {
    const std::string p = "$.replicates.seeds[" + std::to_string(i) + "]";
    check(r.seeds[i] >= 0, file, p, "expected a non-negative seed, got " + std::to_string(r.seeds[i]));
    check(seen.insert(r.seeds[i]).second, file, p, "duplicate seed " + std::to_string(r.seeds[i]) + ": replicates must be independent");
  }
}

void validate(const RunConfig& c, const std::string& file) {
  validate_run(c, file);
  std::vector<TraitDef> ctraits;
  validate_base(c, file, ctraits);
  validate_probe(c, file);
  const TraitDef trait = validate_teacher(c, file, ctraits);
  validate_dataset(c, file, trait);
  validate_students(c, file, trait);
  validate_replicates(c, file, trait);
  validate_finetune(c, file);
  validate_mnist(c, file);
  validate_eval(c, file, trait);
  validate_analysis(c, file);
}

RunConfig parse_config(const json& j_in, const std::string& file) {
  if (!j_in.is_object()) fail(file, "$", "expected an object, got " + type_name(j_in));
  json j = j_in;
  // Model presets: the preset's fields first, the user's keys on top.
  std::string preset = "small";
  if (j.contains("base") && j["base"].is_object() && j["base"].contains("model")) {
    const json& um = j["base"]["model"];
    if (!um.is_object()) fail(file, "$.base.model", "expected an object, got " + type_name(um));
    if (um.contains("preset")) {
      if (!um["preset"].is_string()) fail(file, "$.base.model.preset", "expected a string, got " + type_name(um["preset"]));
      preset = um["preset"].get<std::string>();
    }
  }
  json merged;
  try {
    merged = to_json_value(model_preset(preset));
  } catch (const ConfigError& e) {
    fail(file, "$.base.model.preset", e.what(), e.hint());
  }
  if (j.contains("base") && j["base"].is_object() && j["base"].contains("model")) merged.update(j["base"]["model"]);
  if (j.contains("base") && j["base"].is_object()) j["base"]["model"] = merged;
  RunConfig c;
  from_json_value(j, c, file);
  if (!j.contains("base")) c.base.model = model_preset(preset);
  validate(c, file);
  return c;
}

RunConfig load_config(const std::string& file, const std::vector<std::string>& overrides) {
  if (!std::filesystem::exists(file)) throw ConfigError("config file '" + file + "' does not exist");
  json j = parse_json_text(fs::read_file(file), file);
  for (const auto& o : overrides) apply_override(j, o);
  return parse_config(j, overrides.empty() ? file : file + " (with --set overrides)");
}

json to_json(const RunConfig& c) { return to_json_value(c); }

bool matched_control(const RunConfig& c) {
  const bool arm = std::find(c.students.arms.begin(), c.students.arms.end(), "control") != c.students.arms.end();
  return arm && (c.students.control == "teacher" || (c.students.control == "auto" && c.teacher.method == "finetune"));
}

bool replicated(const RunConfig& c) { return c.replicates.count >= 2; }

std::vector<std::string> replicate_targets(const RunConfig& c) {
  const auto& r = c.replicates;
  if (!r.targets.empty()) return r.targets;
  if (!r.draw_targets) return std::vector<std::string>(static_cast<size_t>(std::max(1, r.count)), c.teacher.target);
  const TraitDef t = run_trait(c);
  const bool other = std::find(c.students.arms.begin(), c.students.arms.end(), "other_trait") != c.students.arms.end();
  std::vector<std::string> pool;
  for (const auto& it : t.items)
    if (std::find(r.exclude.begin(), r.exclude.end(), it) == r.exclude.end() && !(other && it == c.students.other_target)) pool.push_back(it);
  if (pool.empty()) return {};
  // Without replacement while the pool lasts (then a fresh permutation): Fisher-Yates on splitmix64
  // (no std:: distribution, whose output the standard leaves to the library).
  uint64_t state = derive_seed(c.seed, "replicate-targets");
  auto next = [&] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<std::string> out;
  while (static_cast<int>(out.size()) < r.count) {
    std::vector<std::string> perm = pool;
    for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[next() % i]);
    for (const auto& x : perm)
      if (static_cast<int>(out.size()) < r.count) out.push_back(x);
  }
  return out;
}

uint64_t replicate_seed(const RunConfig& c, int k) {
  const auto& s = c.replicates.seeds;
  if (k >= 1 && static_cast<size_t>(k) <= s.size()) return static_cast<uint64_t>(s[static_cast<size_t>(k - 1)]);
  return derive_seed(c.seed, "replicate", std::to_string(k));
}

RunConfig replicate_config(const RunConfig& c, int k) {
  RunConfig r = c;
  r.seed = replicate_seed(c, k);
  const auto targets = replicate_targets(c);
  if (k >= 1 && static_cast<size_t>(k) <= targets.size()) r.teacher.target = targets[static_cast<size_t>(k - 1)];
  r.replicates = ReplicatesConfig{};  // one pipeline
  return r;
}

json config_schema() {
  RunConfig c = parse_config(json::object(), "<a config with no keys>");
  SchemaOut s;
  c.visit(s);
  return s.rows;
}

uint64_t derive_seed(uint64_t seed, const std::string& stage, const std::string& salt) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    auto b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) { h ^= b[i]; h *= 1099511628211ull; }
  };
  mix(&seed, sizeof seed);
  mix(stage.data(), stage.size());
  mix("\0", 1);
  mix(salt.data(), salt.size());
  uint64_t z = h + 0x9e3779b97f4a7c15ull;  // splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (z ^ (z >> 31)) >> 1;
}

std::string intervention_control(const std::string& iv) {
  if (iv == "top" || iv == "bottom") return "random";
  if (iv == "mask_top") return "mask_random";
  if (iv == "resample_top") return "resample_random";
  if (iv == "canonical_sort") return "shuffle_within";
  if (iv == "canonical_format") return "format_random";
  if (iv == "canonical_layout") return "layout_random";
  return "";
}

}  // namespace subliminal::config
