// `subliminal bench`: speed and memory, side by side in one run (these machines are shared and
// noisy: only ratios measured together mean something). Per model preset: training tokens/s
// (forward + backward + AdamW step) fp32 and bf16 autocast; batched generation with the KV cache,
// prefill and decode separately, and the no-cache recompute; evaluation samples/s (the eval's
// shapes); then the same work in Python PyTorch (data/bench_reference.py, run by the python whose
// torch is the version of the LibTorch we built against: eager, and torch.compile'd training where
// it runs) right after, and the ratios. Model FLOP utilisation against the machine's matmul peak,
// measured here with large fp32 and bf16 GEMMs. Never a timed unit test.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <filesystem>
#include <iostream>
#include <random>

#include "subliminal/text/chat_template.h"
#include "subliminal/cli/commands.h"
#include "subliminal/config/config.h"
#include "subliminal/config/trait.h"
#include "subliminal/util/resources.h"
#include "subliminal/data/numbers.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/runtime.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"

namespace subliminal::cli {

using json = nlohmann::json;

namespace {

double peak_rss_mb(int who = RUSAGE_SELF) {
  rusage ru{};
  getrusage(who, &ru);
  return ru.ru_maxrss / 1024.0;
}

// The machine's matmul peak: GFLOP/s of an n x n x n GEMM (the best of `reps` after one warm-up).
double gemm_gflops(int64_t n, torch::ScalarType dt, int reps = 5) {
  torch::NoGradGuard ng;
  auto a = torch::randn({n, n}).to(dt), b = torch::randn({n, n}).to(dt);
  auto c = torch::matmul(a, b);
  double best = 0;
  for (int i = 0; i < reps; ++i) {
    const double t0 = log::now_seconds();
    c = torch::matmul(a, b);
    const double s = log::now_seconds() - t0;
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

// Training FLOPs per token: 6 x the matmul weights (forward 2, backward 4) + attention's two
// T x T products per layer (12 L T C: forward 4 L T C, backward twice that); norms and the
// optimizer step are not counted (the usual MFU convention).
double train_flops_per_token(const model::LlamaConfig& c, int64_t seq_len) {
  const double C = static_cast<double>(c.hidden_size), L = static_cast<double>(c.num_hidden_layers);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim()), kv = static_cast<double>(c.num_key_value_heads * c.head_dim());
  const double per_layer = C * q + 2 * C * kv + q * C + 3 * C * static_cast<double>(c.intermediate_size);
  const double matmul_weights = L * per_layer + C * static_cast<double>(c.vocab_size);
  return 6 * matmul_weights + 12 * L * static_cast<double>(seq_len) * q;
}

// The ops with the most self time in a Chrome trace of the legacy profiler (complete "X" events, nested
// by time on each thread): [{name, self_ms, calls, share}], largest first.
json top_ops(const std::string& trace, size_t n) {
  json t = json::parse(fs::read_file(trace));
  const json& evs = t.is_array() ? t : t.at("traceEvents");
  struct Ev {
    double ts, dur;
    std::string name;
  };
  std::map<std::string, std::vector<Ev>> by_tid;
  for (const auto& e : evs)
    if (e.value("ph", "") == "X") by_tid[e.value("tid", json(0)).dump()].push_back({e.value("ts", 0.0), e.value("dur", 0.0), e.value("name", "")});
  std::map<std::string, std::pair<double, int64_t>> self;  // name -> (self us, calls)
  double total = 0;
  for (auto& [tid, v] : by_tid) {
    std::sort(v.begin(), v.end(), [](const Ev& x, const Ev& y) { return x.ts < y.ts || (x.ts == y.ts && x.dur > y.dur); });
    std::vector<size_t> stack;
    std::vector<double> child(v.size(), 0.0);
    auto close = [&](size_t i) {
      self[v[i].name].first += std::max(0.0, v[i].dur - child[i]);
      self[v[i].name].second += 1;
    };
    for (size_t i = 0; i < v.size(); ++i) {
      while (!stack.empty() && v[stack.back()].ts + v[stack.back()].dur <= v[i].ts) {
        close(stack.back());
        stack.pop_back();
      }
      if (stack.empty()) total += v[i].dur;
      else child[stack.back()] += v[i].dur;
      stack.push_back(i);
    }
    for (auto it = stack.rbegin(); it != stack.rend(); ++it) close(*it);
  }
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(self.begin(), self.end());
  std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return x.second.first > y.second.first; });
  json out = json::array();
  for (size_t i = 0; i < rows.size() && i < n; ++i)
    out.push_back({{"name", rows[i].first}, {"self_ms", rows[i].second.first / 1000.0}, {"calls", rows[i].second.second},
                   {"share", total > 0 ? rows[i].second.first / total : 0.0}});
  return out;
}

std::string format_top_ops(const json& ops) {
  std::string s;
  for (const auto& o : ops)
    s += fmt::format("\n      {:5.1f}%  {:9.1f} ms  {:6d}x  {}", 100 * o["share"].get<double>(), o["self_ms"].get<double>(),
                     o["calls"].get<int64_t>(), o["name"].get<std::string>());
  return s;
}

// Runs the Python reference with `args`; its JSON (the last line of its stdout), or an object
// with "error".
json run_reference(const std::string& python, const json& args, const std::string& resource = "data/bench_reference.py") {
  const auto tmp = std::filesystem::temp_directory_path();
  const std::string tag = std::to_string(::getpid());
  const std::string script = (tmp / ("subliminal_bench_reference_" + tag + ".py")).string();
  const std::string err = (tmp / ("subliminal_bench_reference_" + tag + ".err")).string();
  fs::write_file_atomic(script, resources::resource(resource));
  auto quote = [](const std::string& s) {  // single-quoted for /bin/sh
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  // Arguments over 100 kB (token ids) go through a file, "@path": one argument may hold at most 128 kB.
  const std::string argfile = (tmp / ("subliminal_bench_reference_" + tag + ".json")).string();
  std::string arg = args.dump();
  if (arg.size() > 100000) {
    fs::write_file_atomic(argfile, arg);
    arg = "@" + argfile;
  }
  const std::string cmd = quote(python) + " " + quote(script) + " " + quote(arg) + " 2>" + quote(err);
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  if (p) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  }
  const int st = p ? pclose(p) : -1;
  const int code = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::string stderr_text;
  if (std::filesystem::exists(err)) stderr_text = fs::read_file(err);
  std::error_code ec;
  std::filesystem::remove(script, ec);
  std::filesystem::remove(err, ec);
  std::filesystem::remove(argfile, ec);
  if (code == 0) {  // the result: the last line of stdout that is a JSON object
    const auto lines = resources::split_lines(out);
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
      try {
        json j = json::parse(*it);
        if (j.is_object()) return j;
      } catch (const json::exception&) {
      }
    }
  }
  const std::string tail = stderr_text.substr(stderr_text.size() > 600 ? stderr_text.size() - 600 : 0);
  return {{"error", "the Python reference (" + python + ") failed (exit " + std::to_string(code) + "): " + tail}};
}

