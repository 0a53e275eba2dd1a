// Model directory save/load.
#include "subliminal/model/model_io.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <set>

#include <spdlog/spdlog.h>

#include "subliminal/model/lora.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::model {

namespace sfs = std::filesystem;
using json = nlohmann::json;

NamedTensors named_weights(const LlamaForCausalLM& m) {
  NamedTensors out;
  for (const auto& kv : m->named_parameters()) out.emplace_back(kv.key(), kv.value());
  return out;
}

void load_weights(LlamaForCausalLM& m, const std::map<std::string, at::Tensor>& weights, const std::string& where) {
  torch::NoGradGuard ng;
  std::set<std::string> used;
  for (auto& kv : m->named_parameters()) {
    auto it = weights.find(kv.key());
    if (it == weights.end()) throw DataError(where + ": missing tensor '" + kv.key() + "'");
    if (it->second.sizes() != kv.value().sizes())
      throw DataError(where + ": tensor '" + kv.key() + "' has shape " + c10::str(it->second.sizes()) + ", the model expects " +
                      c10::str(kv.value().sizes()));
    kv.value().copy_(it->second.to(kv.value().device(), kv.value().scalar_type()));
    used.insert(kv.key());
  }
  for (const auto& [name, t] : weights) {
    if (used.count(name)) continue;
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // older HF checkpoints store it
    if (name == "lm_head.weight" && m->cfg.tie_word_embeddings) continue;
    throw DataError(where + ": unexpected tensor '" + name + "'");
  }
}

void save_model_dir(const std::string& dir, const LlamaForCausalLM& m, const text::Tokenizer& tok, const json& extra,
                    int64_t max_shard_bytes) {
  fs::make_dirs(dir);
  json cfg = m->cfg.to_hf();
  if (!extra.empty()) cfg["subliminal"] = extra;
  write_model_weights(dir, named_weights(m), {{"format", "pt"}}, max_shard_bytes);
  tok.save(dir);  // tokenizer files and tokenizer_config.json (chat template), as loaded or as trained
  if (!tok.files().count("generation_config.json")) {
    json eos = json::array();
    for (int id : tok.end_ids()) eos.push_back(id);
    json gen = {{"bos_token_id", tok.bos_id()}, {"eos_token_id", eos}, {"pad_token_id", tok.pad_id()}};
    fs::write_file_atomic(sfs::path(dir) / "generation_config.json", gen.dump(2));
  }
  fs::write_file_atomic(sfs::path(dir) / "config.json", cfg.dump(2));
}

int64_t available_memory_bytes() {
  if (const char* e = std::getenv("SUBLIMINAL_MEMORY_LIMIT_BYTES")) return std::atoll(e);  // tests, and shared nodes
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return -1;  // unknown: no check
}

void check_memory(const LlamaConfig& cfg, const std::string& where) {
  const int64_t params = cfg.parameter_count();
  const int64_t need = params * 4;  // fp32 master weights (the file itself is memory-mapped, not copied)
  const int64_t avail = available_memory_bytes();
  auto gib = [](int64_t b) { return b >= (int64_t(1) << 30) ? fmt::format("{:.2f} GiB", b / 1073741824.0) : fmt::format("{:.1f} MiB", b / 1048576.0); };
  spdlog::info("[model] {}: {} parameters ({}), {} as fp32 weights; {} of memory available", where, params, cfg.model_type, gib(need),
               avail >= 0 ? gib(avail) : "unknown");
  if (avail >= 0 && need > avail)
    throw ResourceError("'" + where + "' has " + std::to_string(params) + " parameters: " + gib(need) +
                            " as fp32 weights, more than the " + gib(avail) + " of memory available",
                        "use a machine with more memory, or a smaller model");
}

// An adapter-only model directory (lora.save "adapter"): the base named by adapter_config.json's
// base_model_name_or_path (relative to the adapter directory, or absolute) with the adapter merged.
static LoadedModel load_adapter_only(const sfs::path& adapter, int depth) {
  const auto cpath = adapter / "adapter_config.json";
  json c;
  try {
    c = json::parse(fs::read_file(cpath));
  } catch (const json::exception& e) {
    throw DataError(cpath.string() + ": invalid JSON (" + e.what() + ")");
  }
  const std::string base = c.value("base_model_name_or_path", json("")).is_string() ? c.value("base_model_name_or_path", "") : "";
  if (base.empty())
    throw DataError(cpath.string() + ": field \"base_model_name_or_path\" is empty; an adapter-only model directory needs its base model's path");
  const sfs::path bp = sfs::path(base).is_absolute() ? sfs::path(base) : (adapter / base).lexically_normal();
  if (!sfs::exists(bp / "config.json") && !sfs::exists(bp / "adapter" / "adapter_config.json"))
    throw IoError(cpath.string() + ": base_model_name_or_path \"" + base + "\" resolves to '" + bp.string() + "', which is not a model directory");
  if (depth > 8) throw DataError(cpath.string() + ": adapters stacked more than 8 deep (a cycle?)");
  LoadedModel lm = sfs::exists(bp / "config.json") ? load_model_dir(bp.string()) : load_adapter_only(bp / "adapter", depth + 1);
  load_peft_adapter(adapter.string(), lm.model);
  return lm;
}

LoadedModel load_model_dir(const std::string& dir) {
  sfs::path cfg_path = sfs::path(dir) / "config.json";
  if (!sfs::exists(cfg_path) && sfs::exists(sfs::path(dir) / "adapter" / "adapter_config.json"))
    return load_adapter_only(sfs::path(dir) / "adapter", 0);
  if (!sfs::exists(cfg_path)) throw IoError("'" + dir + "' is not a model directory: no config.json");
  json j;
  try {
    j = json::parse(fs::read_file(cfg_path));
  } catch (const json::exception& e) {
    throw DataError(cfg_path.string() + ": invalid JSON (" + e.what() + ")");
  }
  LoadedModel out{nullptr, text::Tokenizer::load(dir), j};
  auto cfg = LlamaConfig::from_hf(j, cfg_path.string());
  check_memory(cfg, dir);
  if (cfg.vocab_size < out.tokenizer.vocab_size())
    throw DataError(cfg_path.string() + ": vocab_size " + std::to_string(cfg.vocab_size) + " is smaller than the tokenizer's " +
                    std::to_string(out.tokenizer.vocab_size()));
  out.model = LlamaForCausalLM(cfg);
  load_weights(out.model, read_model_weights(dir), dir);
  out.model->eval();
  return out;
}

}  // namespace subliminal::model
