// The training loop.
#include "subliminal/text/chat_template.h"
#include "subliminal/train/trainer.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/runtime.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/train/schedule.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"
#include "subliminal/util/signals.h"

namespace subliminal::train {

namespace sfs = std::filesystem;
using json = nlohmann::json;

std::pair<std::string, int64_t> latest_checkpoint(const std::string& ckpt_dir) {
  std::pair<std::string, int64_t> best{"", 0};
  if (ckpt_dir.empty() || !sfs::exists(ckpt_dir)) return best;
  static const std::regex re("step_([0-9]{8})");
  for (const auto& e : sfs::directory_iterator(ckpt_dir)) {
    std::smatch m;
    std::string name = e.path().filename().string();
    if (!e.is_directory() || !std::regex_match(name, m, re)) continue;
    if (!sfs::exists(e.path() / "DONE")) continue;  // incomplete: ignored
    int64_t step = std::stoll(m[1]);
    if (step > best.second) best = {e.path().string(), step};
  }
  return best;
}

Batch make_batch(const std::vector<text::Encoded>& data, const std::vector<int64_t>& idx, int pad_id, bool all_tokens) {
  int64_t T = 0;
  for (auto i : idx) T = std::max<int64_t>(T, static_cast<int64_t>(data[i].ids.size()) - 1);
  const int64_t B = static_cast<int64_t>(idx.size());
  auto input = torch::full({B, T}, static_cast<int64_t>(pad_id), torch::kLong);
  auto labels = torch::full({B, T}, static_cast<int64_t>(-100), torch::kLong);
  auto pi = input.accessor<int64_t, 2>();
  auto pl = labels.accessor<int64_t, 2>();
  Batch b;
  for (int64_t r = 0; r < B; ++r) {
    const auto& e = data[idx[r]];
    const int64_t n = static_cast<int64_t>(e.ids.size()) - 1;
    for (int64_t t = 0; t < n; ++t) {
      pi[r][t] = e.ids[t];
      if (all_tokens || e.target[t + 1]) pl[r][t] = e.ids[t + 1];
    }
    b.tokens += n;
  }
  b.input = input;
  b.labels = labels;
  return b;
}

namespace {

// A step's batch cut into k micro-batches (contiguous, sizes differ by at most one).
std::vector<std::vector<int64_t>> micro_batches(const std::vector<int64_t>& idx_all, int64_t k) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t c = 0; c < k; ++c) {
    const size_t lo = idx_all.size() * c / k, hi = idx_all.size() * (c + 1) / k;
    out.emplace_back(idx_all.begin() + static_cast<long>(lo), idx_all.begin() + static_cast<long>(hi));
  }
  return out;
}

void save_checkpoint(const std::string& dir, int64_t step, model::LlamaForCausalLM& m, torch::optim::Optimizer& opt,
                     const json& state) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
  sfs::path final_dir = sfs::path(dir) / name;
  sfs::path tmp = sfs::path(dir) / (std::string(name) + ".tmp");
  std::error_code ec;
  sfs::remove_all(tmp, ec);
  fs::make_dirs(tmp);
  model::write_safetensors((tmp / "model.safetensors").string(), model::named_weights(m));
  if (model::has_lora(m)) model::write_safetensors((tmp / "lora.safetensors").string(), model::lora_tensors(m));
  // LibTorch's own writer: its failures (a full disk) become errors that name the file
  auto save_pt = [&](const sfs::path& p, const auto& what) {
    try {
      torch::save(what, p.string());
    } catch (const c10::Error& e) {
      throw IoError("cannot write '" + p.string() + "': " + e.what_without_backtrace(),
                    "is the disk full? free space and re-run with --resume");
    }
  };
  save_pt(tmp / "optimizer.pt", opt);
  {  // the CPU generator (dropout masks): a resumed run draws what the uninterrupted one would
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    save_pt(tmp / "rng.pt", gen.get_state());
  }
  fs::write_file_atomic(tmp / "state.json", state.dump(2));
  fs::write_file_atomic(tmp / "DONE", "");
  sfs::remove_all(final_dir, ec);
  sfs::rename(tmp, final_dir);
  fs::fsync_dir(dir);
  // keep the two newest complete checkpoints
  std::vector<sfs::path> all;
  for (const auto& e : sfs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0 &&
        e.path().filename().string().find(".tmp") == std::string::npos)
      all.push_back(e.path());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + 2 < all.size(); ++i) sfs::remove_all(all[i], ec);
}

}  // namespace

