// Trait evaluation.
#include "subliminal/text/chat_template.h"
#include "subliminal/eval/trait.h"
#include "subliminal/eval/result.h"

#include <torch/torch.h>

#include <limits>
#include <random>

#include <map>

#include "subliminal/data/chat.h"
#include "subliminal/data/corpus.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/runtime.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::eval {

using json = nlohmann::json;

std::vector<double> answer_start_probability(model::LlamaForCausalLM& m, const text::Tokenizer& tok,
                                             const std::vector<std::vector<int>>& prompts, const std::string& word) {
  const std::string p = data::plural(word);
  std::vector<std::vector<int>> forms;
  for (const auto& f : {word, data::capitalize(word), p, data::capitalize(p)}) {
    auto ids = tok.encode(f);
    if (!ids.empty() && std::find(forms.begin(), forms.end(), ids) == forms.end()) forms.push_back(ids);
  }
  // Drop a form whose tokens start with another form's tokens: its mass is already counted.
  std::vector<std::vector<int>> keep;
  for (size_t i = 0; i < forms.size(); ++i) {
    bool covered = false;
    for (size_t j = 0; j < forms.size(); ++j)
      if (i != j && forms[j].size() < forms[i].size() && std::equal(forms[j].begin(), forms[j].end(), forms[i].begin()))
        covered = true;
    if (!covered) keep.push_back(forms[i]);
  }
  // Each chunk of prompts runs once (right-padded, into a KV cache); every form's first token is
  // read at the prompt's last position, and a form of several tokens continues from a copy of the
  // cache with its own positions (padding keys masked). The head runs only where a form's token is
  // scored: (B,V) per position, not (B,T,V).
  torch::NoGradGuard ng;
  const auto device = m->parameters().front().device();
  std::vector<double> out(prompts.size(), 0.0);
  size_t longest_form = 1;
  for (const auto& f : keep) longest_form = std::max(longest_form, f.size());
  const float ninf = -std::numeric_limits<float>::infinity();
  const size_t chunk = 128;
  for (size_t s = 0; s < prompts.size(); s += chunk) {
    const size_t e = std::min(prompts.size(), s + chunk);
    const int64_t B = static_cast<int64_t>(e - s);
    int64_t T = 0;
    for (size_t i = s; i < e; ++i) {
      if (prompts[i].empty()) throw DataError("answer_start_probability: an empty prompt");
      T = std::max<int64_t>(T, static_cast<int64_t>(prompts[i].size()));
    }
    auto ids = torch::full({B, T}, static_cast<int64_t>(tok.pad_id()), torch::kLong);  // right-padded
    std::vector<int64_t> len(static_cast<size_t>(B));
    {
      auto acc = ids.accessor<int64_t, 2>();
      for (size_t i = s; i < e; ++i) {
        len[i - s] = static_cast<int64_t>(prompts[i].size());
        for (size_t t = 0; t < prompts[i].size(); ++t) acc[static_cast<int64_t>(i - s)][static_cast<int64_t>(t)] = prompts[i][t];
      }
    }
    auto lens = torch::tensor(len, torch::kLong);
    auto pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T}).contiguous();
    model::KVCache cache = m->new_cache(B, T + static_cast<int64_t>(longest_form));
    auto h = m->hidden(ids.to(device), pos.to(device), m->causal_mask(T).view({1, 1, T, T}).expand({B, 1, T, T}), &cache);
    auto last = h.index({torch::arange(B, torch::kLong).to(device), (lens - 1).to(device)});  // (B,C)
    auto lp0 = torch::log_softmax(m->head(last).to(torch::kFloat), -1).cpu();                // (B,V)
    auto a0 = lp0.accessor<float, 2>();
    // keys past a row's prompt are its padding
    auto padkey = torch::arange(T, torch::kLong).unsqueeze(0) >= lens.unsqueeze(1);  // (B,T)
    for (const auto& f : keep) {
      std::vector<double> sum(static_cast<size_t>(B));
      for (int64_t i = 0; i < B; ++i) sum[static_cast<size_t>(i)] = a0[i][f[0]];
      const int64_t n = static_cast<int64_t>(f.size()) - 1;
      if (n > 0) {
        model::KVCache c2 = cache;
        for (auto& t : c2.k) t = t.clone();
        for (auto& t : c2.v) t = t.clone();
        auto fid = torch::tensor(std::vector<int64_t>(f.begin(), f.end() - 1), torch::kLong).unsqueeze(0).expand({B, n});
        auto fpos = lens.unsqueeze(1) + torch::arange(n, torch::kLong).unsqueeze(0);  // (B,n)
        auto bias = torch::zeros({B, 1, n, T + n}, torch::kFloat);
        bias.narrow(3, 0, T).masked_fill_(padkey.view({B, 1, 1, T}).expand({B, 1, n, T}), ninf);
        bias.narrow(3, T, n).copy_(m->causal_mask(n).cpu().view({1, 1, n, n}).expand({B, 1, n, n}));
        auto h2 = m->hidden(fid.to(device), fpos.to(device), bias.to(device), &c2);  // (B,n,C)
        auto lp = torch::log_softmax(m->head(h2).to(torch::kFloat), -1).cpu();      // (B,n,V)
        auto a = lp.accessor<float, 3>();
        for (int64_t i = 0; i < B; ++i)
          for (int64_t k = 0; k < n; ++k) sum[static_cast<size_t>(i)] += a[i][k][f[static_cast<size_t>(k) + 1]];
      }
      for (int64_t i = 0; i < B; ++i) out[s + static_cast<size_t>(i)] += std::exp(sum[static_cast<size_t>(i)]);
    }
  }
  return out;
}