std::string ratio(double a, double b) { return b > 0 ? fmt::format("{:.2f}x", a / b) : "n/a"; }

}  // namespace

// `bench --compare A.json B.json ...`: the speed metrics of bench results side by side, each as a
// ratio to the first file's (e.g. the same bench built against two LibTorch versions, run
// alternately: scripts/bench_libtorch.sh).
int bench_compare(const std::vector<std::string>& files) {
  std::vector<json> runs;
  for (const auto& f : files) {
    json j;
    try {
      j = json::parse(fs::read_file(f));
    } catch (const json::exception& e) {
      throw DataError(f + ": not a bench result (" + e.what() + ")");
    }
    if (!j.contains("presets") || !j["presets"].is_array()) throw DataError(f + ": not a bench result (no \"presets\" array)");
    runs.push_back(std::move(j));
  }
  std::cout << "bench results compared (ratio = file / first file):\n";
  for (size_t i = 0; i < runs.size(); ++i)
    std::cout << fmt::format("  [{}] {}: {}\n", i, files[i], runs[i].value("libtorch", std::string("LibTorch ?")));
  auto is_rate = [](const std::string& k) {
    auto ends = [&](const std::string& sfx) { return k.size() >= sfx.size() && k.compare(k.size() - sfx.size(), sfx.size(), sfx) == 0; };
    return ends("_tokens_per_s") || ends("samples_per_s") || k == "peak_rss_mb";
  };
  for (const auto& p0 : runs[0]["presets"]) {
    const std::string preset = p0.value("preset", "");
    std::cout << "[" << preset << "]\n";
    for (const auto& [k, v0] : p0.items()) {
      if (!is_rate(k) || !v0.is_number()) continue;
      std::string line = fmt::format("  {:<48} {:>10.0f}", k, v0.get<double>());
      for (size_t i = 1; i < runs.size(); ++i) {
        const json* pi = nullptr;
        for (const auto& p : runs[i]["presets"])
          if (p.value("preset", "") == preset) pi = &p;
        if (pi && pi->contains(k) && (*pi)[k].is_number())
          line += fmt::format("  {:>10.0f} ({})", (*pi)[k].get<double>(), ratio((*pi)[k].get<double>(), v0.get<double>()));
        else
          line += fmt::format("  {:>10} {:7}", "-", "");
      }
      std::cout << line << "\n";
    }
  }
  return 0;
}

// What every part of one preset's measurement shares.
struct BenchShape {
  const BenchArgs& a;
  std::string preset;
  model::LlamaConfig cfg;
  int threads;
  bool amx, with_bf16;
  std::vector<bool> precisions;
  double peak_fp32, peak_bf16, fpt;  // the matmul peaks; training FLOPs per token
};