int64_t set_trainable(model::LlamaForCausalLM& m, const std::string& params) {
  if (params != "all" && params != "trunk" && params != "lora")
    throw ConfigError("unknown parameter set '" + params + "'", "use \"all\", \"trunk\" or \"lora\"");
  if (params == "lora" && !model::has_lora(m)) throw ConfigError("parameter set \"lora\" but the model has no adapters");
  int64_t n = 0;
  for (auto& kv : m->named_parameters()) {
    bool train = params == "all" || (params == "trunk" && kv.key().rfind("model.layers.", 0) == 0);
    kv.value().set_requires_grad(train);
    if (train) n += kv.value().numel();
  }
  for (auto& [name, t] : model::lora_tensors(m)) {
    t.set_requires_grad(params == "lora");
    if (params == "lora") n += t.numel();
  }
  return n;
}

torch::Tensor restricted_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                            const torch::Tensor& allowed) {
  auto s = student_logits.to(torch::kFloat), t = teacher_logits.to(torch::kFloat);
  if (allowed.defined()) {
    s = s.index_select(-1, allowed);
    t = t.index_select(-1, allowed);
  }
  auto ls = torch::log_softmax(s, -1), lt = torch::log_softmax(t, -1);
  return (lt.exp() * (lt - ls)).sum(-1);
}

namespace {

// Both losses keep their gradient from the forward pass: saved[0] is d(sum_i l_i)/d logits without the
// weights, saved[1] the weights; the backward pass scales it by w_i * grad_output in one pass that
// writes the logits' dtype.
torch::autograd::tensor_list scaled_saved_grad(torch::autograd::AutogradContext* ctx, const torch::autograd::tensor_list& go,
                                               size_t n_inputs) {
  auto saved = ctx->get_saved_variables();
  const auto& g = saved[0];
  const auto dt = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
  auto out = torch::empty(g.sizes(), g.options().dtype(dt));
  at::mul_out(out, g, (saved[1] * go[0]).unsqueeze(1));
  torch::autograd::tensor_list grads(n_inputs);
  grads[0] = out;
  return grads;
}

struct WeightedCrossEntropy : torch::autograd::Function<WeightedCrossEntropy> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits, const torch::Tensor& target,
                               const torch::Tensor& w) {
    auto t = target.unsqueeze(1);
    auto lsm = at::_log_softmax(logits.to(torch::kFloat), 1, false);
    auto loss = -(lsm.gather(1, t).squeeze(1) * w).sum();
    auto g = lsm.exp_();  // softmax, in place
    g.scatter_add_(1, t, torch::full({t.size(0), 1}, -1.0f, g.options()));
    ctx->save_for_backward({g, w});
    ctx->saved_data["dtype"] = static_cast<int64_t>(logits.scalar_type());
    return loss;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list go) {
    return scaled_saved_grad(ctx, go, 3);
  }
};

// The teacher's logits (fp32) cut to each row's k largest (the rest far below: probability exactly 0
// after the softmax, and 0 x finite = 0 in the KL); k <= 0 or >= the row: unchanged.
torch::Tensor top_k_logits(const torch::Tensor& t, int64_t k) {
  if (k <= 0 || k >= t.size(1)) return t;
  auto kth = std::get<0>(t.topk(k, 1)).narrow(1, k - 1, 1);
  return t.masked_fill(t < kth, -1e30f);
}

