// LoRA adapters: identity at init, training touches only them, exact merge; bf16 frozen base.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "subliminal/data/corpus.h"
#include "subliminal/data/numbers.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/eval/trait.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/train/finetune.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/fs.h"
#include "subliminal/run/runner.h"
#include "subliminal/experiments/stages.h"
#include "test_util.h"

using namespace subliminal;
using nlohmann::json;
namespace sfs = std::filesystem;
using testutil::tiny_lm;
using testutil::toy_data;



// ---- LoRA

TEST(LoraNumeric, FreshAdaptersAreIdentityTrainingTouchesOnlyThemAndMergeIsExact) {
  at::set_num_threads(1);
  auto m = tiny_lm(8, 61);
  auto ids = torch::randint(1, 61, {2, 10}, torch::kLong);
  torch::Tensor before;
  {
    torch::NoGradGuard ng;
    before = m->forward_causal(ids);
  }
  std::map<std::string, torch::Tensor> w0;
  for (auto& kv : m->named_parameters()) w0[kv.key()] = kv.value().detach().clone();
  config::LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8;
  lc.target_modules = {"q_proj", "v_proj", "down_proj"};
  model::add_lora(m, lc, 1);
  {
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::equal(m->forward_causal(ids), before));  // B = 0
  }
  auto t = model::lora_tensors(m);
  EXPECT_EQ(t.size(), 2u * 3 * 2);  // A and B x 3 modules x 2 layers
  EXPECT_EQ(t[0].first, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  // per layer: q 32->32, v 32->16 (2 kv heads x 8), down 64->32; A is (4, in), B is (out, 4)
  EXPECT_EQ(train::set_trainable(m, "lora"), 2 * (4 * 32 + 32 * 4 + 4 * 32 + 16 * 4 + 4 * 64 + 32 * 4));
  train::TrainOptions to;
  to.cfg.steps = 4;
  to.cfg.batch_size = 4;
  to.cfg.warmup_steps = 0;
  to.cfg.lr = 1e-2;
  to.quiet = true;
  train::train_lm(m, toy_data(8, 61, 3), to);
  for (auto& kv : m->named_parameters()) EXPECT_TRUE(torch::equal(kv.value(), w0[kv.key()])) << kv.key();
  torch::Tensor with_adapters;
  {
    torch::NoGradGuard ng;
    m->eval();
    with_adapters = m->forward_causal(ids);
  }
  EXPECT_GT((with_adapters - before).abs().max().item<double>(), 1e-4);  // the adapters learned something

  // PEFT layout, and an independent merge (tests/reference) gives the same logits as ours unmerged
  auto dir = testutil::temp_dir("lora_peft");
  model::save_peft_adapter((dir / "adapter").string(), m, lc);
  auto cfg = json::parse(fs::read_file(dir / "adapter" / "adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);
  auto st = model::read_safetensors((dir / "adapter" / "adapter_model.safetensors").string());
  EXPECT_EQ(st.tensors.size(), 12u);
  EXPECT_EQ(st.tensors.at("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight").sizes(), (std::vector<int64_t>{32, 4}));
  EXPECT_EQ(st.tensors.at("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight").sizes(), (std::vector<int64_t>{4, 64}));
  if (testutil::have_reference_torch()) {
    model::write_model_weights(dir.string(), model::named_weights(m), {});  // the base weights
    fs::write_file_atomic(dir / "config.json", m->cfg.to_hf().dump(2));
    std::vector<std::vector<int64_t>> idv(2);
    for (int b = 0; b < 2; ++b)
      for (int i = 0; i < 10; ++i) idv[b].push_back(ids[b][i].item<int64_t>());
    fs::write_file_atomic(dir / "ids.json", json({{"ids", idv}}).dump());
    std::string cmd = testutil::reference_python() + " " + testutil::source_dir() + "/tests/reference/hf_llama_reference.py " + dir.string() + " " +
                      (dir / "ids.json").string() + " " + (dir / "ref.json").string() + " " + (dir / "adapter").string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto ref = json::parse(fs::read_file(dir / "ref.json"))["logits"].get<std::vector<std::vector<std::vector<float>>>>();
    double worst = 0;
    for (int b = 0; b < 2; ++b)
      for (int i = 0; i < 10; ++i)
        for (int v = 0; v < 61; ++v) worst = std::max(worst, std::abs(double(ref[b][i][v]) - with_adapters[b][i][v].item<double>()));
    std::cout << "max |ours with adapters - reference with the PEFT adapter merged| = " << worst << "\n";
    EXPECT_LT(worst, 1e-4);
    if (const char* keep = std::getenv("SUBLIMINAL_EXPORT_CHECKPOINTS")) {  // for a check against real peft elsewhere
      const auto dst = std::filesystem::path(keep) / "lora_peft";
      std::filesystem::remove_all(dst);
      std::filesystem::copy(dir, dst, std::filesystem::copy_options::recursive);
      std::vector<std::vector<std::vector<float>>> lg(2, std::vector<std::vector<float>>(10, std::vector<float>(61)));
      for (int b = 0; b < 2; ++b)
        for (int i = 0; i < 10; ++i)
          for (int v = 0; v < 61; ++v) lg[b][i][v] = with_adapters[b][i][v].item<float>();
      fs::write_file_atomic(dst / "ours.json", json({{"ids", idv}, {"logits", lg}}).dump());
    }
  }
  {  // the PEFT files, read back onto a fresh copy of the base and merged, give the same function
    auto m2 = tiny_lm(8, 61);
    model::load_peft_adapter((dir / "adapter").string(), m2);
    torch::NoGradGuard ng;
    EXPECT_LT((m2->forward_causal(ids) - with_adapters).abs().max().item<double>(), 1e-5);
    fs::write_file_atomic(dir / "adapter" / "adapter_config.json", "{\"peft_type\": \"PREFIX_TUNING\"}");
    auto m3 = tiny_lm(8, 61);
    try {
      model::load_peft_adapter((dir / "adapter").string(), m3);
      ADD_FAILURE() << "a non-LoRA adapter was accepted";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("peft_type"), std::string::npos) << e.what();
    }
  }
  // merging into the weights gives the same function
  model::merge_lora(m);
  EXPECT_FALSE(model::has_lora(m));
  {
    torch::NoGradGuard ng;
    EXPECT_LT((m->forward_causal(ids) - with_adapters).abs().max().item<double>(), 1e-5);
  }
  sfs::remove_all(dir);
}

// lora.base_dtype bf16: the frozen projections held in bf16 under bf16 autocast train exactly as fp32
// weights rounded to bf16 do (autocast rounds them the same way), at half the memory; the merge
// goes back to fp32. "auto" picks bf16 only for bf16 checkpoints trained in bf16.
TEST(LoraNumeric, FrozenBaseInBf16EqualsTheRoundedFp32Base) {
  at::set_num_threads(1);
  config::LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8;
  auto held = tiny_lm(8, 61), rounded = tiny_lm(8, 61);
  {
    torch::NoGradGuard ng;
    for (auto& kv : rounded->named_parameters())
      if (kv.key().find("_proj.weight") != std::string::npos) kv.value().copy_(kv.value().to(torch::kBFloat16).to(torch::kFloat));
  }
  const int64_t saved = model::cast_projection_weights(held, lc.target_modules, torch::kBFloat16);
  EXPECT_GT(saved, 0);
  for (auto& kv : held->named_parameters())
    EXPECT_EQ(kv.value().scalar_type(), kv.key().find("_proj.weight") != std::string::npos ? torch::kBFloat16 : torch::kFloat) << kv.key();
  std::vector<double> losses[2];
  int k = 0;
  for (auto* m : {&held, &rounded}) {
    model::add_lora(*m, lc, 3);
    train::set_trainable(*m, "lora");
    train::TrainOptions to;
    to.cfg.steps = 4;
    to.cfg.batch_size = 4;
    to.cfg.warmup_steps = 0;
    to.cfg.lr = 1e-2;
    to.bf16 = true;
    to.quiet = true;
    auto r = train::train_lm(*m, toy_data(8, 61, 3), to);
    losses[k++] = {r.first_loss, r.final_loss};
  }
  EXPECT_EQ(losses[0], losses[1]);
  auto ta = model::lora_tensors(held), tb = model::lora_tensors(rounded);
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) EXPECT_TRUE(torch::equal(ta[i].second, tb[i].second)) << ta[i].first;
  model::merge_lora(held);
  model::merge_lora(rounded);
  auto wa = model::named_weights(held), wb = model::named_weights(rounded);
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(wa[i].second.scalar_type(), torch::kFloat) << wa[i].first;
    EXPECT_TRUE(torch::equal(wa[i].second, wb[i].second)) << wa[i].first;
  }
  // the choice
  const json bf16_ckpt = {{"torch_dtype", "bfloat16"}}, fp32_ckpt = {{"torch_dtype", "float32"}};
  EXPECT_TRUE(model::lora_base_in_bf16(lc, bf16_ckpt, true, "$.x"));
  EXPECT_FALSE(model::lora_base_in_bf16(lc, bf16_ckpt, false, "$.x"));
  EXPECT_FALSE(model::lora_base_in_bf16(lc, fp32_ckpt, true, "$.x"));
  lc.base_dtype = "bf16";
  EXPECT_TRUE(model::lora_base_in_bf16(lc, fp32_ckpt, true, "$.x"));
  EXPECT_THROW(model::lora_base_in_bf16(lc, fp32_ckpt, false, "$.x"), ConfigError);
  lc.base_dtype = "fp32";
  EXPECT_FALSE(model::lora_base_in_bf16(lc, bf16_ckpt, true, "$.x"));
}
