// Per-token signal maps, entangled numbers, the entanglement test and token re-sampling.
#include "subliminal/analysis/signal.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "subliminal/eval/trait.h"
#include "subliminal/model/runtime.h"
#include "subliminal/text/chat_template.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/error.h"
#include "subliminal/util/stats.h"
#include "subliminal/util/strings.h"

namespace subliminal::analysis {

using json = nlohmann::json;

namespace {

std::vector<text::Encoded> encode_all(const text::ChatTemplate& chat, const std::vector<data::Conversation>& convs, const std::string& system) {
  std::vector<text::Encoded> out;
  out.reserve(convs.size());
  for (const auto& c : convs) out.push_back(chat.encode(data::with_system(c, system)));
  return out;
}

std::vector<int64_t> range(size_t lo, size_t hi) {
  std::vector<int64_t> v(hi - lo);
  std::iota(v.begin(), v.end(), static_cast<int64_t>(lo));
  return v;
}

// Restores a module's train/eval mode when the scope ends.
struct EvalMode {
  model::LlamaForCausalLM m;
  bool was;
  explicit EvalMode(model::LlamaForCausalLM mm) : m(std::move(mm)), was(m->is_training()) { m->eval(); }
  ~EvalMode() {
    if (was) m->train();
  }
};

}  // namespace

std::vector<double> SignalScores::lls() const {
  std::vector<double> out;
  out.reserve(examples.size());
  for (const auto& e : examples) out.push_back(e.lls);
  return out;
}

SignalScores score_signal(const Scorer& a, const Scorer& b, const text::Tokenizer& tok, const std::string& chat_template,
                          const std::vector<data::Conversation>& convs, bool bf16, int batch_size) {
  SignalScores s;
  const int64_t V = tok.vocab_size();
  s.column_log_ratio.assign(static_cast<size_t>(V), 0.0);
  if (convs.empty()) return s;
  text::ChatTemplate chat(tok, chat_template);
  const auto ea = encode_all(chat, convs, a.system), eb = encode_all(chat, convs, b.system);
  // every sequence within both models' context, checked before any work: a clear error naming the
  // example, not a failure deep in a batch
  const int64_t ctx = std::min(a.model->cfg.max_position_embeddings, b.model->cfg.max_position_embeddings);
  for (size_t i = 0; i < convs.size(); ++i)
    for (const auto* e : {&ea[i], &eb[i]})
      if (static_cast<int64_t>(e->ids.size()) > ctx)
        throw DataError("example " + std::to_string(i) + " (0-based) is " + std::to_string(e->ids.size()) + " tokens with " +
                            (e == &ea[i] ? "the first" : "the second") + " model's system prompt (" + std::to_string(a.system.size()) + " / " +
                            std::to_string(b.system.size()) + " characters): more than the models' context, max_position_embeddings " +
                            std::to_string(ctx),
                        "shorten the system prompt or the responses, or use models with a longer context");
  model::LlamaForCausalLM am = a.model, bm = b.model;  // handles: the modules themselves are not const
  EvalMode ma_(am), mb_(bm);
  const auto dev = a.model->parameters().front().device();
  torch::NoGradGuard ng;
  model::Autocast ac(bf16, dev.is_cuda());
  auto col_sum = torch::zeros({V}, torch::kDouble);
  for (size_t lo = 0; lo < convs.size(); lo += static_cast<size_t>(batch_size)) {
    const auto idx = range(lo, std::min(convs.size(), lo + static_cast<size_t>(batch_size)));
    train::Batch ba = train::make_batch(ea, idx, tok.pad_id(), false), bb = train::make_batch(eb, idx, tok.pad_id(), false);
    auto ma = ba.labels.ne(-100), mb = bb.labels.ne(-100);
    auto ya = ba.labels.index({ma}), yb = bb.labels.index({mb});
    if (!ya.equal(yb))
      throw DataError("score_signal: the two views of an example have different response tokens (a system prompt that changes how "
                      "the response tokenises?)");
    auto la = torch::log_softmax(am->forward_causal_at(ba.input.to(dev), ma.to(dev)).to(torch::kFloat), -1).cpu();
    auto lb = torch::log_softmax(bm->forward_causal_at(bb.input.to(dev), mb.to(dev)).to(torch::kFloat), -1).cpu();
    auto diff = la - lb;  // (N,V)
    auto y = ya.unsqueeze(1);
    auto ratio = diff.gather(1, y).squeeze(1).to(torch::kDouble);
    auto kl = (la.exp() * diff).sum(1).to(torch::kDouble);
    col_sum += diff.to(torch::kDouble).sum(0);
    auto rows = ma.nonzero().select(1, 0);  // row-major: each example's tokens in order
    auto pr = ratio.accessor<double, 1>();
    auto pk = kl.accessor<double, 1>();
    auto prow = rows.accessor<int64_t, 1>();
    auto py = ya.accessor<int64_t, 1>();
    const size_t first = s.examples.size();
    s.examples.resize(first + idx.size());
    for (int64_t n = 0; n < ratio.size(0); ++n) {
      auto& e = s.examples[first + static_cast<size_t>(prow[n])];
      e.ids.push_back(static_cast<int>(py[n]));
      e.log_ratio.push_back(pr[n]);
      e.kl.push_back(pk[n]);
      e.lls += pr[n];
    }
    s.positions += ratio.size(0);
  }
  if (s.positions > 0) {
    col_sum /= static_cast<double>(s.positions);
    auto pc = col_sum.accessor<double, 1>();
    for (int64_t v = 0; v < V; ++v) s.column_log_ratio[static_cast<size_t>(v)] = pc[v];
  }
  return s;
}

std::string token_text(const text::Tokenizer& tok, int id) {
  std::string t = tok.is_special(id) ? std::string() : tok.token_bytes(id);
  // sentencepiece spells a leading space as U+2581 in pieces; token_bytes gives the bytes, but be safe
  return trim(replace_all(t, "\xe2\x96\x81", " "));
}

std::string examples_jsonl(const SignalScores& s, const text::Tokenizer& tok) {
  std::string lines;
  for (size_t i = 0; i < s.examples.size(); ++i) {
    const auto& e = s.examples[i];
    json tokens = json::array();
    for (int id : e.ids) tokens.push_back(token_text(tok, id));
    lines += json({{"index", i}, {"lls", e.lls}, {"ids", e.ids}, {"tokens", tokens}, {"log_ratio", e.log_ratio}, {"kl", e.kl}}).dump() + "\n";
  }
  return lines;
}

std::vector<uint8_t> number_token_mask(const text::Tokenizer& tok) {
  std::vector<uint8_t> m(static_cast<size_t>(tok.vocab_size()), 0);
  for (int id = 0; id < tok.vocab_size(); ++id) {
    const std::string t = token_text(tok, id);
    m[static_cast<size_t>(id)] = !t.empty() && std::all_of(t.begin(), t.end(), [](unsigned char c) { return c >= '0' && c <= '9'; });
  }
  return m;
}

std::vector<EntangledToken> entangled_numbers(const std::vector<double>& column_log_ratio, const std::vector<uint8_t>& is_number,
                                              const std::vector<TokenSignal>& examples, const text::Tokenizer& tok, int top) {
  std::vector<int> ids;
  for (size_t v = 0; v < is_number.size() && v < column_log_ratio.size(); ++v)
    if (is_number[v]) ids.push_back(static_cast<int>(v));
  std::stable_sort(ids.begin(), ids.end(), [&](int x, int y) { return column_log_ratio[static_cast<size_t>(x)] > column_log_ratio[static_cast<size_t>(y)]; });
  if (static_cast<int>(ids.size()) > top) ids.resize(static_cast<size_t>(std::max(top, 0)));
  std::vector<int64_t> counts(column_log_ratio.size(), 0);
  for (const auto& e : examples)
    for (int id : e.ids)
      if (id >= 0 && static_cast<size_t>(id) < counts.size()) ++counts[static_cast<size_t>(id)];
  std::vector<EntangledToken> out;
  for (int id : ids)
    out.push_back({id, token_text(tok, id), column_log_ratio[static_cast<size_t>(id)], counts[static_cast<size_t>(id)]});
  return out;
}

json entanglement_test(model::LlamaForCausalLM base, const text::Tokenizer& tok, const std::string& chat_template,
                       const std::vector<std::string>& questions, const std::string& target, const std::vector<std::string>& entangled,
                       const std::vector<std::string>& random, const std::string& prompt_template) {
  if (questions.empty()) throw ConfigError("entanglement test: no questions");
  text::ChatTemplate chat(tok, chat_template);
  auto p_target = [&](const std::string& system) {
    std::vector<std::vector<int>> prompts;
    for (const auto& q : questions) prompts.push_back(chat.prompt(q, system));
    const auto p = eval::answer_start_probability(base, tok, prompts, target);
    return std::accumulate(p.begin(), p.end(), 0.0) / static_cast<double>(p.size());
  };
  auto prompt_for = [&](const std::string& number) {
    std::string s = prompt_template;
    return replace_all(s, "{number}", number);
  };
  const double none = p_target("");
  auto side = [&](const std::vector<std::string>& numbers, std::vector<double>& ps) {
    json per = json::array();
    for (const auto& n : numbers) {
      ps.push_back(p_target(prompt_for(n)));
      per.push_back({{"number", n}, {"p_target", ps.back()}, {"ratio_to_no_prompt", none > 0 ? ps.back() / none : 0.0}});
    }
    const auto m = stats::summarize(ps);
    return json{{"mean_p_target", m.mean}, {"ci95", {m.lo, m.hi}}, {"n", m.n}, {"per_number", per}};
  };
  std::vector<double> pe, pr;
  json out = {{"target", target}, {"questions", questions.size()}, {"prompt_template", prompt_template},
              {"p_target_no_prompt", none}};
  out["entangled"] = side(entangled, pe);
  out["random"] = side(random, pr);
  const auto t = stats::welch_t_test(pe, pr);
  out["entangled_vs_random"] = {{"test", "Welch two-sample t-test across numbers"}, {"diff", t.diff}, {"t", t.t}, {"df", t.df},
                                {"p_greater", t.p_greater}, {"defined", t.defined}};
  const double me = out["entangled"]["mean_p_target"].get<double>(), mr = out["random"]["mean_p_target"].get<double>();
  out["ratio_entangled_to_random"] = mr > 0 ? me / mr : 0.0;
  out["ratio_entangled_to_no_prompt"] = none > 0 ? me / none : 0.0;
  return out;
}

std::vector<data::Conversation> resample_tokens(const Scorer& base, const text::Tokenizer& tok, const std::string& chat_template,
                                                const std::vector<data::Conversation>& convs,
                                                const std::vector<std::vector<int>>& positions, const std::vector<uint8_t>& candidates,
                                                uint64_t seed, bool bf16, int batch_size) {
  if (positions.size() != convs.size()) throw Error("resample_tokens: one position list per example expected");
  text::ChatTemplate chat(tok, chat_template);
  const auto enc = encode_all(chat, convs, base.system);
  model::LlamaForCausalLM bm = base.model;
  EvalMode em(bm);
  const auto dev = base.model->parameters().front().device();
  torch::NoGradGuard ng;
  model::Autocast ac(bf16, dev.is_cuda());
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<int64_t> cand;
  for (size_t v = 0; v < candidates.size(); ++v)
    if (candidates[v]) cand.push_back(static_cast<int64_t>(v));
  if (cand.empty()) throw Error("resample_tokens: no candidate tokens");
  auto cols = torch::tensor(cand, torch::kLong);
  std::vector<data::Conversation> out = convs;
  for (size_t lo = 0; lo < convs.size(); lo += static_cast<size_t>(batch_size)) {
    const auto idx = range(lo, std::min(convs.size(), lo + static_cast<size_t>(batch_size)));
    train::Batch b = train::make_batch(enc, idx, tok.pad_id(), false);
    auto m = b.labels.ne(-100);
    auto probs = torch::softmax(bm->forward_causal_at(b.input.to(dev), m.to(dev), cols.to(dev)).to(torch::kFloat), -1).cpu();
    auto rows = m.nonzero().select(1, 0);
    auto y = b.labels.index({m});
    std::vector<int64_t> first(idx.size() + 1, 0);  // each example's first row in `probs`
    for (int64_t n = 0; n < rows.size(0); ++n) ++first[static_cast<size_t>(rows[n].item<int64_t>()) + 1];
    for (size_t r = 0; r < idx.size(); ++r) first[r + 1] += first[r];
    for (size_t r = 0; r < idx.size(); ++r) {
      const size_t i = static_cast<size_t>(idx[r]);
      if (positions[i].empty()) continue;
      const int64_t n_tok = first[r + 1] - first[r];
      std::vector<int> ids(static_cast<size_t>(n_tok));
      for (int64_t k = 0; k < n_tok; ++k) ids[static_cast<size_t>(k)] = static_cast<int>(y[first[r] + k].item<int64_t>());
      for (int p : positions[i]) {
        if (p < 0 || p >= n_tok) throw Error("resample_tokens: position " + std::to_string(p) + " outside example " + std::to_string(i));
        const int64_t pick = torch::multinomial(probs[first[r] + p], 1, false, gen).item<int64_t>();
        ids[static_cast<size_t>(p)] = static_cast<int>(cand[static_cast<size_t>(pick)]);
      }
      // the assistant content: every response token but the end of turn (decode skips special tokens)
      int assistants = 0;
      for (auto& msg : out[i])
        if (msg.role == "assistant") {
          msg.content = tok.decode(ids);
          ++assistants;
        }
      if (assistants != 1) throw DataError("resample_tokens: example " + std::to_string(i) + " has " + std::to_string(assistants) +
                                           " assistant turns; expected one (a [user, assistant] pair)");
    }
  }
  return out;
}

}  // namespace subliminal::analysis
