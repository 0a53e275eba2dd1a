// Transfer diagnostics: data divergence (LLS, restricted KL), held-out imitation, coverage.
#include "subliminal/text/chat_template.h"
#include "subliminal/train/diagnostics.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "subliminal/model/lora.h"
#include "subliminal/model/runtime.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/error.h"

namespace subliminal::train {

using json = nlohmann::json;

namespace {

std::vector<std::vector<int64_t>> consecutive(size_t n, int batch_size) {
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < n; i += static_cast<size_t>(batch_size)) {
    out.emplace_back();
    for (size_t j = i; j < std::min(n, i + static_cast<size_t>(batch_size)); ++j) out.back().push_back(static_cast<int64_t>(j));
  }
  return out;
}

// Rows of `logits` restricted to `allowed` (undefined: every column), as fp32 log-probabilities.
torch::Tensor restricted_logp(const torch::Tensor& logits, const torch::Tensor& allowed) {
  auto x = logits.to(torch::kFloat);
  if (allowed.defined()) x = x.index_select(-1, allowed);
  return torch::log_softmax(x, -1);
}

void check_same_targets(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
  if (!a.equal(b))
    throw DataError(std::string(what) + ": the two views of an example have different response tokens (a system prompt that changes "
                                        "how the response tokenises?)");
}

}  // namespace

json PairScores::to_json() const {
  return {{"examples", lls.size()}, {"positions", positions}, {"mean_kl", mean_kl}, {"mean_lls", mean_lls},
          {"mean_lls_per_token", mean_lls_per_token}};
}

PairScores score_pair(model::LlamaForCausalLM a, const std::string& a_system, model::LlamaForCausalLM b, const std::string& b_system,
                      const text::Tokenizer& tok, const std::string& chat_template, const std::vector<data::Conversation>& convs,
                      const torch::Tensor& allowed, bool bf16, int batch_size) {
  PairScores s;
  if (convs.empty()) return s;
  text::ChatTemplate chat(tok, chat_template);
  std::vector<text::Encoded> ea, eb;
  for (const auto& c : convs) {
    ea.push_back(chat.encode(data::with_system(c, a_system)));
    eb.push_back(chat.encode(data::with_system(c, b_system)));
  }
  const bool ta = a->is_training(), tb = b->is_training();
  a->eval();
  b->eval();
  const auto dev = a->parameters().front().device();
  const auto cols = allowed.defined() ? allowed.to(dev) : allowed;
  torch::NoGradGuard ng;
  model::Autocast ac(bf16, dev.is_cuda());
  double kl_sum = 0, lls_sum = 0;
  int64_t tok_sum = 0;
  for (const auto& idx : consecutive(convs.size(), batch_size)) {
    Batch ba = make_batch(ea, idx, tok.pad_id(), false), bb = make_batch(eb, idx, tok.pad_id(), false);
    auto ma = ba.labels.ne(-100), mb = bb.labels.ne(-100);
    auto la = a->forward_causal_at(ba.input.to(dev), ma.to(dev)).to(torch::kFloat);  // (N,V)
    auto lb = b->forward_causal_at(bb.input.to(dev), mb.to(dev)).to(torch::kFloat);
    auto ya = ba.labels.index({ma}), yb = bb.labels.index({mb});
    check_same_targets(ya, yb, "score_pair");
    auto y = ya.to(dev).unsqueeze(1);
    auto d = (torch::log_softmax(la, -1).gather(1, y) - torch::log_softmax(lb, -1).gather(1, y)).squeeze(1).cpu();
    auto pa = restricted_logp(la, cols), pb = restricted_logp(lb, cols);
    kl_sum += (pa.exp() * (pa - pb)).sum().item<double>();
    auto rows = ma.nonzero().select(1, 0);
    auto per_row = torch::zeros({static_cast<int64_t>(idx.size())}, torch::kDouble).index_add_(0, rows, d.to(torch::kDouble));
    auto counts = torch::bincount(rows, {}, static_cast<int64_t>(idx.size()));
    for (size_t r = 0; r < idx.size(); ++r) {
      s.lls.push_back(per_row[static_cast<int64_t>(r)].item<double>());
      s.tokens.push_back(counts[static_cast<int64_t>(r)].item<int64_t>());
      lls_sum += s.lls.back();
      tok_sum += s.tokens.back();
    }
  }
  if (ta) a->train();
  if (tb) b->train();
  s.positions = tok_sum;
  s.mean_kl = tok_sum ? kl_sum / tok_sum : 0.0;
  s.mean_lls = lls_sum / static_cast<double>(s.lls.size());
  s.mean_lls_per_token = tok_sum ? lls_sum / tok_sum : 0.0;
  return s;
}

