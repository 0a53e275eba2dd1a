#include "model_command.h"

#include "subliminal/cli/commands.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/runtime.h"
#include "subliminal/util/error.h"

namespace subliminal::cli {

Prepared prepare_model_command(const std::string& config, const std::vector<std::string>& set, int threads, const std::string& out) {
  Prepared p;
  p.cfg = load_cli_config(config, set);
  model::setup_threads(threads > 0 ? threads : p.cfg.threads);
  model::set_attention_path(model::attention_path_from(p.cfg.attention));
  p.device = model::resolve_device(p.cfg.device);
  p.bf16 = model::use_bf16(p.cfg.precision, p.device);
  if (out.empty()) throw ConfigError("--out is required (a directory for the results)");
  return p;
}

model::LoadedModel load_command_model(const std::string& dir, const std::string& flag, const Prepared& p) {
  if (dir.empty()) throw ConfigError(flag + " is required (a model directory: config.json, model.safetensors, a tokenizer)");
  auto lm = model::load_model_dir(dir);
  lm.model->to(p.device);
  lm.model->eval();
  return lm;
}

}  // namespace subliminal::cli