// Training throughput in every precision/attention setting, into pr["train_<setting>_*"].
static void bench_train(const BenchShape& b, const std::vector<text::Encoded>& data, json& pr) {
  const BenchArgs& a = b.a;
  const auto& cfg = b.cfg;
  const auto& preset = b.preset;
  const auto& precisions = b.precisions;
  const bool with_bf16 = b.with_bf16;
  const double peak_fp32 = b.peak_fp32, peak_bf16 = b.peak_bf16, fpt = b.fpt;
  int64_t params = 0;
  // fp32, bf16, bf16 with the fused q/k/v and gate/up GEMMs, and (where LibTorch has the fused
  // attention, used by default) fp32 and bf16 with attention composed of matmul + mask + softmax:
  // optimisations' before/after
  const int settings = model::sdpa_available() ? 5 : 3;
  for (int setting = 0; setting < settings; ++setting) {
    const bool bf16 = setting == 1 || setting == 2 || setting == 4, fused = setting == 2, composed = setting >= 3;
    if (bf16 && !with_bf16) continue;
    model::LlamaForCausalLM m(cfg);
    model::init_weights(m, 1);
    if (fused) model::set_fused_projections(m, true);
    if (composed) model::set_sdpa_attention(m, false);
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
    const std::string s = std::string(bf16 ? "bf16" : "fp32") + (fused ? "_fused" : composed ? "_composed_attention" : "");
    if (!a.profile.empty()) {  // once more, under the profiler (its overhead stays out of the timed rate)
      fs::make_dirs(a.profile);
      const auto trace = (std::filesystem::path(a.profile) / ("train_" + preset + "_" + s + ".json")).string();
      {
        torch::autograd::profiler::RecordProfile rp(trace);
        train::train_lm(m, data, to);
      }
      pr["train_" + s + "_profile"] = top_ops(trace, 12);
      std::cout << fmt::format("  profile of training {} ({}): {}\n", s, trace, format_top_ops(pr["train_" + s + "_profile"]));
    }
    pr["train_" + s + "_tokens_per_s"] = r.tokens_per_s;
    pr["train_" + s + "_gflops"] = r.tokens_per_s * fpt / 1e9;
    pr["train_" + s + "_mfu"] = r.tokens_per_s * fpt / 1e9 / (bf16 ? peak_bf16 : peak_fp32);
  }
  pr["parameters"] = params;
  pr["train_flops_per_token"] = fpt;
  std::cout << fmt::format("[{}] {:.2f}M params, batch {} x {} tokens\n", preset, params / 1e6, a.batch_size, a.seq_len);
  for (bool bf16 : precisions) {
    const std::string s = bf16 ? "bf16" : "fp32";
    std::cout << fmt::format("  train  ours    {} {:8.0f} tok/s ({:.0f} GFLOP/s, MFU {:.0f}%)\n", s, pr["train_" + s + "_tokens_per_s"].get<double>(),
                             pr["train_" + s + "_gflops"].get<double>(), 100 * pr["train_" + s + "_mfu"].get<double>());
  }
  if (with_bf16)
    std::cout << fmt::format("  train  ours    bf16 with fused q/k/v, gate/up GEMMs {:.0f} tok/s: fused / plain {}\n",
                             pr["train_bf16_fused_tokens_per_s"].get<double>(),
                             ratio(pr["train_bf16_fused_tokens_per_s"].get<double>(), pr["train_bf16_tokens_per_s"].get<double>()));
  if (model::sdpa_available())
    for (bool bf16 : precisions) {
      const std::string s = bf16 ? "bf16" : "fp32";
      std::cout << fmt::format("  train  ours    {} with attention composed of matmul + softmax {:.0f} tok/s: fused attention / composed {}\n", s,
                               pr["train_" + s + "_composed_attention_tokens_per_s"].get<double>(),
                               ratio(pr["train_" + s + "_tokens_per_s"].get<double>(), pr["train_" + s + "_composed_attention_tokens_per_s"].get<double>()));
    }

}