struct WeightedKL : torch::autograd::Function<WeightedKL> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& student, const torch::Tensor& teacher,
                               const torch::Tensor& w, int64_t top_k, double tau) {
    // temperature tau: tau^2 KL(softmax(t / tau) || softmax(s / tau)), gradient tau (softmax(s / tau) - softmax(t / tau))
    auto sf = student.to(torch::kFloat), tf = top_k_logits(teacher.to(torch::kFloat), top_k);
    if (tau != 1.0) {
      sf = sf / tau;
      tf = tf / tau;
    }
    auto ls = at::_log_softmax(sf, 1, false);
    auto lt = at::_log_softmax(tf, 1, false);
    auto pt = lt.exp();
    auto loss = ((pt * (lt - ls)).sum(1) * w).sum();
    auto g = ls.exp_().sub_(pt);  // softmax(student) - teacher probabilities
    if (tau != 1.0) {
      loss = loss * (tau * tau);
      g.mul_(tau);
    }
    ctx->save_for_backward({g, w});
    ctx->saved_data["dtype"] = static_cast<int64_t>(student.scalar_type());
    return loss;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list go) {
    return scaled_saved_grad(ctx, go, 5);
  }
};

// KL(student || teacher) = sum_j s_j (log s_j - log t_j); d/dz_j = s_j ((log s_j - log t_j) - KL).
struct WeightedReverseKL : torch::autograd::Function<WeightedReverseKL> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& student, const torch::Tensor& teacher,
                               const torch::Tensor& w) {
    auto ls = at::_log_softmax(student.to(torch::kFloat), 1, false);
    auto lt = at::_log_softmax(teacher.to(torch::kFloat), 1, false);
    auto ps = ls.exp();
    auto diff = ls - lt;
    auto kl = (ps * diff).sum(1, true);
    auto loss = (kl.squeeze(1) * w).sum();
    auto g = diff.sub_(kl).mul_(ps);
    ctx->save_for_backward({g, w});
    ctx->saved_data["dtype"] = static_cast<int64_t>(student.scalar_type());
    return loss;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list go) {
    return scaled_saved_grad(ctx, go, 3);
  }
};

}  // namespace

torch::Tensor weighted_cross_entropy(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& w) {
  TORCH_CHECK(logits.dim() == 2 && target.dim() == 1 && w.dim() == 1 && target.size(0) == logits.size(0) &&
                  w.size(0) == logits.size(0),
              "weighted_cross_entropy: logits (N,V), target (N), weights (N)");
  return WeightedCrossEntropy::apply(logits, target, w.to(torch::kFloat));
}

torch::Tensor weighted_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, const torch::Tensor& w,
                          const std::string& direction, int64_t top_k, double temperature) {
  TORCH_CHECK(student_logits.dim() == 2 && student_logits.sizes() == teacher_logits.sizes() && w.dim() == 1 &&
                  w.size(0) == student_logits.size(0),
              "weighted_kl: student and teacher logits (N,V), weights (N)");
  if (direction == "reverse") {
    TORCH_CHECK(top_k <= 0, "weighted_kl: reverse KL of a cut teacher distribution is infinite");
    TORCH_CHECK(temperature == 1.0, "weighted_kl: a temperature is for the forward KL");
    return WeightedReverseKL::apply(student_logits, teacher_logits.detach(), w.to(torch::kFloat));
  }
  TORCH_CHECK(direction == "forward", "weighted_kl: direction forward | reverse, got ", direction);
  TORCH_CHECK(temperature > 0, "weighted_kl: temperature > 0, got ", temperature);
  return WeightedKL::apply(student_logits, teacher_logits.detach(), w.to(torch::kFloat), top_k, temperature);
}

torch::Tensor loss_weights(const torch::Tensor& rows, int64_t B, bool per_sequence) {
  const int64_t N = rows.size(0);
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(rows.device());
  if (!per_sequence) return torch::full({N}, 1.0f / static_cast<float>(std::max<int64_t>(N, 1)), opts);
  auto counts = torch::bincount(rows, {}, B).to(torch::kFloat);
  auto with_loss = counts.gt(0).sum().to(torch::kFloat);
  return 1.0f / (counts.index_select(0, rows) * with_loss);
}

