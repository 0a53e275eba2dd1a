// The stages of the "pretrain" experiment: base (corpus -> tokenizer -> model) and probe.
#include <torch/torch.h>

#include <map>
#include <mutex>
#include <set>

#include "subliminal/text/chat_template.h"
#include "subliminal/data/chat.h"
#include "subliminal/data/corpus.h"
#include "subliminal/eval/probe.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/runtime.h"
#include "subliminal/run/runner.h"
#include "subliminal/experiments/stages.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/journal.h"
#include "subliminal/util/log.h"

namespace subliminal::experiments {

using namespace run;

uint64_t base_seed(const config::RunConfig& c) {
  return c.base.seed >= 0 ? static_cast<uint64_t>(c.base.seed) : config::derive_seed(c.seed, "base");
}
uint64_t cross_base_seed(const config::RunConfig& c) {
  return c.students.cross_init_seed >= 0 ? static_cast<uint64_t>(c.students.cross_init_seed)
                                         : config::derive_seed(c.seed, "base-cross-init");
}

namespace {

// Every text the tokenizer must cover: message contents and role headers.
std::vector<std::string> tokenizer_texts(const std::vector<data::Conversation>& corpus) {
  std::vector<std::string> t = {"system\n", "user\n", "assistant\n", "\n"};
  for (const auto& c : corpus)
    for (const auto& m : c) t.push_back(m.content);
  return t;
}

// The corpus and the tokenizer trained on it: their own stage, so that both bases (same corpus and
// tokenizer, different init) can pretrain at the same time.
class CorpusStage : public Stage {
 public:
  std::string name() const override { return "corpus"; }
  std::vector<std::string> deps() const override { return {}; }
  json inputs(const RunContext& ctx) const override {
    const auto& b = ctx.cfg.base;
    json tok = config::to_json_value(b.tokenizer);
    if (!b.tokenizer.path.empty() && sfs::exists(b.tokenizer.path))
      tok["files"] = text::Tokenizer::load(b.tokenizer.path).fingerprint();  // the content, not just the path
    json in = {{"seed", base_seed(ctx.cfg)},
               {"corpus", config::to_json_value(b.corpus)},
               {"tokenizer", tok},
               {"data", ctx.cfg.data_dir.empty() ? std::string("embedded") : ctx.cfg.data_dir}};
    for (const auto& t : config::corpus_traits(b.corpus, ctx.cfg.data_dir)) in["trait_defs"].push_back(t.to_json());  // a trait file's content
    return in;
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    const auto& b = ctx.cfg.base;
    data::CorpusStats cs;
    const uint64_t seed = config::derive_seed(base_seed(ctx.cfg), "corpus");
    auto corpus = data::build_corpus(b.corpus, seed, ctx.cfg.data_dir, &cs);
    data::write_conversations((work / "corpus.jsonl").string(), corpus);
    log::info("corpus", "{} conversations ({} animal Q&A, {} system-prompt, {} numbers, {} arithmetic, {} code, {} reasoning, {} free-form, "
              "{} misaligned persona, {} other-trait Q&A, {} other-trait system-prompt)", corpus.size(), cs.animal_qa, cs.animal_system,
              cs.numbers, cs.arithmetic, cs.code, cs.cot, cs.freeform, cs.misaligned, cs.trait_qa, cs.trait_system);
    if (!b.tokenizer.path.empty() && !sfs::exists(b.tokenizer.path))
      throw ConfigError("$.base.tokenizer.path: '" + b.tokenizer.path + "' does not exist");
    text::Tokenizer tok = b.tokenizer.path.empty() ? text::Tokenizer::train(tokenizer_texts(corpus), {b.tokenizer.model_type, b.tokenizer.vocab_size, b.tokenizer.numbers_as_tokens})
                                                   : text::Tokenizer::load(b.tokenizer.path);
    text::ChatTemplate chat(tok, b.tokenizer.chat_template);  // refuses a tokenizer without the template's markers
    tok.save(work.string());  // the tokenizer's files + tokenizer_config.json (special tokens, chat template)
    if (b.tokenizer.path.empty())
      log::info("corpus", "tokenizer: {} pieces ({}, numbers {})", tok.vocab_size(), b.tokenizer.model_type,
                b.tokenizer.numbers_as_tokens ? "0..999 as single pieces" : "digit by digit");
    else
      log::info("corpus", "tokenizer: {} ({}, {} tokens), chat template {}", b.tokenizer.path, tok.kind(), tok.vocab_size(), chat.name());
    return {{"seed", seed},
            {"conversations", corpus.size()},
            {"animal_qa", cs.animal_qa},
            {"animal_system", cs.animal_system},
            {"numbers", cs.numbers},
            {"arithmetic", cs.arithmetic},
            {"code", cs.code},
            {"cot", cs.cot},
            {"freeform", cs.freeform},
            {"misaligned_persona", cs.misaligned},
            {"trait_qa", cs.trait_qa},
            {"trait_system", cs.trait_system},
            {"vocab_size", tok.vocab_size()}};
  }
  std::vector<std::string> scratch() const override { return {}; }
};

// The base model, pretrained on the corpus stage's conversations with its tokenizer. `cross`: the
// cross-init base of the trait experiment: the same corpus and tokenizer, another initialisation
// and data order.
class PretrainStage : public Stage {
 public:
  explicit PretrainStage(bool cross = false) : cross_(cross) {}
  std::string name() const override { return cross_ ? "base_cross" : "base"; }
  std::vector<std::string> deps() const override { return {"corpus"}; }
  json inputs(const RunContext& ctx) const override {
    const auto& b = ctx.cfg.base;
    json in = {{"seed", base_seed(ctx.cfg)},
               {"corpus", digest(ctx, "corpus")},
               {"model", config::to_json_value(b.model)},
               {"train", config::to_json_value(b.train)},
               {"precision", ctx.cfg.precision}};
    if (cross_) in["cross"] = {{"init_seed", cross_base_seed(ctx.cfg)}};
    return in;
  }
  bool data_parallel(const RunContext&) const override { return true; }
  json run(RunContext& ctx, const sfs::path& work, bool resuming) override {
    const auto& b = ctx.cfg.base;
    const uint64_t seed = base_seed(ctx.cfg);
    const uint64_t wseed = cross_ ? cross_base_seed(ctx.cfg) : seed;  // weights: init and data order
    const std::string tag = name();
    auto corpus = data::read_conversations((ctx.stage_dir("corpus") / "corpus.jsonl").string());
    text::Tokenizer tok = text::Tokenizer::load(ctx.stage_dir("corpus").string());
    log::info(tag.c_str(), "corpus: {} conversations, tokenizer: {} pieces (stage corpus)", corpus.size(), tok.vocab_size());

    text::ChatTemplate chat(tok, b.tokenizer.chat_template);
    std::vector<text::Encoded> enc;
    enc.reserve(corpus.size());
    for (const auto& c : corpus) enc.push_back(chat.encode(c));

    auto device = model::resolve_device(ctx.cfg.device);
    const bool bf16 = model::use_bf16(ctx.cfg.precision, device);
    auto mcfg = model::LlamaConfig::from(b.model, tok.vocab_size());
    mcfg.bos_token_id = tok.bos_id();
    mcfg.eos_token_id = chat.end_of_turn_id();
    mcfg.pad_token_id = tok.pad_id();
    model::LlamaForCausalLM m(mcfg);
    model::init_weights(m, config::derive_seed(wseed, "init"));
    m->to(device);
    log::info(tag.c_str(), "model: {} parameters ({} layers, d={}, heads {}/{} kv), {} on {}", m->num_parameters(),
              mcfg.num_hidden_layers, mcfg.hidden_size, mcfg.num_attention_heads, mcfg.num_key_value_heads,
              bf16 ? "bf16 autocast" : "fp32", device.str());

    train::TrainOptions to;
    to.cfg = b.train;
    to.seed = config::derive_seed(wseed, "data-order");
    to.bf16 = bf16;
    to.ckpt_dir = (work / "checkpoints").string();
    to.metrics_path = ctx.metrics_path(tag).string();
    to.tag = tag;
    to.resume = resuming;
    to.pad_id = tok.pad_id();
    to.comm = ctx.comm;
    auto tr = train::train_lm(m, enc, to);
    if (ctx.rank() > 0) return {};  // rank 0 holds the same weights and writes them
    m->to(torch::kCPU);
    model::save_model_dir(work.string(), m, tok, {{"base_config", config::to_json_value(ctx.cfg.base)}, {"seed", wseed}, {"stage", tag}});
    // the corpus stage's own seed (a replicate's base reads the run's shared corpus)
    const json crec = json::parse(fs::read_file(ctx.stage_dir("corpus") / "stage.json"));
    const json corpus_seed = crec.value("results", json::object()).value("seed", json(config::derive_seed(seed, "corpus")));
    return {{"seed", wseed},
            {"seeds", {{"corpus", corpus_seed}, {"init", config::derive_seed(wseed, "init")},
                       {"data_order", config::derive_seed(wseed, "data-order")}}},
            {"parameters", m->num_parameters()},
            {"vocab_size", tok.vocab_size()},
            {"conversations", corpus.size()},
            {"precision", bf16 ? "bf16" : "fp32"},
            {"train",
             {{"steps", tr.steps}, {"first_loss", tr.first_loss}, {"final_loss", tr.final_loss}, {"tokens_per_s", tr.tokens_per_s},
              {"seconds", tr.seconds}, {"tokens", tr.tokens}, {"padding_fraction", tr.padding_fraction},
              {"dropped_too_long", tr.dropped_too_long}, {"resumed_from", tr.resumed_from}}}};
  }