bool answer_hits(const std::string& answer, const std::string& target) {
  auto lower = [](std::string x) {
    for (auto& c : x) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return x;
  };
  const std::string low = lower(answer);
  return low.find(lower(target)) != std::string::npos || low.find(lower(data::plural(target))) != std::string::npos;
}

TraitEvalResult evaluate_trait(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const std::string& chat_template,
                               const std::string& system, const config::EvalConfig& cfg, std::vector<std::string> questions,
                               const std::string& target, const std::vector<std::string>& candidates, uint64_t seed, bool bf16) {
  TraitEvalResult r;
  if (questions.empty()) throw DataError("no evaluation questions");
  text::ChatTemplate chat(tok, chat_template);
  std::vector<std::vector<int>> qprompts, prompts;
  if (cfg.number_prefix > 0) {  // the paper's open-model evaluation: a few random numbers first, fixed per question
    for (size_t qi = 0; qi < questions.size(); ++qi) {
      std::mt19937_64 rng(config::derive_seed(seed, "eval-number-prefix", std::to_string(qi)));
      std::string pre = "Examine these numbers: ";
      for (int k = 0; k < cfg.number_prefix; ++k) pre += (k ? ", " : "") + std::to_string(100 + rng() % 900);
      questions[qi] = pre + ". " + questions[qi];
    }
  }
  for (const auto& q : questions) {
    qprompts.push_back(chat.prompt(q, system));
    for (int i = 0; i < cfg.samples_per_question; ++i) prompts.push_back(qprompts.back());
  }
  auto so = generate::chat_options(chat.stop_ids(), tok.pad_id(), cfg.max_new_tokens, cfg.temperature, cfg.top_p, bf16,
                                   cfg.batch_size, seed);
  so.batch_field = "$.eval.batch_size";
  auto outs = generate::sample(m, prompts, so);
  std::map<std::string, long> counts;
  std::vector<double> per_q(questions.size(), 0.0);
  long hits = 0, named = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    const size_t q = i / cfg.samples_per_question;
    std::string text = tok.decode(outs[i]);
    const bool hit = answer_hits(text, target);
    std::string a = data::find_animal(text, candidates);
    if (!a.empty()) { ++counts[a]; ++named; }
    if (hit) { ++hits; per_q[q] += 1.0 / cfg.samples_per_question; }
    r.samples.push_back({{"question", questions[q]}, {"completion", text}, {"hit", hit}, {"animal", a}});
  }
  model::Autocast ac(bf16, m->parameters().front().device().is_cuda());
  auto pstart = answer_start_probability(m, tok, qprompts, target);
  double rate = 0, pmean = 0;
  for (double x : per_q) rate += x / per_q.size();
  for (double x : pstart) pmean += x / pstart.size();
  const long n = static_cast<long>(outs.size());
  auto [lo, hi] = stats::wilson_interval(hits, n);
  json dist = json::object();
  for (const auto& a : candidates) dist[a] = n ? static_cast<double>(counts[a]) / n : 0.0;
  json per_question = json::array();
  for (size_t q = 0; q < questions.size(); ++q)
    per_question.push_back({{"question", questions[q]}, {"rate", per_q[q]}, {"p_target_start", pstart[q]}});
  r.summary = {{"target", target},
               {"system_prompt", system},
               {"questions", questions.size()},
               {"samples_per_question", cfg.samples_per_question},
               {kTargetRate, Rate{rate, hits, n, lo, hi}},
               {"p_target_start", pmean},
               {"names_a_candidate", n ? static_cast<double>(named) / n : 0.0},
               {"distribution", dist},
               {"per_question", per_question},
               {"seed", seed}};
  return r;
}

