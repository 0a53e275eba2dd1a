// What every command that loads model directories does first (generate, finetune, eval, analyze,
// audit): the config with its --set overrides, threads, device and precision; --out required; and
// each model directory loaded onto the device in eval mode.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "subliminal/model/model_io.h"

namespace subliminal::cli {

struct Prepared {
  config::RunConfig cfg;
  torch::Device device{torch::kCPU};
  bool bf16 = false;
};

Prepared prepare_model_command(const std::string& config, const std::vector<std::string>& set, int threads, const std::string& out);

// `flag` names the option in the error when `dir` is empty (e.g. "--model", "--base").
model::LoadedModel load_command_model(const std::string& dir, const std::string& flag, const Prepared& p);

}  // namespace subliminal::cli
