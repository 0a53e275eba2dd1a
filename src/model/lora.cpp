// LoRA adapters.
#include "subliminal/model/lora.h"

#include <torch/torch.h>

#include <filesystem>

#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::model {

namespace {

// (layer index, "self_attn"|"mlp", adapter map, linear) for every projection of the model.
template <class F>
void for_each_projection(LlamaForCausalLM& m, F&& f) {
  for (size_t i = 0; i < m->model->layers->size(); ++i) {
    auto layer = m->model->layers[i]->as<DecoderLayerImpl>();
    auto* at = layer->self_attn.get();
    auto* mlp = layer->mlp.get();
    for (auto [name, lin] : {std::pair<const char*, torch::nn::Linear*>{"q_proj", &at->q_proj}, {"k_proj", &at->k_proj},
                             {"v_proj", &at->v_proj}, {"o_proj", &at->o_proj}})
      f(i, "self_attn", name, at->lora, *lin);
    for (auto [name, lin] : {std::pair<const char*, torch::nn::Linear*>{"gate_proj", &mlp->gate_proj}, {"up_proj", &mlp->up_proj},
                             {"down_proj", &mlp->down_proj}})
      f(i, "mlp", name, mlp->lora, *lin);
  }
}

std::string peft_name(size_t layer, const char* block, const std::string& proj, const char* ab) {
  return "base_model.model.model.layers." + std::to_string(layer) + "." + block + "." + proj + ".lora_" + ab + ".weight";
}

}  // namespace

void add_lora(LlamaForCausalLM& m, const config::LoraConfig& c, uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(seed);
  const auto device = m->parameters().front().device();
  for_each_projection(m, [&](size_t, const char*, const char* name, std::map<std::string, LoraAdapter>& lora, torch::nn::Linear& lin) {
    if (std::find(c.target_modules.begin(), c.target_modules.end(), name) == c.target_modules.end()) return;
    const int64_t in = lin->weight.size(1), out = lin->weight.size(0);
    LoraAdapter a;
    // PEFT: nn.init.kaiming_uniform_(A, a=sqrt(5)) => U(-1/sqrt(in), 1/sqrt(in)); B = 0.
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    a.A = torch::empty({c.r, in}, torch::kFloat).uniform_(-bound, bound, gen).to(device).set_requires_grad(true);
    a.B = torch::zeros({out, c.r}, torch::TensorOptions().dtype(torch::kFloat).device(device)).set_requires_grad(true);
    a.scale = c.alpha / c.r;
    a.dropout = c.dropout;
    lora[name] = a;
  });
}

bool has_lora(const LlamaForCausalLM& m) { return !lora_tensors(m).empty(); }

NamedTensors lora_tensors(const LlamaForCausalLM& cm) {
  NamedTensors out;
  auto m = cm;  // holder copy
  for_each_projection(m, [&](size_t i, const char* block, const char* name, std::map<std::string, LoraAdapter>& lora, torch::nn::Linear&) {
    auto it = lora.find(name);
    if (it == lora.end()) return;
    out.emplace_back(peft_name(i, block, name, "A"), it->second.A);
    out.emplace_back(peft_name(i, block, name, "B"), it->second.B);
  });
  return out;
}

void load_lora_tensors(LlamaForCausalLM& m, const std::map<std::string, at::Tensor>& t, const std::string& where) {
  torch::NoGradGuard ng;
  for (auto& [name, tensor] : lora_tensors(m)) {
    auto it = t.find(name);
    if (it == t.end()) throw DataError(where + ": missing LoRA tensor '" + name + "'");
    if (it->second.sizes() != tensor.sizes()) throw DataError(where + ": LoRA tensor '" + name + "' has the wrong shape");
    tensor.copy_(it->second);
  }
}