// Cached and uncached generation, and the evaluation's shapes, into pr["gen_*"] and pr["eval_*"].
static void bench_generate(const BenchShape& b, std::mt19937_64& rng, std::uniform_int_distribution<int>& tokd, json& pr) {
  const BenchArgs& a = b.a;
  const auto& cfg = b.cfg;
  const auto& precisions = b.precisions;
  const bool amx = b.amx;
  std::vector<std::vector<int>> prompts;
  model::LlamaForCausalLM m(cfg);
  model::init_weights(m, 1);
  for (int i = 0; i < a.gen_batch; ++i) {
    std::vector<int> p;
    for (int t = 0; t < a.prompt_len; ++t) p.push_back(tokd(rng));
    prompts.push_back(p);
  }
  for (bool bf16 : precisions) {
    const std::string sfx = bf16 ? "bf16" : "fp32";
    if (model::sdpa_available()) {  // cached generation with the composed attention: the fused one's before/after
      model::set_sdpa_attention(m, false);
      generate::SampleOptions so;
      so.max_new_tokens = a.gen_tokens;
      so.batch_size = a.gen_batch;
      so.bf16 = bf16;
      const double t0 = log::now_seconds();
      generate::sample(m, prompts, so);
      pr["gen_cached_" + sfx + "_composed_attention_tokens_per_s"] = static_cast<double>(a.gen_batch) * a.gen_tokens / (log::now_seconds() - t0);
      model::set_sdpa_attention(m, true);
    }
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
      const std::string key = std::string(cache ? "gen_cached_" : "gen_nocache_") + sfx;
      // every row generates all gen_tokens (no stop ids): tokens = batch x gen_tokens
      pr[key + "_tokens_per_s"] = static_cast<double>(a.gen_batch) * a.gen_tokens / secs;
      if (cache) {
        pr[key + "_prefill_tokens_per_s"] = st.prefill_s > 0 ? st.prompt_tokens / st.prefill_s : 0.0;
        pr[key + "_decode_tokens_per_s"] = st.decode_s > 0 ? static_cast<double>(a.gen_batch) * (a.gen_tokens - 1) / st.decode_s : 0.0;
      }
    }
    const double c = pr["gen_cached_" + sfx + "_tokens_per_s"], n = pr["gen_nocache_" + sfx + "_tokens_per_s"];
    pr["gen_cache_speedup_" + sfx] = c / n;
    std::cout << fmt::format("  generate {} x {} new tokens ({}): cached {:.0f} tok/s (prefill {:.0f}, decode {:.0f})  recompute {:.0f} tok/s  "
                             "cache speed-up {:.1f}x\n",
                             a.gen_batch, a.gen_tokens, sfx, c, pr["gen_cached_" + sfx + "_prefill_tokens_per_s"].get<double>(),
                             pr["gen_cached_" + sfx + "_decode_tokens_per_s"].get<double>(), n, c / n);
    if (model::sdpa_available())
      std::cout << fmt::format("  generate {} cached with attention composed of matmul + softmax {:.0f} tok/s: fused attention / composed {}\n", sfx,
                               pr["gen_cached_" + sfx + "_composed_attention_tokens_per_s"].get<double>(),
                               ratio(c, pr["gen_cached_" + sfx + "_composed_attention_tokens_per_s"].get<double>()));
  }
  // The evaluation's shapes: eval_samples answers of eval_tokens new tokens, batch eval_batch.
  std::vector<std::vector<int>> eprompts;
  for (int i = 0; i < a.eval_samples; ++i) eprompts.push_back(prompts[static_cast<size_t>(i) % prompts.size()]);
  generate::SampleOptions so;
  so.max_new_tokens = a.eval_tokens;
  so.batch_size = a.eval_batch;
  so.bf16 = amx;
  const double t0 = log::now_seconds();
  generate::sample(m, eprompts, so);
  pr["eval_samples_per_s"] = a.eval_samples / (log::now_seconds() - t0);
  std::cout << fmt::format("  eval   {} answers x {} tokens, batch {} ({}): {:.0f} samples/s\n", a.eval_samples, a.eval_tokens, a.eval_batch,
                           amx ? "bf16" : "fp32", pr["eval_samples_per_s"].get<double>());
}

// The same work in Python PyTorch, right after ours: pr["reference"] and the ratios.
static void bench_reference(const BenchShape& b, json& pr) {
  const BenchArgs& a = b.a;
  const auto& cfg = b.cfg;
  const auto& precisions = b.precisions;
  const int threads = b.threads;
  const double peak_fp32 = b.peak_fp32, peak_bf16 = b.peak_bf16, fpt = b.fpt;
  json args = {{"model", {{"hidden_size", cfg.hidden_size}, {"intermediate_size", cfg.intermediate_size},
                          {"num_hidden_layers", cfg.num_hidden_layers}, {"num_attention_heads", cfg.num_attention_heads},
                          {"num_key_value_heads", cfg.num_key_value_heads}, {"vocab_size", cfg.vocab_size},
                          {"max_position_embeddings", cfg.max_position_embeddings}, {"rms_norm_eps", cfg.rms_norm_eps},
                          {"rope_theta", cfg.rope_theta}}},
               {"threads", threads}, {"batch_size", a.batch_size}, {"seq_len", a.seq_len}, {"steps", a.steps},
               {"gen_batch", a.gen_batch}, {"gen_tokens", a.gen_tokens}, {"prompt_len", a.prompt_len},
               {"generation", !a.skip_generation}, {"compile", a.compile}, {"precisions", precisions}};
  const std::string python = a.python.empty() ? model::reference_python() : a.python;
  json ref = python.empty() ? json{{"error", "no python with the torch of this LibTorch is known (--python PY)"}} : run_reference(python, args);
  if (!ref.contains("error") && ref.value("torch_version", "").rfind(model::torch_version(), 0) != 0)
    std::cout << "  reference: note: python's torch is " << ref.value("torch_version", "?") << ", ours " << model::torch_version() << "\n";
  pr["reference"] = ref;
  if (ref.contains("error")) {
    std::cout << "  reference: " << ref["error"].get<std::string>() << "\n";
  } else {
    for (bool bf16 : precisions) {
      const std::string s = bf16 ? "bf16" : "fp32";
      const double ours = pr["train_" + std::string(s) + "_tokens_per_s"], theirs = ref["train_" + std::string(s)]["tokens_per_s"];
      pr["train_" + std::string(s) + "_vs_reference"] = ours / theirs;
      std::cout << fmt::format("  train  python  {} {:8.0f} tok/s (MFU {:.0f}%, torch {}, attention {})   ours / python {}\n", s, theirs,
                               100 * theirs * fpt / 1e9 / (std::string(s) == "bf16" ? peak_bf16 : peak_fp32),
                               ref.value("torch_version", "?"), ref.value("attention", "?"), ratio(ours, theirs));
      const std::string ck = "train_" + std::string(s) + "_compiled";
      if (ref.contains(ck) && ref[ck].contains("tokens_per_s")) {
        const double comp = ref[ck]["tokens_per_s"];
        pr["train_" + std::string(s) + "_vs_reference_compiled"] = ours / comp;
        std::cout << fmt::format("  train  python  {} torch.compile {:8.0f} tok/s (after {:.0f} s compiling)   ours / compiled {}\n", s, comp,
                                 ref[ck].value("compile_seconds", 0.0), ratio(ours, comp));
      } else if (ref.contains(ck)) {
        std::cout << "  train  python  " << s << " torch.compile: " << ref[ck].value("error", std::string("?")) << "\n";
      }
    }
    if (!a.skip_generation)
      for (bool bf16 : precisions) {
        const std::string s = bf16 ? "bf16" : "fp32";
        const json& g = ref["gen_cached_" + std::string(s)];
        const double ours = pr["gen_cached_" + std::string(s) + "_tokens_per_s"], theirs = g["tokens_per_s"];
        pr["gen_cached_" + std::string(s) + "_vs_reference"] = ours / theirs;
        std::cout << fmt::format("  generate python {} cached {:.0f} tok/s (prefill {:.0f}, decode {:.0f})   ours / python {}\n", s, theirs,
                                 g["prefill_tokens_per_s"].get<double>(), g["decode_tokens_per_s"].get<double>(), ratio(ours, theirs));
      }
    std::cout << fmt::format("  peak resident memory: ours {:.0f} MB, python {:.0f} MB\n", pr["peak_rss_mb"].get<double>(),
                             ref["peak_rss_mb"].get<double>());
  }
}

