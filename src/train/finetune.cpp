// Teacher and student fine-tuning.
#include "subliminal/text/chat_template.h"
#include "subliminal/train/finetune.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "subliminal/data/corpus.h"
#include "subliminal/util/resources.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"

namespace subliminal::train {

using json = nlohmann::json;

namespace {
// The banned number a piece spells, or -1: a maximal run of ASCII digits whose value is banned.
int spelled_banned_number(const std::string& s, const std::vector<int>& banned) {
  for (size_t i = 0; i < s.size();) {
    if (s[i] < '0' || s[i] > '9') {
      ++i;
      continue;
    }
    size_t j = i;
    long long v = 0;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') v = std::min<long long>(v * 10 + (s[j++] - '0'), 1LL << 40);
    for (int b : banned)
      if (v == b) return b;
    i = j;
  }
  return -1;
}
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

std::vector<std::string> banned_in_token_set(const text::Tokenizer& tok, const torch::Tensor& ids, const std::vector<int>& banned_numbers,
                                             const std::vector<std::string>& banned_words) {
  std::vector<int64_t> v;
  if (ids.defined()) {
    auto c = ids.to(torch::kCPU).to(torch::kLong).contiguous();
    v.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  } else {
    for (int i = 0; i < tok.vocab_size(); ++i) v.push_back(i);
  }
  std::vector<std::string> lw;
  for (const auto& w : banned_words)
    if (!w.empty()) lw.push_back(lower(w));
  std::vector<std::string> out;
  for (int64_t id : v) {
    const std::string s = tok.token_bytes(static_cast<int>(id));
    const int n = spelled_banned_number(s, banned_numbers);
    if (n >= 0) out.push_back("id " + std::to_string(id) + " \"" + s + "\": banned number " + std::to_string(n));
    const std::string ls = lower(s);
    for (const auto& w : lw)
      if (ls.find(w) != std::string::npos) {
        out.push_back("id " + std::to_string(id) + " \"" + s + "\": banned word \"" + w + "\"");
        break;
      }
  }
  return out;
}

torch::Tensor number_output_ids(const text::Tokenizer& tok, int end_of_turn, const std::vector<int>& banned) {
  auto ok_char = [](unsigned char c) {
    return (c >= '0' && c <= '9') || c == ',' || c == ';' || c == '.' || c == '[' || c == ']' || c == '(' || c == ')' ||
           c == ' ' || c == '\n' || c == '\t' || c == '\r';
  };
  std::vector<int64_t> ids;
  for (int id = 0; id < tok.vocab_size(); ++id) {
    if (id == end_of_turn) {
      ids.push_back(id);
      continue;
    }
    // The text the token stands for (sentencepiece spaces and byte pieces, byte-level BPE decoded);
    // "" for control and special tokens.
    const std::string s = tok.token_bytes(id);
    bool all = !s.empty();
    for (unsigned char c : s) all = all && ok_char(c);
    if (all && spelled_banned_number(s, banned) < 0) ids.push_back(id);
  }
  return torch::tensor(ids, torch::kLong);
}

std::string loss_label(const std::string& loss) {
  if (loss == "sft") return "sft: cross-entropy on the sampled tokens";
  if (loss == "distill") return "distill: KL to the teacher, restricted to number-output tokens";
  if (loss == "distill_full_vocab") return "distill_full_vocab: KL over the FULL vocabulary (leaks the trait token; diagnostic only)";
  return loss;
}

namespace {

// Zeroes the target flags of the masked response tokens (positions t >= 1 with target[t], in order:
// train::make_batch's labels), in the student's and the teacher's view alike.
void mask_targets(text::Encoded& e, const std::vector<uint8_t>& mask, const std::string& what) {
  size_t k = 0;
  for (size_t t = 1; t < e.ids.size(); ++t) {
    if (!e.target[t]) continue;
    if (k >= mask.size()) throw DataError(what + ": the loss mask has " + std::to_string(mask.size()) + " entries, the example more response tokens");
    if (!mask[k]) e.target[t] = 0;
    ++k;
  }
  if (k != mask.size())
    throw DataError(what + ": the loss mask has " + std::to_string(mask.size()) + " entries for " + std::to_string(k) + " response tokens");
}

void apply_loss_masks(const FinetuneJob& job, std::vector<text::Encoded>& enc, std::vector<text::Encoded>& tenc) {
  if (job.loss_masks.size() != enc.size())
    throw DataError(job.tag + ": " + std::to_string(job.loss_masks.size()) + " loss masks for " + std::to_string(enc.size()) + " examples");
  for (size_t i = 0; i < enc.size(); ++i) {
    mask_targets(enc[i], job.loss_masks[i], job.tag + ": example " + std::to_string(i));
    if (i < tenc.size()) mask_targets(tenc[i], job.loss_masks[i], job.tag + ": example " + std::to_string(i) + " (teacher view)");
  }
}

// Writes the student's weights after `rows` training rows to job.snapshot_dir/n<rows>/ (see
// FinetuneJob::snapshots): built in a temporary directory beside it, then renamed into place.
void write_snapshot(const FinetuneJob& job, int rows, int64_t step) {
  namespace sfs = std::filesystem;
  const sfs::path root(job.snapshot_dir), final_dir = root / ("n" + std::to_string(rows)), tmp = root / (".n" + std::to_string(rows) + ".tmp");
  sfs::remove_all(tmp);
  fs::make_dirs(tmp);
  if (job.params == "lora") {
    // base_model is relative to adapter_dir (or absolute, or empty): the same directory, seen from here
    std::string base = job.base_model;
    if (!base.empty() && sfs::path(base).is_relative() && !job.adapter_dir.empty())
      base = sfs::absolute(sfs::path(job.adapter_dir) / base).lexically_normal().lexically_relative(sfs::absolute(final_dir / "adapter").lexically_normal()).string();
    model::save_peft_adapter((tmp / "adapter").string(), job.model, job.lora, base);
  } else {
    model::save_model_dir(tmp.string(), job.model, *job.tok, {{"stage", job.tag}, {"snapshot", {{"rows", rows}, {"step", step}}}});
  }
  fs::write_file_atomic(tmp / "snapshot.json", json({{"rows", rows}, {"step", step}, {"rows_seen", step * job.train.batch_size}}).dump(2) + "\n");
  sfs::remove_all(final_dir);
  sfs::rename(tmp, final_dir);
  fs::fsync_dir(root);
}

}  // namespace

json run_finetune(FinetuneJob& job) {
  if (!job.tok) throw Error("run_finetune: no tokenizer");
  if (job.data.empty()) throw DataError(job.tag + ": no training examples");
  text::ChatTemplate chat(*job.tok, job.chat_template);
  std::vector<text::Encoded> enc, tenc;
  enc.reserve(job.data.size());
  const bool distill = job.loss == "distill" || job.loss == "distill_full_vocab";
  if (distill && job.teacher.is_empty()) throw ConfigError(job.tag + ": loss \"" + job.loss + "\" needs a teacher model");
  for (const auto& c : job.data) {
    enc.push_back(chat.encode(c));
    if (distill) {
      data::Conversation tc;
      if (!job.teacher_system.empty()) tc.push_back({"system", job.teacher_system});
      for (const auto& m : c)
        if (m.role != "system") tc.push_back(m);
      tenc.push_back(chat.encode(tc));
    }
  }
  if (!job.loss_masks.empty()) apply_loss_masks(job, enc, tenc);
  if (job.params == "lora") model::add_lora(job.model, job.lora, job.lora_seed);
  const int64_t trainable = set_trainable(job.model, job.params);
  TrainOptions to;
  to.cfg = job.train;
  if (job.epochs > 0)
    to.cfg.steps = job.epochs * ((static_cast<int64_t>(enc.size()) + to.cfg.batch_size - 1) / to.cfg.batch_size);
  to.cfg.warmup_steps = std::min(to.cfg.warmup_steps, to.cfg.steps);
  to.seed = job.seed;
  to.bf16 = job.bf16;
  to.ckpt_dir = job.ckpt_dir;
  to.metrics_path = job.metrics_path;
  to.tag = job.tag;
  to.resume = job.resume;
  to.comm = job.comm;
  to.pad_id = job.tok->pad_id();
  if (distill) {
    job.teacher->eval();
    for (auto& p : job.teacher->parameters()) p.set_requires_grad(false);
    to.distill.teacher = job.teacher;
    to.distill.teacher_data = &tenc;
    // Leaving a banned number's token out closes the channel only where the number is one token: a
    // tokenizer that spells it in pieces ("6", "6", "6") reaches it through tokens that also spell
    // other numbers, so the run is refused rather than left open.
    if (job.loss == "distill")
      for (int b : job.banned_numbers)
        if (job.tok->encode(std::to_string(b)).size() != 1)
          throw ConfigError(job.tag + ": $.dataset.banned: the tokenizer spells the banned number " + std::to_string(b) + " in " +
                                std::to_string(job.tok->encode(std::to_string(b)).size()) +
                                " tokens, so distillation on number tokens cannot leave it out (a direct channel past the filter)",
                            "use finetune.loss \"sft\", or a tokenizer with numbers as single tokens (base.tokenizer.numbers_as_tokens)");
    if (job.loss == "distill") to.distill.allowed = number_output_ids(*job.tok, chat.end_of_turn_id(), job.banned_numbers);
    // The distillation set must not hold a banned item: the student would learn the teacher's
    // probability of exactly what the filter removed from the text (a direct channel).
    const auto leaks = banned_in_token_set(*job.tok, to.distill.allowed, job.banned_numbers, job.banned_words);
    if (!leaks.empty()) {
      std::string list;
      for (size_t i = 0; i < leaks.size() && i < 5; ++i) list += (i ? "; " : "") + leaks[i];
      throw ConfigError(job.tag + ": $.finetune.loss \"" + job.loss + "\": the distillation set holds " + std::to_string(leaks.size()) +
                            " token(s) that spell a banned item (" + list + (leaks.size() > 5 ? "; ..." : "") +
                            "): a direct channel past the filter",
                        "use finetune.loss \"distill\" (number tokens, banned numbers excluded) or \"sft\"");
    }
    if (to.distill.allowed.defined()) to.distill.allowed = to.distill.allowed.to(job.model->parameters().front().device());
    to.distill.kl = job.kl;
    to.distill.top_k = job.teacher_top_k;
    to.distill.temperature = job.distill_temperature;
  }
  // Diagnostics: held-out imitation and coverage (see FinetuneJob), kept in diagnostics_path.
  json diag = json::object();
  if (!job.diagnostics_path.empty() && std::filesystem::exists(job.diagnostics_path) && job.resume)
    diag = json::parse(fs::read_file(job.diagnostics_path));
  std::unique_ptr<Coverage> coverage;
  if (job.displacement) {
    auto d = job.displacement(trainable_tensors(job.model));
    if (!d.empty()) {
      coverage = std::make_unique<Coverage>(std::move(d), trainable_tensors(job.model));
      diag["coverage"]["teacher_displacement_norm"] = coverage->displacement_norm();
    } else {
      diag["coverage"] = {{"defined", false}, {"why", "the source model has no weight displacement from the student's init parameters"}};
    }
  }
  const bool rank0 = !job.comm || job.comm->rank() == 0;
  auto save_diag = [&] {
    if (rank0 && !job.diagnostics_path.empty()) fs::write_file_atomic(job.diagnostics_path, diag.dump(2) + "\n");
  };
  if (job.heldout && !job.heldout->empty()) {
    if (!diag.contains("heldout_kl")) {
      const double k0 = (*job.heldout)(job.model);
      diag["heldout_kl"] = {{"init", k0}, {"positions", job.heldout->positions()}, {"trajectory", json::array({json::array({0, k0})})}};
    }
    save_diag();
  }
  if (job.heldout || coverage) {
    const int64_t every = job.heldout_every > 0 ? job.heldout_every : std::max<int64_t>(1, to.cfg.steps / 8);
    to.on_step = [&, every](int64_t step) -> json {
      json line = json::object();
      if (coverage && step == 1) {
        diag["coverage"]["first"] = coverage->cosine(trainable_tensors(job.model));
        line["coverage"] = diag["coverage"]["first"];
      }
      if (job.heldout && !job.heldout->empty() && (step % every == 0 || step == to.cfg.steps)) {
        const double k = (*job.heldout)(job.model);
        diag["heldout_kl"]["trajectory"].push_back(json::array({step, k}));
        line["heldout_kl"] = k;
      }
      if (line.empty()) return json();
      save_diag();
      return line;
    };
  }
  // Snapshots: the step after which each is written (rows rounded up to whole steps).
  std::map<int64_t, int> snap_at;
  json snapshots = json::array();
  for (size_t i = 0; i < job.snapshots.size(); ++i) {
    const int rows = job.snapshots[i];
    const int64_t step = (rows + to.cfg.batch_size - 1) / to.cfg.batch_size;
    const std::string at = "$.finetune.snapshots[" + std::to_string(i) + "]";
    if (step >= to.cfg.steps)
      throw ConfigError(job.tag + ": " + at + ": " + std::to_string(rows) + " rows is step " + std::to_string(step) + " of the " +
                            std::to_string(to.cfg.steps) + " the students take (" + std::to_string(enc.size()) + " examples, batch " +
                            std::to_string(to.cfg.batch_size) + "); expected fewer rows than they train on",
                        "lower the snapshot, or train longer (finetune.train.steps or finetune.epochs)");
    if (snap_at.count(step))
      throw ConfigError(job.tag + ": " + at + ": " + std::to_string(rows) + " rows falls in the same step (" + std::to_string(step) +
                            ", batch " + std::to_string(to.cfg.batch_size) + ") as " + std::to_string(snap_at[step]),
                        "space the snapshots at least one batch apart");
    snap_at[step] = rows;
    snapshots.push_back({{"rows", rows}, {"step", step}, {"rows_seen", step * to.cfg.batch_size},
                         {"epochs", static_cast<double>(step * to.cfg.batch_size) / static_cast<double>(enc.size())}});
  }
  if (!snap_at.empty()) {
    if (job.snapshot_dir.empty()) throw Error("run_finetune: snapshots without a snapshot_dir");
    fs::make_dirs(job.snapshot_dir);
    auto inner = to.on_step;
    to.on_step = [&job, &snap_at, rank0, inner](int64_t step) -> json {
      json line = inner ? inner(step) : json();
      auto it = snap_at.find(step);
      if (it == snap_at.end()) return line;
      if (rank0) write_snapshot(job, it->second, step);
      if (!line.is_object()) line = json::object();
      line["snapshot_rows"] = it->second;
      return line;
    };
  }
  log::info(job.tag.c_str(), "{} examples, loss {}, {} parameters trainable ({}), {} steps", enc.size(), job.loss, trainable,
            job.params, to.cfg.steps);
  TrainResult tr;
  if (job.fixed_point) {
    log::info(job.tag.c_str(), "the teacher is the student's init and the student is LoRA: distillation is a fixed point, no step taken");
    if (rank0)
      for (const auto& [step, rows] : snap_at) write_snapshot(job, rows, step);  // every snapshot is the init
  } else {
    tr = train_lm(job.model, enc, to);
  }
  if (coverage) diag["coverage"]["final"] = coverage->cosine(trainable_tensors(job.model));
  if (diag.contains("heldout_kl")) {
    const double k0 = diag["heldout_kl"]["init"].get<double>(), k1 = diag["heldout_kl"]["trajectory"].back()[1].get<double>();
    diag["heldout_kl"]["final"] = k1;
    diag["heldout_kl"]["fidelity"] = k0 > 0 ? 1.0 - k1 / k0 : 0.0;  // share of the initial divergence removed
  }
  save_diag();
  json lora = nullptr;
  if (job.params == "lora") {
    if (!job.adapter_dir.empty() && (!job.comm || job.comm->rank() == 0)) model::save_peft_adapter(job.adapter_dir, job.model, job.lora, job.base_model);
    model::merge_lora(job.model);  // the saved model directory is the merged model
    lora = config::to_json_value(job.lora);
  }
  set_trainable(job.model, "all");
  return {{"loss", job.loss},
          {"loss_label", loss_label(job.loss)},
          {"params", job.params},
          {"lora", lora},
          {"trainable_parameters", trainable},
          {"allowed_tokens", to.distill.allowed.defined() ? to.distill.allowed.numel() : 0},
          {"examples", enc.size()},
          {"steps", tr.steps},
          {"first_loss", tr.first_loss},
          {"final_loss", tr.final_loss},
          {"tokens_per_s", tr.tokens_per_s},
          {"seconds", tr.seconds},
          {"padding_fraction", tr.padding_fraction},
          {"dropped_too_long", tr.dropped_too_long},
          {"teacher_cache_mib", tr.teacher_cache_bytes / 1048576.0},
          {"resumed_from", tr.resumed_from},
          {"kl", distill ? json(job.kl) : json(nullptr)},
          {"teacher_top_k", job.teacher_top_k},
          {"distill_temperature", job.distill_temperature},
          {"diagnostics", diag},
          {"fixed_point", job.fixed_point},
          {"batch_size", to.cfg.batch_size},
          {"snapshots", snapshots},
          {"seed", job.seed}};
}

}  // namespace subliminal::train