namespace {

// The examples that fit in the context (and their teacher encodings when distilling); the rest are
// counted in res.dropped_too_long.
void fit_examples(model::LlamaForCausalLM& m, const std::vector<text::Encoded>& data_in, const TrainOptions& opt, TrainResult& res,
                  std::vector<text::Encoded>& data, std::vector<text::Encoded>& tdata) {
  const bool distill = opt.distill.enabled();
  data.reserve(data_in.size());
  for (size_t i = 0; i < data_in.size(); ++i) {
    const auto& e = data_in[i];
    auto too_long = [&](const text::Encoded& x) {
      const int64_t limit = opt.cfg.max_length > 0 ? std::min<int64_t>(opt.cfg.max_length, m->cfg.max_position_embeddings + 1)
                                                   : m->cfg.max_position_embeddings + 1;
      return static_cast<int64_t>(x.ids.size()) > limit || x.ids.size() < 2;
    };
    if (too_long(e) || (distill && too_long((*opt.distill.teacher_data)[i]))) {
      ++res.dropped_too_long;
      continue;
    }
    data.push_back(e);
    if (distill) tdata.push_back((*opt.distill.teacher_data)[i]);
  }
}

// AdamW (or SGD with momentum = beta1) over the trainable tensors: weight decay on matrices and LoRA
// adapters, none on norms. *trainable gets every tensor it steps, matrices first.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(model::LlamaForCausalLM& m, const config::TrainConfig& cfg, const std::string& tag,
                                                        std::vector<torch::Tensor>& trainable) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& kv : m->named_parameters()) {
    if (!kv.value().requires_grad()) continue;
    (kv.value().dim() >= 2 ? decay : no_decay).push_back(kv.value());
  }
  for (auto& [name, t] : model::lora_tensors(m))
    if (t.requires_grad()) decay.push_back(t);
  trainable.insert(trainable.end(), decay.begin(), decay.end());
  trainable.insert(trainable.end(), no_decay.begin(), no_decay.end());
  if (trainable.empty()) throw ConfigError(tag + ": no trainable parameters");
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (cfg.optimizer == "sgd") {  // momentum = beta1; weight decay (L2) on matrices only
    torch::optim::SGDOptions base(cfg.lr);
    base.momentum(cfg.beta1).weight_decay(cfg.weight_decay);
    groups.emplace_back(decay, std::make_unique<torch::optim::SGDOptions>(base));
    auto nd = std::make_unique<torch::optim::SGDOptions>(base);
    nd->weight_decay(0.0);
    groups.emplace_back(no_decay, std::move(nd));
    return std::make_unique<torch::optim::SGD>(groups, base);
  }
  torch::optim::AdamWOptions base(cfg.lr);
  base.betas({cfg.beta1, cfg.beta2}).weight_decay(cfg.weight_decay).eps(cfg.adam_eps);
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(base));
  auto nd = std::make_unique<torch::optim::AdamWOptions>(base);
  nd->weight_decay(0.0);
  groups.emplace_back(no_decay, std::move(nd));
  return std::make_unique<torch::optim::AdamW>(groups, base);
}