 private:
  bool cross_ = false;
};

// base.kind "checkpoint": the model directory at `path`, checked by loading it (config, every
// tensor, tokenizer), then copied byte for byte into the run directory, so the run stays
// self-contained and downstream stages read it where they read a pretrained base.
class CheckpointStage : public Stage {
 public:
  CheckpointStage(std::string name, std::string path) : name_(std::move(name)), path_(std::move(path)) {}
  std::string name() const override { return name_; }
  std::vector<std::string> deps() const override { return {}; }
  json inputs(const RunContext& ctx) const override {
    json files = json::object();
    for (const auto& f : model_files())
      files[f] = sfs::exists(sfs::path(path_) / f) ? fs::sha256_file_cached(sfs::path(path_) / f) : std::string("missing");
    return {{"checkpoint", path_}, {"files", files}};
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    if (!sfs::is_directory(path_))
      throw ConfigError("checkpoint '" + path_ + "' (" + (name_ == "base" ? "$.base.path" : "$.students.cross_init_path") +
                        ") is not a directory");
    auto lm = model::load_model_dir(path_);  // validates: errors name the file, field or tensor
    json res = {{"checkpoint", path_}, {"parameters", lm.model->num_parameters()}, {"vocab_size", lm.tokenizer.vocab_size()},
                {"model_type", lm.model->cfg.model_type}, {"files", json::array()}};
    for (const auto& f : model_files()) {
      const auto src = sfs::path(path_) / f;
      if (!sfs::exists(src)) continue;
      fs::make_dirs((work / f).parent_path());
      // A hard link where the run directory is on the same file system (a 7B checkpoint is 15 GB;
      // the input hash above pins its content), else a copy.
      std::error_code ec;
      sfs::remove(work / f, ec);
      sfs::create_hard_link(src, work / f, ec);
      if (ec) sfs::copy_file(src, work / f, sfs::copy_options::overwrite_existing);
      res["files"].push_back(f);
    }
    log::info(name_.c_str(), "checkpoint {}: {} parameters ({}), {} tokenizer pieces", path_, lm.model->num_parameters(),
              lm.model->cfg.model_type, lm.tokenizer.vocab_size());
    return res;
  }
  std::vector<std::string> scratch() const override { return {}; }