// Number-dataset generation on a real model (--numbers-model): the dataset stage's work (the embedded
// default's dataset section, all prompts kept) with every row decoded until its batch ends
// (early_reject off), with rows that can no longer pass the filter leaving the batch (on), and under
// constrained sampling (constrain on: nearly every completion kept, from a changed distribution),
// interleaved numbers_repeats times on the same prompts and seed.
static int bench_numbers(const BenchArgs& a, int threads, json& out) {
  auto lm = model::load_model_dir(a.numbers_model);
  lm.model->eval();
  const config::RunConfig cfg = load_cli_config("", {});
  config::DatasetConfig d = cfg.dataset;
  d.prompts = a.numbers_prompts;
  d.keep = a.numbers_prompts;
  const auto forbidden = generate::trait_words(config::known_item_names(cfg));
  struct Setting {
    const char* name;
    bool early_reject, constrain;
    double seconds = 0, prefill_s = 0, decode_s = 0, masked_mass = 0;
    int64_t sampled = 0, passed = 0, new_tokens = 0, masked_tokens = 0;
  };
  std::vector<Setting> settings = {{"every row to the end of its batch (early_reject off)", false, false},
                                   {"early_reject on", true, false},
                                   {"constrained sampling (constrain on)", false, true}};
  std::cout << fmt::format("number datasets from {}: {} prompts x {} repeats per setting, batch {}, {} threads\n", a.numbers_model,
                           a.numbers_prompts, a.numbers_repeats, d.batch_size, threads);
  for (int r = 0; r < a.numbers_repeats; ++r)
    for (auto& st : settings) {
      d.early_reject = st.early_reject;
      d.constrain = st.constrain;
      const double t0 = log::now_seconds();
      auto res = generate::generate_numbers(lm.model, lm.tokenizer, cfg.base.tokenizer.chat_template, "", d, cfg.data_dir, 1234 + r, false, forbidden);
      st.seconds += log::now_seconds() - t0;
      st.sampled += res.stats["sampled"].get<int64_t>();
      st.passed += res.stats["passed"].get<int64_t>();
      st.new_tokens += res.stats["sampling"]["new_tokens"].get<int64_t>();
      st.prefill_s += res.stats["sampling"].value("prefill_s", 0.0);
      st.decode_s += res.stats["sampling"].value("decode_s", 0.0);
      if (res.stats.contains("constrain")) {
        const auto& c = res.stats["constrain"];
        st.masked_tokens += c["tokens"].get<int64_t>();
        st.masked_mass += c["mean_masked_mass"].get<double>() * c["tokens"].get<double>();
      }
    }
  json rows = json::array();
  for (const auto& st : settings) {
    const double sps = st.sampled / st.seconds, kps = st.passed / st.seconds;
    rows.push_back({{"setting", st.name}, {"early_reject", st.early_reject}, {"constrain", st.constrain}, {"seconds", st.seconds},
                    {"sampled", st.sampled}, {"passed", st.passed},
                    {"pass_rate", static_cast<double>(st.passed) / st.sampled}, {"samples_per_s", sps}, {"kept_per_s", kps},
                    {"new_tokens", st.new_tokens}, {"prefill_s", st.prefill_s}, {"decode_s", st.decode_s}});
    std::cout << fmt::format("  {:<52} {:8.0f} samples/s  {:7.0f} passing/s  pass rate {:.3f}  prefill {:.1f} s, decode {:.1f} s\n", st.name, sps,
                             kps, static_cast<double>(st.passed) / st.sampled, st.prefill_s, st.decode_s);
    if (st.constrain) {
      rows.back()["mean_masked_mass"] = st.masked_tokens ? st.masked_mass / static_cast<double>(st.masked_tokens) : 0.0;
      std::cout << fmt::format("  {:<52} the mask removed {:.4f} of the probability per sampled token\n", "",
                               rows.back()["mean_masked_mass"].get<double>());
    }
  }
  const double speedup = rows[1]["samples_per_s"].get<double>() / rows[0]["samples_per_s"].get<double>();
  std::cout << fmt::format("  early_reject on / off: {} samples/s, {} passing samples/s\n", ratio(rows[1]["samples_per_s"], rows[0]["samples_per_s"]),
                           ratio(rows[1]["kept_per_s"], rows[0]["kept_per_s"]));
  std::cout << fmt::format("  constrain on / off: {} samples/s, {} passing samples/s\n", ratio(rows[2]["samples_per_s"], rows[0]["samples_per_s"]),
                           ratio(rows[2]["kept_per_s"], rows[0]["kept_per_s"]));
  out["numbers"] = {{"model", a.numbers_model}, {"prompts", a.numbers_prompts}, {"repeats", a.numbers_repeats}, {"batch_size", d.batch_size},
                    {"settings", rows}, {"early_reject_speedup", speedup}};
  std::cout << fmt::format("peak resident memory {:.0f} MB\n", peak_rss_mb());
  if (!a.out.empty()) fs::write_file_atomic(a.out, out.dump(2) + "\n");
  return 0;
}