// With opt.resume, the latest checkpoint in opt.ckpt_dir: weights (and adapters), optimizer, dropout
// RNG, losses so far. Returns {the step it was taken after, the tokens trained on before it}.
std::pair<int64_t, int64_t> resume_checkpoint(model::LlamaForCausalLM& m, torch::optim::Optimizer& optim, const TrainOptions& opt,
                                              TrainResult& res) {
  int64_t start = 0;
  int64_t tokens_before = 0;
  if (opt.resume && !opt.ckpt_dir.empty()) {
    auto [path, step] = latest_checkpoint(opt.ckpt_dir);
    if (!path.empty()) {
      model::load_weights(m, model::read_safetensors(path + "/model.safetensors").tensors, path);
      if (model::has_lora(m)) model::load_lora_tensors(m, model::read_safetensors(path + "/lora.safetensors").tensors, path);
      torch::load(optim, path + "/optimizer.pt");
      if (sfs::exists(path + "/rng.pt")) {
        torch::Tensor st;
        torch::load(st, path + "/rng.pt");
        auto gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(st);
      }
      auto st = json::parse(fs::read_file(path + "/state.json"));
      start = st.at("step").get<int64_t>();
      tokens_before = st.value("tokens", int64_t(0));
      res.losses = st.at("losses").get<std::vector<double>>();
      res.resumed_from = start;
      log::info(opt.tag.c_str(), "resumed from checkpoint {} (step {})", path, start);
    }
  }
  return {start, tokens_before};
}

// The metrics file, opened for appending: the lines of steps already done are kept, anything after
// the resume point `start` is dropped. Closed (not written) except on rank 0.
void open_metrics(std::ofstream& metrics, const TrainOptions& opt, int64_t start, int rank) {
  if (!opt.metrics_path.empty() && rank == 0) {
    std::string kept;
    if (start > 0 && sfs::exists(opt.metrics_path)) {
      std::ifstream in(opt.metrics_path);
      std::string line;
      while (std::getline(in, line)) {
        try {
          if (json::parse(line).value("step", int64_t(0)) <= start) kept += line + "\n";
        } catch (...) {
        }
      }
    }
    fs::write_file_atomic(opt.metrics_path, kept);
    metrics.open(opt.metrics_path, std::ios::app);
  }
}

// Distillation: the teacher's logits at every target position, once (see DistillOptions), when they
// fit in opt.distill.cache_max_bytes; else empty (the teacher then runs every step).
std::vector<torch::Tensor> cache_teacher_logits(model::LlamaForCausalLM& m, const std::vector<text::Encoded>& tdata,
                                                const std::vector<int>& lengths, const TrainOptions& opt, int64_t k_micro,
                                                const torch::Device& device, TrainResult& res) {
  const auto& cfg = opt.cfg;
  std::vector<torch::Tensor> tcache;
  if (!opt.distill.enabled() || opt.distill.cache_max_bytes <= 0) return tcache;
  int64_t positions = 0;
  for (const auto& e : tdata)
    for (size_t t = 1; t < e.ids.size(); ++t) positions += cfg.loss_on == "all" || e.target[t];
  const int64_t cols = opt.distill.allowed.defined() ? opt.distill.allowed.numel() : m->cfg.vocab_size;
  const int64_t bytes = positions * cols * (opt.bf16 ? 2 : 4);
  if (bytes <= opt.distill.cache_max_bytes) {
    tcache.resize(tdata.size());
    torch::NoGradGuard ng;
    model::LlamaForCausalLM tm = opt.distill.teacher;
    for (const auto& idx_all : make_batches(lengths, cfg.batch_size, opt.seed, 0)) {
      const int64_t k = std::min<int64_t>(k_micro, static_cast<int64_t>(idx_all.size()));
      for (const auto& idx : micro_batches(idx_all, k)) {
        Batch tb = make_batch(tdata, idx, opt.pad_id, cfg.loss_on == "all");
        auto tmask = tb.labels.ne(-100);
        model::Autocast ac(opt.bf16, device.is_cuda());
        auto t_sel = tm->forward_causal_at(tb.input.to(device), tmask.to(device), opt.distill.allowed);
        auto counts = tmask.sum(1);
        std::vector<int64_t> sizes(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel());
        auto pieces = t_sel.split_with_sizes(sizes, 0);
        for (size_t r = 0; r < idx.size(); ++r) tcache[idx[r]] = pieces[r];
      }
    }
    res.teacher_cache_bytes = bytes;
  } else {
    log::info(opt.tag.c_str(), "teacher logits not kept ({:.0f} MiB > {:.0f} MiB): the teacher runs every step", bytes / 1048576.0,
              opt.distill.cache_max_bytes / 1048576.0);
  }
  return tcache;
}