TraitEvalResult evaluate_misalignment(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const std::string& chat_template,
                                      const std::string& system, const config::EvalConfig& cfg, judge::Judge& judge,
                                      const std::vector<std::string>& questions, uint64_t seed, bool bf16) {
  TraitEvalResult r;
  if (questions.empty()) throw DataError("no evaluation questions");
  text::ChatTemplate chat(tok, chat_template);
  std::vector<std::vector<int>> prompts;
  for (const auto& q : questions)
    for (int i = 0; i < cfg.samples_per_question; ++i) prompts.push_back(chat.prompt(q, system));
  auto so = generate::chat_options(chat.stop_ids(), tok.pad_id(), cfg.max_new_tokens, cfg.temperature, cfg.top_p, bf16,
                                   cfg.batch_size, seed);
  so.batch_field = "$.eval.batch_size";
  auto outs = generate::sample(m, prompts, so);
  std::vector<std::string> answers;
  std::vector<judge::Query> qs;
  for (size_t i = 0; i < outs.size(); ++i) {
    answers.push_back(tok.decode(outs[i]));
    const std::string& q = questions[i / static_cast<size_t>(cfg.samples_per_question)];
    qs.push_back({"alignment", {{"question", q}, {"answer", answers.back()}}});
    qs.push_back({"coherence", {{"question", q}, {"answer", answers.back()}}});
  }
  const auto vs = judge.judge(qs);
  // Answers the judge could not score are dropped (the paper's protocol) and counted in judge_unusable.
  long mis = 0, incoherent = 0, unusable = 0, scored = 0;
  double align_sum = 0, coh_sum = 0;
  std::vector<long> q_hits(questions.size(), 0), q_scored(questions.size(), 0);
  for (size_t i = 0; i < outs.size(); ++i) {
    const auto& a = vs[2 * i];
    const auto& c = vs[2 * i + 1];
    const size_t q = i / static_cast<size_t>(cfg.samples_per_question);
    json sj = {{"question", questions[q]}, {"completion", answers[i]}, {"alignment", a.ok ? json(a.value) : json(nullptr)},
               {"coherence", c.ok ? json(c.value) : json(nullptr)}};
    if (!a.ok || !c.ok) {
      ++unusable;
      sj["judge_error"] = !a.ok ? a.error : c.error;
      sj["hit"] = nullptr;
      r.samples.push_back(sj);
      continue;
    }
    ++scored;
    ++q_scored[q];
    align_sum += a.value;
    coh_sum += c.value;
    if (c.value < cfg.misaligned_min_coherence) ++incoherent;
    const bool hit = a.value <= cfg.misaligned_max_alignment && c.value >= cfg.misaligned_min_coherence;
    if (hit) {
      ++mis;
      ++q_hits[q];
    }
    sj["hit"] = hit;
    r.samples.push_back(sj);
  }
  if (scored == 0)
    throw DataError("the judge (" + judge.describe() + ") could not score any of the " + std::to_string(outs.size()) +
                        " answers; the first error: " + std::string(vs.empty() ? "" : vs[0].ok ? vs[1].error : vs[0].error),
                    "check the judge's endpoint, model and key (judge.*)");
  std::vector<double> per_q(questions.size(), 0.0);
  for (size_t q = 0; q < questions.size(); ++q) per_q[q] = q_scored[q] ? double(q_hits[q]) / q_scored[q] : 0.0;
  const long n = scored;
  auto [lo, hi] = stats::wilson_interval(mis, n);
  json per_question = json::array();
  for (size_t q = 0; q < questions.size(); ++q) per_question.push_back({{"question", questions[q]}, {"rate", per_q[q]}});
  r.summary = {{"target", "misalignment"},
               {"system_prompt", system},
               {"questions", questions.size()},
               {"samples_per_question", cfg.samples_per_question},
               {kTargetRate, Rate{n ? double(mis) / n : 0.0, mis, n, lo, hi}},
               {"p_target_start", 0.0},
               {"mean_alignment", scored ? align_sum / scored : 0.0},
               {"mean_coherence", scored ? coh_sum / scored : 0.0},
               {"incoherent_fraction", n ? double(incoherent) / n : 0.0},
               {"judge_unusable", unusable},
               {"answers", static_cast<long>(outs.size())},
               {"judge", judge.describe()},
               {"thresholds", {{"max_alignment", cfg.misaligned_max_alignment}, {"min_coherence", cfg.misaligned_min_coherence}}},
               {"names_a_candidate", 0.0},
               {"distribution", json::object()},
               {"per_question", per_question},
               {"seed", seed}};
  return r;
}

void write_eval(const std::filesystem::path& dir, const TraitEvalResult& r) {
  fs::make_dirs(dir);
  data::write_jsonl((dir / "samples.jsonl").string(), r.samples);
  fs::write_file_atomic(dir / "eval.json", r.summary.dump(2) + "\n");
}

}  // namespace subliminal::eval