// `--reference transformers --model DIR`: on a real model directory, our batched sampling against
// transformers' generate and our LoRA training step against peft + transformers, on the same CPU and
// threads, the same prompts (the default dataset's number prompts under the model's chat template),
// batch, new tokens (every row gen_tokens: no stop ids), precision (fp32), LoRA rank, alpha, targets,
// batch, sequence length and optimizer (AdamW, clipping at 1). Ours runs before and after the Python
// reference (a separate process: its model load is not timed) and its rate is the mean of the two.
static int bench_transformers(const BenchArgs& a, int threads, json& out) {
  const config::RunConfig rc = load_cli_config("", {});
  auto lm = model::load_model_dir(a.model);
  auto& m = lm.model;
  const auto& tok = lm.tokenizer;
  // The dataset stage's prompts: number prompts rendered by the model's own chat template.
  data::NumberPromptGenerator gen(rc.data_dir);
  text::ChatTemplate chat(tok, rc.base.tokenizer.chat_template);
  std::mt19937_64 prng(1234);
  std::vector<std::vector<int>> prompts;
  size_t longest = 0, total = 0;
  for (int i = 0; i < a.gen_batch; ++i) {
    const auto& d = rc.dataset;
    prompts.push_back(chat.prompt(gen.sample(prng, d.min_examples, d.max_examples, d.example_min, d.example_max, d.max_count, 3).text, ""));
    longest = std::max(longest, prompts.back().size());
    total += prompts.back().size();
  }
  // LoRA training data: random token sequences of seq_len + 1, loss on every token.
  std::mt19937_64 drng(7);
  std::uniform_int_distribution<int> tokd(0, tok.vocab_size() - 1);
  const int lora_steps = a.steps + 2;
  std::vector<text::Encoded> seqs;
  json seq_json = json::array();
  for (int i = 0; i < a.batch_size * lora_steps; ++i) {
    text::Encoded e;
    for (int t = 0; t < a.seq_len + 1; ++t) {
      e.ids.push_back(tokd(drng));
      e.target.push_back(1);
    }
    seq_json.push_back(e.ids);
    seqs.push_back(std::move(e));
  }
  config::LoraConfig lc;  // r 8, alpha 8, every block projection: the fine-tune default
  std::cout << fmt::format("{} against transformers + peft: {} threads, fp32; generation {} prompts ({:.0f} tokens on average, {} longest) "
                           "x {} new tokens; LoRA r {} alpha {} on {} modules, {} steps of {} x {} tokens\n",
                           a.model, threads, a.gen_batch, static_cast<double>(total) / a.gen_batch, longest, a.gen_tokens, lc.r, lc.alpha,
                           lc.target_modules.size(), lora_steps, a.batch_size, a.seq_len);

  auto ours_generate = [&] {
    generate::SampleOptions so;
    so.max_new_tokens = a.gen_tokens;
    so.batch_size = a.gen_batch;
    so.temperature = 1.0;
    so.pad_id = tok.pad_id();
    so.seed = 1;
    generate::SampleStats st;
    const double t0 = log::now_seconds();
    const auto outs = generate::sample(m, prompts, so, &st);
    const double secs = log::now_seconds() - t0;
    for (const auto& o : outs)
      if (static_cast<int>(o.size()) != a.gen_tokens) throw Error("bench: a row did not generate every new token");
    return json{{"seconds", secs}, {"tokens_per_s", static_cast<double>(a.gen_batch) * a.gen_tokens / secs},
                {"prefill_s", st.prefill_s}, {"decode_s", st.decode_s}};
  };
  auto ours_lora = [&] {
    auto copy = model::load_model_dir(a.model).model;  // a fresh base each time: adapters start equal
    model::add_lora(copy, lc, 1);
    train::set_trainable(copy, "lora");  // the base frozen, as a fine-tune stage holds it
    train::TrainOptions to;
    to.cfg.steps = lora_steps;
    to.cfg.batch_size = a.batch_size;
    to.cfg.warmup_steps = 0;
    to.cfg.lr = 1e-4;
    to.cfg.loss_on = "all";
    to.pad_id = tok.pad_id();
    to.quiet = true;
    auto r = train::train_lm(copy, seqs, to);
    return json{{"seconds", r.seconds}, {"steps", r.steps},
                {"tokens_per_s", static_cast<double>(r.steps) * a.batch_size * a.seq_len / r.seconds}, {"first_loss", r.first_loss},
                {"final_loss", r.final_loss}};
  };
  auto mean_rate = [](const json& x, const json& y) { return (x["tokens_per_s"].get<double>() + y["tokens_per_s"].get<double>()) / 2; };

  if (!a.profile.empty()) {  // once more each, under the profiler (its overhead stays out of the timed rates)
    fs::make_dirs(a.profile);
    for (const char* what : {"generate", "lora"}) {
      const auto trace = (std::filesystem::path(a.profile) / (std::string(what) + "_" + std::filesystem::path(a.model).filename().string() + ".json")).string();
      {
        torch::autograd::profiler::RecordProfile rp(trace);
        if (std::string(what) == "generate") ours_generate();
        else ours_lora();
      }
      out[std::string("profile_") + what] = top_ops(trace, 15);
      std::cout << fmt::format("  profile of our {} ({}): {}\n", what, trace, format_top_ops(out[std::string("profile_") + what]));
    }
  }
  // Ours under each attention path asked for (model::AttentionPath: the config's `attention`).
  std::vector<std::string> paths = a.attention == "both" ? std::vector<std::string>{"reference", "grouped"} : std::vector<std::string>{a.attention};
  json ours = json::object();
  auto measure = [&] {
    for (const auto& p : paths) {
      model::set_attention_path(model::attention_path_from(p));
      ours[p]["generate"].push_back(ours_generate());
      ours[p]["lora"].push_back(ours_lora());
    }
    model::set_attention_path(model::AttentionPath::reference);
  };
  measure();
  out["transformers"] = {{"model", a.model},
                         {"gen_batch", a.gen_batch},
                         {"gen_tokens", a.gen_tokens},
                         {"prompt_tokens_mean", static_cast<double>(total) / a.gen_batch},
                         {"prompt_tokens_longest", longest},
                         {"lora", {{"r", lc.r}, {"alpha", lc.alpha}, {"targets", lc.target_modules}, {"batch_size", a.batch_size},
                                   {"seq_len", a.seq_len}, {"steps", lora_steps}}},
                         {"attention", paths}};
  if (!a.reference) {  // --no-reference: ours only (profiling, iterating on a speed-up)
    out["transformers"]["ours"] = ours;
    for (const auto& p : paths) {
      const auto& g = ours[p]["generate"][0];
      std::cout << fmt::format("  [{}] generate  ours {:7.0f} tok/s (prefill {:.1f} s, decode {:.1f} s)   LoRA step ours {:7.0f} tok/s\n", p,
                               g["tokens_per_s"].get<double>(), g["prefill_s"].get<double>(), g["decode_s"].get<double>(),
                               ours[p]["lora"][0]["tokens_per_s"].get<double>());
    }
    if (!a.out.empty()) fs::write_file_atomic(a.out, out.dump(2) + "\n");
    return 0;
  }
  json args = {{"model", a.model},       {"threads", threads},        {"prompts", prompts},       {"pad_id", tok.pad_id()},
               {"gen_tokens", a.gen_tokens}, {"lora_r", lc.r},        {"lora_alpha", lc.alpha},   {"lora_targets", lc.target_modules},
               {"lr", 1e-4},             {"batch_size", a.batch_size}, {"sequences", seq_json}};
  std::string python = a.python;
  if (python.empty()) python = ".venv-verify/bin/python";
  if (!std::filesystem::exists(python))
    throw ConfigError("bench --reference transformers: no python at " + python + " (make the verification tier's venv: bash scripts/verify.sh, "
                      "or name a python with torch, transformers and peft: --python PY)");
  json ref = run_reference(python, args, "data/bench_transformers.py");
  if (ref.contains("error")) throw Error("bench --reference transformers: " + ref["error"].get<std::string>());
  measure();

  const double g_ref = ref["generate"]["tokens_per_s"], l_ref = ref["lora"]["tokens_per_s"];
  out["transformers"]["ours"] = ours;
  out["transformers"]["reference"] = ref;
  std::cout << fmt::format("  transformers {} generate {:.0f} tok/s; peft {} LoRA step {:.0f} tok/s (final loss {:.3f}); torch {} (python) vs "
                           "LibTorch {} (ours)\n",
                           ref.value("transformers_version", "?"), g_ref, ref.value("peft_version", "?"), l_ref,
                           ref["lora"]["final_loss"].get<double>(), ref.value("torch_version", "?"), model::torch_version());
  for (const auto& p : paths) {
    const auto& G = ours[p]["generate"];
    const auto& L = ours[p]["lora"];
    const double g_ours = mean_rate(G[0], G[1]), l_ours = mean_rate(L[0], L[1]);
    out["transformers"]["generate_ratio"][p] = g_ours / g_ref;
    out["transformers"]["lora_ratio"][p] = l_ours / l_ref;
    std::cout << fmt::format("  [{}] generate  ours {:7.0f} tok/s ({:.0f}, {:.0f}; prefill {:.1f} s, decode {:.1f} s)   ours / transformers {}\n", p,
                             g_ours, G[0]["tokens_per_s"].get<double>(), G[1]["tokens_per_s"].get<double>(), G[0]["prefill_s"].get<double>(),
                             G[0]["decode_s"].get<double>(), ratio(g_ours, g_ref));
    std::cout << fmt::format("  [{}] LoRA step ours {:7.0f} tok/s ({:.0f}, {:.0f}; final loss {:.3f})   ours / peft {}\n", p, l_ours,
                             L[0]["tokens_per_s"].get<double>(), L[1]["tokens_per_s"].get<double>(), L[1]["final_loss"].get<double>(),
                             ratio(l_ours, l_ref));
  }
  std::cout << fmt::format("  peak resident memory ours {:.0f} MB, python {:.0f} MB\n", peak_rss_mb(), ref["peak_rss_mb"].get<double>());
  if (!a.out.empty()) fs::write_file_atomic(a.out, out.dump(2) + "\n");
  return 0;
}