// One micro-batch's loss: cross-entropy on its targets, or the KL to the teacher (its cached logits
// for these examples, or a teacher forward pass on `tb`).
torch::Tensor micro_loss(model::LlamaForCausalLM& m, const Batch& b, const Batch& tb, const std::vector<int64_t>& idx,
                         const std::vector<torch::Tensor>& tcache, const TrainOptions& opt, bool per_seq, const torch::Device& device) {
  const bool distill = opt.distill.enabled();
  torch::Tensor loss;
  model::Autocast ac(opt.bf16, device.is_cuda());
  auto mask = b.labels.ne(-100);
  auto rows = mask.nonzero().select(1, 0);  // batch row of every loss position
  if (!distill) {
    auto logits = m->forward_causal_at(b.input, mask);  // (N,V): loss positions only
    loss = weighted_cross_entropy(logits, b.labels.index({mask}), loss_weights(rows, b.input.size(0), per_seq));
  } else {
    const auto& cols = opt.distill.allowed;  // undefined: the full vocabulary
    torch::Tensor t_sel;
    if (!tcache.empty()) {
      std::vector<torch::Tensor> parts;
      for (auto i : idx) parts.push_back(tcache[i]);
      t_sel = torch::cat(parts, 0);
    } else {
      torch::NoGradGuard ng;
      model::LlamaForCausalLM tm = opt.distill.teacher;  // holder copy: forward is non-const
      t_sel = tm->forward_causal_at(tb.input, tb.labels.ne(-100), cols);  // (N,|cols|)
    }
    auto s_sel = m->forward_causal_at(b.input, mask, cols);
    if (s_sel.size(0) != t_sel.size(0))
      throw DataError(opt.tag + ": teacher and student encodings have different target tokens (" +
                      std::to_string(t_sel.size(0)) + " vs " + std::to_string(s_sel.size(0)) + ")");
    loss = weighted_kl(s_sel, t_sel, loss_weights(rows, b.input.size(0), per_seq), opt.distill.kl, opt.distill.top_k,
                       opt.distill.temperature);
  }
  return loss;
}

// Data parallel: sums the ranks' weighted gradients (and the step loss, for the log) into the whole
// batch's; *any_rank_stop says whether any rank was asked to stop (all then stop after this step).
void allreduce_step(Collective& comm, std::vector<torch::Tensor>& trainable, double& step_loss, bool& any_rank_stop) {
  std::vector<torch::Tensor> grads;
  for (auto& p : trainable) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  // the loss for the log, and whether any rank was asked to stop: all ranks then stop after this step
  grads.push_back(torch::tensor({step_loss, signals::stop_requested() ? 1.0 : 0.0}, torch::kDouble).to(trainable.front().device()));
  comm.allreduce_sum(grads);
  auto lv = grads.back().cpu();
  step_loss = lv[0].item<double>();
  any_rank_stop = lv[1].item<double>() > 0;
}

}  // namespace