HeldoutKL::HeldoutKL(model::LlamaForCausalLM source, const std::string& source_system, const text::Tokenizer& tok,
                     const std::string& chat_template, const std::vector<data::Conversation>& convs, torch::Tensor allowed, bool bf16,
                     int batch_size)
    : allowed_(std::move(allowed)), bf16_(bf16) {
  if (convs.empty()) return;
  text::ChatTemplate chat(tok, chat_template);
  std::vector<text::Encoded> es, et;
  for (const auto& c : convs) {
    es.push_back(chat.encode(data::with_system(c, "")));
    et.push_back(chat.encode(data::with_system(c, source_system)));
  }
  const bool was = source->is_training();
  source->eval();
  const auto dev = source->parameters().front().device();
  if (allowed_.defined()) allowed_ = allowed_.to(dev);
  torch::NoGradGuard ng;
  model::Autocast ac(bf16_, dev.is_cuda());
  for (const auto& idx : consecutive(convs.size(), batch_size)) {
    Batch bs = make_batch(es, idx, tok.pad_id(), false), bt = make_batch(et, idx, tok.pad_id(), false);
    auto ms = bs.labels.ne(-100), mt = bt.labels.ne(-100);
    check_same_targets(bs.labels.index({ms}), bt.labels.index({mt}), "held-out imitation");
    source_logp_.push_back(restricted_logp(source->forward_causal_at(bt.input.to(dev), mt.to(dev), allowed_), {}));
    batches_.emplace_back(bs.input.to(dev), ms.to(dev));
    positions_ += ms.sum().item<int64_t>();
  }
  if (was) source->train();
}

double HeldoutKL::operator()(model::LlamaForCausalLM m) const {
  if (batches_.empty()) return std::numeric_limits<double>::quiet_NaN();
  const bool was = m->is_training();
  m->eval();
  torch::NoGradGuard ng;
  double sum = 0;
  {
    model::Autocast ac(bf16_, m->parameters().front().device().is_cuda());
    for (size_t i = 0; i < batches_.size(); ++i) {
      auto lp = restricted_logp(m->forward_causal_at(batches_[i].first, batches_[i].second, allowed_), {});
      const auto& lt = source_logp_[i];
      sum += (lt.exp() * (lt - lp)).sum().item<double>();
    }
  }
  if (was) m->train();
  return sum / static_cast<double>(positions_);
}

std::map<std::string, torch::Tensor> trainable_tensors(const model::LlamaForCausalLM& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& kv : m->named_parameters())
    if (kv.value().requires_grad()) out[kv.key()] = kv.value();
  for (const auto& [name, t] : model::lora_tensors(m))
    if (t.requires_grad()) out[name] = t;
  return out;
}

Coverage::Coverage(std::map<std::string, torch::Tensor> displacement, const std::map<std::string, torch::Tensor>& init)
    : d_(std::move(displacement)) {
  double n2 = 0;
  for (auto& [name, d] : d_) {
    auto it = init.find(name);
    if (it == init.end()) throw Error("coverage: the teacher's displacement has " + name + ", which the student does not train");
    if (!d.sizes().equals(it->second.sizes()))
      throw Error("coverage: " + name + " has another shape in the teacher's displacement than in the student");
    d = d.detach().to(torch::kCPU, torch::kDouble);
    init_[name] = it->second.detach().to(torch::kCPU, torch::kDouble).clone();
    n2 += d.pow(2).sum().item<double>();
  }
  dnorm_ = std::sqrt(n2);
}

double Coverage::cosine(const std::map<std::string, torch::Tensor>& now) const {
  double dot = 0, u2 = 0;
  for (const auto& [name, d] : d_) {
    auto it = now.find(name);
    if (it == now.end()) throw Error("coverage: the student has no trainable " + name);
    auto u = it->second.detach().to(torch::kCPU, torch::kDouble) - init_.at(name);
    dot += (u * d).sum().item<double>();
    u2 += u.pow(2).sum().item<double>();
  }
  if (u2 == 0 || dnorm_ == 0) return std::numeric_limits<double>::quiet_NaN();
  return dot / (std::sqrt(u2) * dnorm_);
}

}  // namespace subliminal::train
