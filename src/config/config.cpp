// Config loading, presets, validation and seed derivation.
#include "subliminal/config/config.h"

#include <algorithm>
#include <filesystem>
#include <set>

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

static void one_of(const std::string& v, std::initializer_list<const char*> allowed, const std::string& file,
                   const std::string& path) {
  std::string list;
  for (auto a : allowed) {
    if (v == a) return;
    list += (list.empty() ? "" : ", ") + std::string("\"") + a + "\"";
  }
  std::vector<std::string> known(allowed.begin(), allowed.end());
  std::string best = closest_key(v, known);
  fail(file, path, "expected one of " + list + ", got \"" + v + "\"" + (best.empty() ? "" : "; did you mean \"" + best + "\"?"));
}

void validate(const RunConfig& c, const std::string& file) {
  check(!c.name.empty() && c.name.find('/') == std::string::npos && c.name != "." && c.name != "..", file,
        "$.name", "expected a non-empty name without '/', got " + str(c.name));
  one_of(c.experiment, {"pretrain"}, file, "$.experiment");
  check(c.threads >= 0 && c.threads <= 1024, file, "$.threads", "expected 0 (all cores) .. 1024, got " + str(c.threads));
  one_of(c.device, {"cpu", "cuda", "auto"}, file, "$.device");
  one_of(c.precision, {"fp32", "bf16", "auto"}, file, "$.precision");

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
                      {"mix_arithmetic", co.mix_arithmetic}})
    check(v >= 0, file, std::string("$.base.corpus.") + k, "expected a weight >= 0, got " + str(v));
  check(co.mix_animal_qa + co.mix_animal_system + co.mix_numbers + co.mix_arithmetic > 0, file, "$.base.corpus",
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
  check(co.prior_decay > 0 && co.prior_decay <= 1, file, "$.base.corpus.prior_decay",
        "expected 0 < decay <= 1, got " + str(co.prior_decay));
  check(co.system_prompt_fidelity >= 0 && co.system_prompt_fidelity <= 1, file,
        "$.base.corpus.system_prompt_fidelity", "expected a probability in [0, 1], got " + str(co.system_prompt_fidelity));

  const auto& t = b.tokenizer;
  one_of(t.model_type, {"bpe", "unigram"}, file, "$.base.tokenizer.model_type");
  int min_vocab = 256 + 16 + (t.numbers_as_tokens ? 1000 : 0) + 64;
  check(t.vocab_size >= min_vocab && t.vocab_size <= 65536, file, "$.base.tokenizer.vocab_size",
        "expected " + std::to_string(min_vocab) + " .. 65536 (256 byte pieces + specials" +
            (t.numbers_as_tokens ? " + 1000 number pieces" : "") + " + merges), got " + str(t.vocab_size));
  one_of(t.chat_template, {"chatml"}, file, "$.base.tokenizer.chat_template");

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

  const auto& tr = b.train;
  const std::string tp = "$.base.train";
  check(tr.steps >= 1, file, tp + ".steps", "expected >= 1, got " + str(tr.steps));
  check(tr.batch_size >= 1 && tr.batch_size <= 65536, file, tp + ".batch_size", "expected 1 .. 65536, got " + str(tr.batch_size));
  check(tr.lr > 0 && tr.lr < 1, file, tp + ".lr", "expected 0 < lr < 1, got " + str(tr.lr));
  check(tr.min_lr_ratio >= 0 && tr.min_lr_ratio <= 1, file, tp + ".min_lr_ratio", "expected 0 .. 1, got " + str(tr.min_lr_ratio));
  check(tr.warmup_steps >= 0 && tr.warmup_steps <= tr.steps, file, tp + ".warmup_steps",
        "expected 0 .. steps (" + str(tr.steps) + "), got " + str(tr.warmup_steps));
  check(tr.weight_decay >= 0, file, tp + ".weight_decay", "expected >= 0, got " + str(tr.weight_decay));
  check(tr.beta1 >= 0 && tr.beta1 < 1, file, tp + ".beta1", "expected 0 <= beta1 < 1, got " + str(tr.beta1));
  check(tr.beta2 >= 0 && tr.beta2 < 1, file, tp + ".beta2", "expected 0 <= beta2 < 1, got " + str(tr.beta2));
  check(tr.grad_clip >= 0, file, tp + ".grad_clip", "expected >= 0 (0: off), got " + str(tr.grad_clip));
  check(tr.checkpoint_every >= 0, file, tp + ".checkpoint_every", "expected >= 0 (0: only at the end), got " + str(tr.checkpoint_every));
  check(tr.log_every >= 1, file, tp + ".log_every", "expected >= 1, got " + str(tr.log_every));
  one_of(tr.loss_on, {"assistant", "all"}, file, tp + ".loss_on");
  one_of(tr.loss_weighting, {"token", "sequence"}, file, tp + ".loss_weighting");

  const auto& p = c.probe;
  check(p.samples_per_question >= 1 && p.samples_per_question <= 100000, file, "$.probe.samples_per_question",
        "expected 1 .. 100000, got " + str(p.samples_per_question));
  check(p.number_prompts >= 1 && p.number_prompts <= 1000000, file, "$.probe.number_prompts", "expected 1 .. 1e6, got " + str(p.number_prompts));
  check(p.temperature >= 0 && p.temperature <= 10, file, "$.probe.temperature", "expected 0 .. 10, got " + str(p.temperature));
  check(p.top_p > 0 && p.top_p <= 1, file, "$.probe.top_p", "expected 0 < top_p <= 1, got " + str(p.top_p));
  check(p.max_new_tokens >= 1 && p.max_new_tokens <= 4096, file, "$.probe.max_new_tokens", "expected 1 .. 4096, got " + str(p.max_new_tokens));
  check(p.batch_size >= 1 && p.batch_size <= 4096, file, "$.probe.batch_size", "expected 1 .. 4096, got " + str(p.batch_size));
  check(std::find(co.animals.begin(), co.animals.end(), p.target) != co.animals.end(), file, "$.probe.target",
        "expected one of base.corpus.animals, got " + str(p.target));
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

}  // namespace subliminal::config