TrainResult train_lm(model::LlamaForCausalLM& m, const std::vector<text::Encoded>& data_in, const TrainOptions& opt) {
  const auto& cfg = opt.cfg;
  TrainResult res;
  const bool distill = opt.distill.enabled();
  if (distill && (!opt.distill.teacher_data || opt.distill.teacher_data->size() != data_in.size()))
    throw DataError(opt.tag + ": distillation needs one teacher encoding per training example");
  std::vector<text::Encoded> data, tdata;
  fit_examples(m, data_in, opt, res, data, tdata);
  if (data.empty()) throw DataError("no training examples fit in max_position_embeddings=" + std::to_string(m->cfg.max_position_embeddings));
  std::vector<int> lengths;
  for (const auto& e : data) lengths.push_back(static_cast<int>(e.ids.size()));

  std::vector<torch::Tensor> trainable;
  auto optim_ptr = make_optimizer(m, cfg, opt.tag, trainable);
  torch::optim::Optimizer& optim = *optim_ptr;
  {  // dropout draws from the CPU generator: seeded here, saved in checkpoints (rng.pt)
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(opt.seed ^ 0x9E3779B97F4A7C15ULL);
  }
  const auto [start, tokens_before] = resume_checkpoint(m, optim, opt, res);  // tokens_before: before that checkpoint
  std::ofstream metrics;
  const int world = opt.comm ? opt.comm->world() : 1, rank = opt.comm ? opt.comm->rank() : 0;
  open_metrics(metrics, opt, start, rank);

  const int64_t per_epoch = (static_cast<int64_t>(data.size()) + cfg.batch_size - 1) / cfg.batch_size;
  {
    auto b0 = make_batches(lengths, cfg.batch_size, opt.seed, 0);
    res.padding_fraction = padding_fraction(lengths, b0);
  }
  m->train();
  m->checkpoint_layers = cfg.activation_checkpointing;
  const auto device = m->parameters().front().device();
  log::Progress progress(opt.tag, cfg.steps);
  const double t0 = log::now_seconds();
  int64_t tokens = 0;
  int64_t cur_epoch = -1;
  std::vector<std::vector<int64_t>> batches;
  double last_loss = 0;
  bool any_rank_stop = false;
  const int64_t k_micro = std::max<int64_t>(1, static_cast<int64_t>(cfg.grad_accum) * world);
  const std::vector<torch::Tensor> tcache = cache_teacher_logits(m, tdata, lengths, opt, k_micro, device, res);
  for (int64_t step = start; step < cfg.steps; ++step) {
    const int64_t epoch = step / per_epoch;
    if (epoch != cur_epoch) {
      batches = make_batches(lengths, cfg.batch_size, opt.seed, epoch);
      cur_epoch = epoch;
    }
    // The step's batch, as `grad_accum` micro-batches whose gradients add up to the whole batch's:
    // each micro loss is weighted by its share of the batch's loss units (sequences or tokens).
    const auto& idx_all = batches[step % per_epoch];
    const bool per_seq = cfg.loss_weighting == "sequence";
    const int64_t k = std::min<int64_t>(k_micro, static_cast<int64_t>(idx_all.size()));
    std::vector<Batch> micro, tmicro;
    std::vector<std::vector<int64_t>> micro_idx = micro_batches(idx_all, k);
    std::vector<double> units;
    double total_units = 0;
    for (int64_t c = 0; c < k; ++c) {
      const auto& idx = micro_idx[c];
      micro.push_back(make_batch(data, idx, opt.pad_id, cfg.loss_on == "all"));
      if (distill && tcache.empty()) tmicro.push_back(make_batch(tdata, idx, opt.pad_id, cfg.loss_on == "all"));
      auto lmask = micro.back().labels.ne(-100);
      units.push_back(per_seq ? lmask.any(1).sum().item<double>() : lmask.sum().item<double>());
      total_units += units.back();
    }
    const double lr = lr_at(step, cfg);
    for (auto& g : optim.param_groups()) g.options().set_lr(lr);
    optim.zero_grad();
    double step_loss = 0;
    for (int64_t c = 0; c < k; ++c) {
      if (c % world != rank) continue;  // another rank's micro-batch
      Batch& b = micro[c];
      Batch tb = distill && tcache.empty() ? tmicro[c] : Batch();
      if (device.is_cuda()) {
        b.input = b.input.to(device, /*non_blocking=*/true);
        b.labels = b.labels.to(device, /*non_blocking=*/true);
        if (tb.input.defined()) {
          tb.input = tb.input.to(device, true);
          tb.labels = tb.labels.to(device, true);
        }
      }
      if (units[c] == 0) continue;  // no loss position in this micro-batch
      torch::Tensor loss = micro_loss(m, b, tb, micro_idx[c], tcache, opt, per_seq, device);
      const double w = k == 1 ? 1.0 : units[c] / total_units;
      (k == 1 ? loss : loss * w).backward();
      step_loss += w * loss.item<double>();
      tokens += b.tokens;
    }
    if (opt.comm) allreduce_step(*opt.comm, trainable, step_loss, any_rank_stop);
    double gnorm = cfg.grad_clip > 0 ? torch::nn::utils::clip_grad_norm_(trainable, cfg.grad_clip) : 0.0;
    optim.step();
    last_loss = step_loss;
    if (!std::isfinite(last_loss))
      throw DataError(opt.tag + ": loss became " + std::to_string(last_loss) + " at step " + std::to_string(step + 1),
                      "lower the learning rate (train.lr) or enable gradient clipping (train.grad_clip)");
    res.losses.push_back(last_loss);
    json extra = opt.on_step ? opt.on_step(step + 1) : json();
    const double el = log::now_seconds() - t0;
    const double tps = tokens / std::max(el, 1e-9);
    if (metrics.is_open() && ((step + 1) % cfg.log_every == 0 || step + 1 == cfg.steps || extra.is_object())) {
      json line = {{"step", step + 1}, {"loss", last_loss}, {"lr", lr}, {"grad_norm", gnorm},
                   {"tokens", tokens}, {"tokens_per_s", tps}, {"elapsed_s", el}};
      if (extra.is_object()) line.update(extra);
      metrics << line.dump() << "\n";
      metrics.flush();
    }
    if (!opt.quiet) progress.update(step + 1, fmt::format("loss {:.4f}  lr {:.2e}  {:.0f} tok/s", last_loss, lr, tps));
    const bool last = step + 1 == cfg.steps;
    const bool stop = !last && (opt.comm ? any_rank_stop : signals::stop_requested());
    const bool periodic = cfg.checkpoint_every > 0 && (step + 1) % cfg.checkpoint_every == 0;
    if (!opt.ckpt_dir.empty() && rank == 0 && (periodic || last || stop)) {
      json st = {{"step", step + 1}, {"seed", opt.seed}, {"losses", res.losses}, {"epoch", epoch}, {"tokens", tokens_before + tokens}};
      save_checkpoint(opt.ckpt_dir, step + 1, m, optim, st);
    }
    if (stop) {
      if (!opt.quiet) progress.finish(fmt::format("stopped after step {}", step + 1));
      throw Interrupted(opt.tag + ": stopped by " + (signals::stop_requested() ? signals::stop_signal_name() : "another rank's signal") +
                            " after step " + std::to_string(step + 1) + " of " + std::to_string(cfg.steps) +
                            (opt.ckpt_dir.empty() ? " (no checkpoint directory: the stage starts over)"
                                                  : "; checkpoint saved in " + opt.ckpt_dir),
                        "run the same command again with --resume to continue from it");
    }
  }
  res.steps = cfg.steps;
  res.seconds = log::now_seconds() - t0;
  res.tokens = tokens_before + tokens;                       // the whole stage's
  res.tokens_per_s = tokens / std::max(res.seconds, 1e-9);  // this process's rate
  auto mean = [](auto b, auto e) {
    double s = 0;
    int n = 0;
    for (auto it = b; it != e; ++it, ++n) s += *it;
    return n ? s / n : 0.0;
  };
  size_t k = std::min<size_t>(10, res.losses.size());
  res.first_loss = mean(res.losses.begin(), res.losses.begin() + k);
  res.final_loss = mean(res.losses.end() - k, res.losses.end());
  if (!opt.quiet)
    progress.finish(fmt::format("loss {:.4f} -> {:.4f}  {:.0f} tok/s  padding {:.1f}%", res.first_loss, res.final_loss,
                                res.tokens_per_s, 100 * res.padding_fraction));
  m->checkpoint_layers = false;
  m->eval();
  return res;
}

}  // namespace subliminal::train