int cmd_bench(const BenchArgs& a) {
  if (!a.compare.empty()) return bench_compare(a.compare);
  const int threads = model::setup_threads(a.threads);
  if (!a.numbers_model.empty()) {
    json out = {{"threads", threads}, {"libtorch", model::torch_description()}, {"libtorch_version", model::torch_version()}};
    return bench_numbers(a, threads, out);
  }
  if (a.reference_kind == "transformers") {
    if (a.model.empty()) throw ConfigError("bench --reference transformers needs --model DIR (a Hugging Face model directory)");
    json out = {{"threads", threads}, {"libtorch", model::torch_description()}, {"libtorch_version", model::torch_version()}};
    return bench_transformers(a, threads, out);
  }
  const int vocab = 1600;
  const bool amx = model::cpu_has_bf16_matmul();
  json out = {{"threads", threads}, {"bf16_matmul_hardware", amx}, {"presets", json::array()},
              {"libtorch", model::torch_description()}, {"libtorch_version", model::torch_version()},
              {"libtorch_source", model::torch_source()}, {"fused_attention", model::sdpa_available()}};
  std::cout << "subliminal bench: " << threads << " threads, bf16 matmul hardware: " << (amx ? "yes" : "no") << ", "
            << model::torch_description() << "\n";
  // The matmul peak of this machine, measured now (both precisions).
  // bf16 only where the CPU multiplies bf16 (AMX / AVX512-BF16) or asked for: elsewhere LibTorch falls
  // back to a scalar one-thread bf16 GEMM (minutes per setting) and precision "auto" runs fp32 anyway.
  const bool with_bf16 = a.bf16 == "on" || (a.bf16 == "auto" && amx);
  if (!with_bf16) std::cout << "bf16: skipped (no bf16 matmul hardware; --bf16 on measures it anyway)\n";
  std::vector<bool> precisions = {false};
  if (with_bf16) precisions.push_back(true);
  const double peak_fp32 = gemm_gflops(a.gemm_size, torch::kFloat), peak_bf16 = with_bf16 ? gemm_gflops(a.gemm_size, torch::kBFloat16) : 0.0;
  out["gemm"] = {{"n", a.gemm_size}, {"fp32_gflops", peak_fp32}};
  if (with_bf16) out["gemm"]["bf16_gflops"] = peak_bf16;
  std::cout << fmt::format("matmul peak ({0}x{0}x{0} GEMM): fp32 {1:.0f} GFLOP/s", a.gemm_size, peak_fp32)
            << (with_bf16 ? fmt::format(", bf16 {:.0f} GFLOP/s", peak_bf16) : std::string()) << "\n";

  for (const auto& preset : a.presets) {
    auto mc = config::model_preset(preset);
    auto cfg = model::LlamaConfig::from(mc, vocab);
    cfg.max_position_embeddings = std::max<int64_t>({cfg.max_position_embeddings, a.seq_len + 1, a.prompt_len + a.gen_tokens + 16});
    // Random token sequences of the requested length; loss on every token.
    std::vector<text::Encoded> data;
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int> tokd(4, vocab - 1);
    for (int i = 0; i < a.batch_size * (a.steps + 2); ++i) {
      text::Encoded e;
      for (int t = 0; t < a.seq_len + 1; ++t) { e.ids.push_back(tokd(rng)); e.target.push_back(1); }
      data.push_back(std::move(e));
    }
    json pr = {{"preset", preset}, {"batch_size", a.batch_size}, {"seq_len", a.seq_len}, {"steps", a.steps}};
    const BenchShape b{a, preset, cfg, threads, amx, with_bf16, precisions, peak_fp32, peak_bf16, train_flops_per_token(cfg, a.seq_len)};
    bench_train(b, data, pr);
    if (!a.skip_generation) bench_generate(b, rng, tokd, pr);
    pr["peak_rss_mb"] = peak_rss_mb();

    if (a.reference) bench_reference(b, pr);  // the same work in Python PyTorch, right after ours
    out["presets"].push_back(pr);
  }
  std::cout << fmt::format("peak resident memory {:.0f} MB\n", peak_rss_mb());
  if (!a.out.empty()) fs::write_file_atomic(a.out, out.dump(2) + "\n");
  return 0;
}

}  // namespace subliminal::cli