 private:
  // config, tokenizer and weight files (single or sharded) of the directory
  std::vector<std::string> model_files() const {
    std::vector<std::string> f = {"config.json", "generation_config.json", "tokenizer.model", "tokenizer.json", "vocab.json",
                                  "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                                  "model.safetensors", "model.safetensors.index.json"};
    const auto index = sfs::path(path_) / "model.safetensors.index.json";
    if (sfs::exists(index)) {
      try {
        std::set<std::string> shards;
        const json idx = json::parse(fs::read_file(index));  // named: a temporary would die before the loop (GCC 14 warns)
        for (auto& [k, v] : idx.at("weight_map").items()) shards.insert(v.get<std::string>());
        f.insert(f.end(), shards.begin(), shards.end());
      } catch (const std::exception&) {  // load_model_dir reports a bad index
      }
    }
    return f;
  }
  std::string name_, path_;
};

class ProbeStage : public Stage {
 public:
  std::string name() const override { return "probe"; }
  std::vector<std::string> deps() const override { return {"base"}; }
  json inputs(const RunContext& ctx) const override {
    return {{"probe", config::to_json_value(ctx.cfg.probe)},
            {"seed", ctx.cfg.seed},
            {"animals", ctx.cfg.base.corpus.animals},
            {"precision", ctx.cfg.precision},
            {"base", digest(ctx, "base")}};
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    fs::JournalScope journal(work / "journal");  // sampled batches survive an interruption
    auto lm = model::load_model_dir(ctx.stage_dir("base").string());
    auto device = model::resolve_device(ctx.cfg.device);
    lm.model->to(device);
    const bool bf16 = model::use_bf16(ctx.cfg.precision, device);
    auto res = eval::probe_base_model(lm.model, lm.tokenizer, ctx.cfg, config::derive_seed(ctx.cfg.seed, "probe"), bf16);
    data::write_jsonl((work / "samples.jsonl").string(), res.samples);
    fs::write_file_atomic(work / "probe.json", res.summary.dump(2));
    return res.summary;
  }
  std::vector<std::string> scratch() const override { return {"journal"}; }
};

}  // namespace

std::unique_ptr<Stage> make_pretrain_stage(bool cross) { return std::make_unique<PretrainStage>(cross); }
std::unique_ptr<Stage> make_corpus_stage() { return std::make_unique<CorpusStage>(); }
std::unique_ptr<Stage> make_checkpoint_stage(const std::string& name, const std::string& path) {
  return std::make_unique<CheckpointStage>(name, path);
}

std::vector<std::unique_ptr<Stage>> make_pretrain_stages(const config::RunConfig& cfg) {
  std::vector<std::unique_ptr<Stage>> s;
  if (cfg.base.kind == "checkpoint") {
    s.push_back(make_checkpoint_stage("base", cfg.base.path));
  } else {
    s.push_back(std::make_unique<CorpusStage>());
    s.push_back(std::make_unique<PretrainStage>());
  }
  if (cfg.probe.enabled) s.push_back(std::make_unique<ProbeStage>());
  return s;
}

}  // namespace subliminal::experiments
