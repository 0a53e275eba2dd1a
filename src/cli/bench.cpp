// `subliminal bench`: training tokens/s (fp32 vs bf16 autocast, side by side in one process) and
// generation tokens/s (KV cache vs full recompute), per model preset. Never a timed unit test.
#include <sys/resource.h>
#include <torch/torch.h>

#include <iostream>
#include <random>

#include "subliminal/cli/commands.h"
#include "subliminal/config/config.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/runtime.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"

namespace subliminal::cli {

using json = nlohmann::json;

static double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

int cmd_bench(const BenchArgs& a) {
  const int threads = model::setup_threads(a.threads);
  const int vocab = 1600;
  json out = {{"threads", threads}, {"bf16_matmul_hardware", model::cpu_has_bf16_matmul()}, {"presets", json::array()}};
  std::cout << "subliminal bench: " << threads << " threads, bf16 matmul hardware: "
            << (model::cpu_has_bf16_matmul() ? "yes" : "no") << "\n";
  for (const auto& preset : a.presets) {
    auto mc = config::model_preset(preset);
    auto cfg = model::LlamaConfig::from(mc, vocab);
    cfg.max_position_embeddings = std::max<int64_t>(cfg.max_position_embeddings, a.seq_len + a.gen_tokens + 16);
    // Random token sequences of the requested length; loss on every token.
    std::vector<text::Encoded> data;
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int> tokd(4, vocab - 1);
    for (int i = 0; i < a.batch_size * (a.steps + 2); ++i) {
      text::Encoded e;
      for (int t = 0; t < a.seq_len + 1; ++t) { e.ids.push_back(tokd(rng)); e.target.push_back(1); }
      data.push_back(std::move(e));
    }
    json pr = {{"preset", preset}};
    int64_t params = 0;
    for (bool bf16 : {false, true}) {
      model::LlamaForCausalLM m(cfg);
      model::init_weights(m, 1);
      params = m->num_parameters();
      train::TrainOptions to;
      to.cfg.steps = a.steps + 2;
      to.cfg.batch_size = a.batch_size;
      to.cfg.warmup_steps = 0;
      to.cfg.lr = 1e-4;
      to.cfg.loss_on = "all";
      to.bf16 = bf16;
      to.quiet = true;
      auto r = train::train_lm(m, data, to);  // the rate averages all steps, the 2 warm-up steps included
      pr[bf16 ? "train_bf16_tokens_per_s" : "train_fp32_tokens_per_s"] = r.tokens_per_s;
      const double flops_per_token = 6.0 * params;
      pr[bf16 ? "train_bf16_gflops" : "train_fp32_gflops"] = r.tokens_per_s * flops_per_token / 1e9;
    }
    pr["parameters"] = params;
    pr["train_bf16_over_fp32"] = pr["train_bf16_tokens_per_s"].get<double>() / pr["train_fp32_tokens_per_s"].get<double>();
    std::cout << fmt::format("[{}] {:.2f}M params  train tokens/s  fp32 {:.0f}  bf16 {:.0f}  ratio bf16/fp32 {:.2f}x\n",
                             preset, params / 1e6, pr["train_fp32_tokens_per_s"].get<double>(),
                             pr["train_bf16_tokens_per_s"].get<double>(), pr["train_bf16_over_fp32"].get<double>());
    if (!a.skip_generation) {
      model::LlamaForCausalLM m(cfg);
      model::init_weights(m, 1);
      std::vector<std::vector<int>> prompts;
      for (int i = 0; i < a.gen_batch; ++i) {
        std::vector<int> p;
        for (int t = 0; t < 32; ++t) p.push_back(tokd(rng));
        prompts.push_back(p);
      }
      for (bool bf16 : {false, true}) {
        for (bool cache : {true, false}) {
          generate::SampleOptions so;
          so.max_new_tokens = a.gen_tokens;
          so.batch_size = a.gen_batch;
          so.bf16 = bf16;
          so.use_cache = cache;
          generate::SampleStats st;
          const double t0 = log::now_seconds();
          generate::sample(m, prompts, so, &st);
          const double secs = log::now_seconds() - t0;
          std::string key = std::string(cache ? "gen_cached_" : "gen_nocache_") + (bf16 ? "bf16" : "fp32");
          pr[key + "_tokens_per_s"] = st.new_tokens / secs;
          pr[key + "_prefill_tokens_per_s"] = st.prefill_s > 0 ? st.prompt_tokens / st.prefill_s : 0.0;
        }
        std::string sfx = bf16 ? "bf16" : "fp32";
        double c = pr["gen_cached_" + sfx + "_tokens_per_s"], n = pr["gen_nocache_" + sfx + "_tokens_per_s"];
        pr["gen_cache_speedup_" + sfx] = c / n;
        std::cout << fmt::format("[{}] generate {} x {} new tokens ({})  cached {:.0f} tok/s  recompute {:.0f} tok/s  "
                                 "speed-up {:.1f}x  prefill {:.0f} tok/s\n",
                                 preset, a.gen_batch, a.gen_tokens, sfx, c, n, c / n,
                                 pr["gen_cached_" + sfx + "_prefill_tokens_per_s"].get<double>());
      }
    }
    pr["peak_rss_mb"] = peak_rss_mb();
    out["presets"].push_back(pr);
  }
  std::cout << fmt::format("peak resident memory {:.0f} MB\n", peak_rss_mb());
  if (!a.out.empty()) fs::write_file_atomic(a.out, out.dump(2) + "\n");
  return 0;
}

}  // namespace subliminal::cli