int64_t cast_projection_weights(LlamaForCausalLM& m, const std::vector<std::string>& modules, c10::ScalarType dtype) {
  torch::NoGradGuard ng;
  clear_fused_caches(m);  // new storage for the weights
  int64_t saved = 0;
  for_each_projection(m, [&](size_t, const char*, const char* name, std::map<std::string, LoraAdapter>&, torch::nn::Linear& lin) {
    if (std::find(modules.begin(), modules.end(), name) == modules.end() || lin->weight.scalar_type() == dtype) return;
    saved += lin->weight.numel() * (static_cast<int64_t>(lin->weight.element_size()) - static_cast<int64_t>(c10::elementSize(dtype)));
    lin->weight.set_data(lin->weight.to(dtype));
  });
  return saved;
}

bool lora_base_in_bf16(const config::LoraConfig& c, const nlohmann::json& hf_config, bool bf16_autocast, const std::string& field) {
  if (c.base_dtype == "fp32") return false;
  if (c.base_dtype == "bf16") {
    if (!bf16_autocast)
      throw ConfigError(field + " is \"bf16\" but training runs in fp32", "set precision to \"bf16\" (or \"auto\" on hardware with bf16), or base_dtype to \"fp32\"");
    return true;
  }
  return bf16_autocast && hf_config.is_object() && hf_config.value("torch_dtype", nlohmann::json("")) == "bfloat16";
}

void merge_lora(LlamaForCausalLM& m) {
  torch::NoGradGuard ng;
  clear_fused_caches(m);
  for_each_projection(m, [&](size_t, const char*, const char* name, std::map<std::string, LoraAdapter>& lora, torch::nn::Linear& lin) {
    auto it = lora.find(name);
    if (it == lora.end()) return;
    if (lin->weight.scalar_type() != torch::kFloat) lin->weight.set_data(lin->weight.to(torch::kFloat));  // a bf16-held frozen base
    lin->weight.add_(torch::matmul(it->second.B, it->second.A) * it->second.scale);
    lora.erase(it);
  });
}

void save_peft_adapter(const std::string& dir, const LlamaForCausalLM& m, const config::LoraConfig& c, const std::string& base_model) {
  fs::make_dirs(dir);
  NamedTensors t;
  for (auto& [n, x] : lora_tensors(m)) t.emplace_back(n, x.detach().to(torch::kCPU).contiguous());
  if (t.empty()) throw Error("save_peft_adapter: the model has no LoRA adapters");
  write_safetensors((std::filesystem::path(dir) / "adapter_model.safetensors").string(), t, {{"format", "pt"}});
  nlohmann::json cfg = {{"peft_type", "LORA"},
                        {"task_type", "CAUSAL_LM"},
                        {"r", c.r},
                        {"lora_alpha", c.alpha},
                        {"lora_dropout", c.dropout},
                        {"target_modules", c.target_modules},
                        {"bias", "none"},
                        {"fan_in_fan_out", false},
                        {"inference_mode", true},
                        {"init_lora_weights", true},
                        {"modules_to_save", nullptr},
                        {"base_model_name_or_path", base_model}};
  fs::write_file_atomic(std::filesystem::path(dir) / "adapter_config.json", cfg.dump(2) + "\n");
}

void load_peft_adapter(const std::string& dir, LlamaForCausalLM& m, bool merge) {
  const auto cpath = std::filesystem::path(dir) / "adapter_config.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(fs::read_file(cpath));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(cpath.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (j.value("peft_type", std::string()) != "LORA")
    throw DataError(cpath.string() + ": field \"peft_type\" is " + j.value("peft_type", nlohmann::json("missing")).dump() + ", expected \"LORA\"");
  if (j.value("fan_in_fan_out", false)) throw DataError(cpath.string() + ": field \"fan_in_fan_out\" true is not supported");
  if (j.value("bias", std::string("none")) != "none") throw DataError(cpath.string() + ": field \"bias\" must be \"none\"");
  config::LoraConfig c;
  c.r = j.at("r").get<int>();
  c.alpha = j.at("lora_alpha").get<double>();
  c.dropout = 0.0;
  c.target_modules = j.at("target_modules").get<std::vector<std::string>>();
  add_lora(m, c, 0);
  auto st = read_safetensors((std::filesystem::path(dir) / "adapter_model.safetensors").string());
  load_lora_tensors(m, st.tensors, dir);
  if (merge) merge_lora(m);
}

}  // namespace subliminal::model
