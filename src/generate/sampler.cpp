// Batched KV-cached sampling.
#include "subliminal/generate/sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "subliminal/config/config.h"
#include "subliminal/model/runtime.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/journal.h"
#include "subliminal/util/log.h"
#include "subliminal/util/signals.h"

namespace subliminal::generate {

namespace {

// (B,V) fp32 logits -> (B) next ids.
torch::Tensor pick(const torch::Tensor& logits, const SampleOptions& opt, at::Generator& gen) {
  if (opt.temperature <= 0) return logits.argmax(-1);
  auto probs = torch::softmax(logits.to(torch::kFloat) / opt.temperature, -1);
  if (opt.top_p < 1.0) {
    auto sorted = probs.sort(-1, /*descending=*/true);
    auto sp = std::get<0>(sorted), si = std::get<1>(sorted);
    auto cum = sp.cumsum(-1);
    auto drop = (cum - sp) > opt.top_p;  // keep the smallest prefix reaching top_p
    sp = sp.masked_fill(drop, 0.0);
    probs = torch::zeros_like(probs).scatter(-1, si, sp);
  }
  return torch::multinomial(probs.to(torch::kCPU), 1, /*replacement=*/true, gen).squeeze(-1).to(logits.device());
}

// Everything that decides a call's samples besides the model (whose identity the stage's input hash
// covers): a resumed call reads back an earlier call's batches only when this matches.
nlohmann::json journal_header(const std::vector<std::vector<int>>& prompts, const SampleOptions& opt) {
  nlohmann::json what = {{"prompts", prompts},       {"max_new_tokens", opt.max_new_tokens}, {"temperature", opt.temperature},
                         {"top_p", opt.top_p},       {"stop_ids", opt.stop_ids},             {"seed", opt.seed},
                         {"batch_size", opt.batch_size}, {"pad_id", opt.pad_id},             {"bf16", opt.bf16},
                         {"use_cache", opt.use_cache}};
  if (opt.give_up) what["give_up"] = opt.give_up_name;
  if (opt.allowed) what["allowed"] = opt.allowed_name;
  return {{"kind", "sample"}, {"sequences", prompts.size()}, {"batch_size", opt.batch_size}, {"inputs_sha256", fs::sha256_hex(what.dump())}};
}

// A journaled batch: {"batch": bi, "ids": rows x new ids, "prompt_tokens", "new_tokens", "prefill_s", "decode_s"}.
bool read_batch(const nlohmann::json& e, size_t bi, size_t rows, std::vector<std::vector<int>>& out, size_t b0, SampleStats& st) {
  try {
    if (e.at("batch").get<size_t>() != bi || e.at("ids").size() != rows) return false;
    for (size_t r = 0; r < rows; ++r) out[b0 + r] = e.at("ids")[r].get<std::vector<int>>();
    SampleStats d;
    d.prompt_tokens = e.at("prompt_tokens").get<int64_t>();
    d.new_tokens = e.at("new_tokens").get<int64_t>();
    d.prefill_s = e.at("prefill_s").get<double>();
    d.decode_s = e.at("decode_s").get<double>();
    if (e.contains("masked")) {
      const auto& mk = e.at("masked");
      d.constrained_tokens = mk.at("tokens").get<int64_t>();
      d.masked_mass = mk.at("mass").get<double>();
      d.masked_over_half = mk.at("over_half").get<int64_t>();
      d.masked_max = mk.at("max").get<double>();
      d.no_allowed = mk.at("no_allowed").get<int64_t>();
    }
    st += d;
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

// Appends a finished batch (rows b0 .. b0+B of out, `d` its counts) to the call's journal.
void append_batch(fs::Journal& journal, size_t bi, const std::vector<std::vector<int>>& out, size_t b0, int64_t B, const SampleStats& d,
                  bool constrained) {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t r = 0; r < B; ++r) rows.push_back(out[b0 + r]);
  nlohmann::json e = {{"batch", bi}, {"ids", rows}, {"prompt_tokens", d.prompt_tokens}, {"new_tokens", d.new_tokens},
                      {"prefill_s", d.prefill_s}, {"decode_s", d.decode_s}};
  if (constrained)
    e["masked"] = {{"tokens", d.constrained_tokens}, {"mass", d.masked_mass}, {"over_half", d.masked_over_half},
                   {"max", d.masked_max}, {"no_allowed", d.no_allowed}};
  journal.append(e);
}

// The constraint applied to the next token of each row in the cache: `logits` (R,V) keep only the
// ids opt.allowed lists for live rows (ended rows keep the pad id, which they emit anyway), and the
// mass removed is counted. A live row with nothing allowed is marked in `none`.
torch::Tensor constrain(const SampleOptions& opt, const torch::Tensor& logits, const std::vector<int64_t>& live, const std::vector<char>& ended,
                        const std::vector<std::vector<int>>& out, size_t b0, std::vector<char>& none, SampleStats& st) {
  const int64_t R = logits.size(0);
  std::vector<int64_t> rows, cols, ids;
  std::vector<char> counted(R, 0);
  for (int64_t k = 0; k < R; ++k) {
    const int64_t r = live[static_cast<size_t>(k)];
    ids.clear();
    if (!ended[r]) opt.allowed(out[b0 + static_cast<size_t>(r)], ids);
    if (!ended[r] && ids.empty()) none[r] = 1;
    if (ended[r] || ids.empty()) ids.assign(1, opt.pad_id);
    else counted[k] = 1;
    for (int64_t id : ids) {
      rows.push_back(k);
      cols.push_back(id);
    }
  }
  auto ri = torch::tensor(rows, torch::kLong).to(logits.device()), ci = torch::tensor(cols, torch::kLong).to(logits.device());
  const auto lf = logits.to(torch::kFloat);
  const auto probs = torch::softmax(opt.temperature > 0 ? lf / opt.temperature : lf, -1);
  const auto kept = torch::zeros({R}, probs.options()).index_add_(0, ri, probs.index({ri, ci})).to(torch::kCPU);
  const auto ka = kept.accessor<float, 1>();
  for (int64_t k = 0; k < R; ++k)
    if (counted[k]) {
      const double mass = std::clamp(1.0 - static_cast<double>(ka[k]), 0.0, 1.0);
      st.constrained_tokens += 1;
      st.masked_mass += mass;
      st.masked_over_half += mass > 0.5;
      st.masked_max = std::max(st.masked_max, mass);
    }
  auto masked = torch::full_like(lf, -std::numeric_limits<float>::infinity());
  masked.index_put_({ri, ci}, lf.index({ri, ci}));
  return masked;
}

// The decode loop of a batch with opt.give_up or opt.allowed: every step's ids come to the host, a
// row ends at a stop id (not kept), when give_up says so or when nothing is allowed, and ended rows
// leave the batch: the KV cache, the key mask and the positions keep only the live rows once a
// quarter of the rows in them have ended. With opt.allowed each step's logits are constrained first.
// `logits` (B,V) are the prefill's last position. Fills out[b0 + r]; returns the decode seconds.
double decode_giving_up(model::LlamaForCausalLM& m, const SampleOptions& opt, at::Generator& gen, torch::Tensor logits,
                        model::KVCache& cache, torch::Tensor keymask, torch::Tensor cur_pos, int64_t L, int64_t budget,
                        std::vector<std::vector<int>>& out, size_t b0, SampleStats& st) {
  if (!opt.use_cache) throw Error("sample: give_up and allowed need the KV cache (use_cache)");
  const auto dev = logits.device();
  const float ninf = -std::numeric_limits<float>::infinity();
  const double t0 = log::now_seconds();
  const int64_t B = logits.size(0);
  std::vector<int64_t> live(B);  // the batch row of each row in the cache
  std::iota(live.begin(), live.end(), int64_t(0));
  std::vector<char> ended(B, 0);
  int64_t active = B;
  std::vector<char> none(B, 0);
  for (int64_t s = 0; s < budget && active > 0; ++s) {
    if (opt.allowed) logits = constrain(opt, logits, live, ended, out, b0, none, st);
    auto next = pick(logits, opt, gen).to(torch::kCPU);  // (rows in the cache)
    auto na = next.accessor<int64_t, 1>();
    for (size_t k = 0; k < live.size(); ++k) {
      const int64_t r = live[k];
      if (!ended[r] && none[r]) {  // nothing allowed: the row ends as it is
        ended[r] = 1;
        --active;
        ++st.no_allowed;
      }
      if (ended[r]) {
        na[static_cast<int64_t>(k)] = opt.pad_id;
        continue;
      }
      const int id = static_cast<int>(na[static_cast<int64_t>(k)]);
      if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) != opt.stop_ids.end()) {
        ended[r] = 1;
        --active;
        st.new_tokens += 1;  // the stop id, counted as the other path counts it
        continue;
      }
      auto& o = out[b0 + static_cast<size_t>(r)];
      o.push_back(id);
      st.new_tokens += 1;
      if (opt.give_up && opt.give_up(o)) {
        ended[r] = 1;
        --active;
        ++st.given_up;
      }
    }
    if (active == 0 || s + 1 == budget) break;
    if (active * 4 <= static_cast<int64_t>(live.size()) * 3) {  // compact
      std::vector<int64_t> keep, still;
      for (size_t k = 0; k < live.size(); ++k)
        if (!ended[live[k]]) {
          keep.push_back(static_cast<int64_t>(k));
          still.push_back(live[k]);
        }
      auto idx = torch::tensor(keep, torch::kLong);
      next = next.index_select(0, idx);
      auto idx_dev = idx.to(dev);
      for (auto& t : cache.k) t = t.index_select(0, idx_dev);
      for (auto& t : cache.v) t = t.index_select(0, idx_dev);
      keymask = keymask.index_select(0, idx_dev);
      cur_pos = cur_pos.index_select(0, idx_dev);
      live = std::move(still);
    }
    const int64_t R = static_cast<int64_t>(live.size());
    cur_pos = cur_pos + 1;
    auto step_bias = torch::zeros({R, 1, 1, cache.length + 1}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
    step_bias.narrow(3, 0, L).masked_fill_(keymask.view({R, 1, 1, L}), ninf);
    logits = m->forward(next.to(dev).unsqueeze(1), cur_pos.unsqueeze(1), step_bias, &cache).select(1, 0);
  }
  return log::now_seconds() - t0;
}

}  // namespace

SampleStats& SampleStats::operator+=(const SampleStats& o) {
  prompt_tokens += o.prompt_tokens;
  new_tokens += o.new_tokens;
  prefill_s += o.prefill_s;
  decode_s += o.decode_s;
  given_up += o.given_up;
  constrained_tokens += o.constrained_tokens;
  masked_over_half += o.masked_over_half;
  no_allowed += o.no_allowed;
  masked_mass += o.masked_mass;
  masked_max = std::max(masked_max, o.masked_max);
  return *this;
}

int64_t generation_bytes_per_sequence(const model::LlamaConfig& c, int64_t prompt_len, int64_t new_tokens, bool bf16) {
  const int64_t S = prompt_len + new_tokens;
  const int64_t elt = bf16 ? 2 : 4;
  const int64_t kv = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim() * S * elt;
  const int64_t act = prompt_len * (10 * c.hidden_size + 3 * c.intermediate_size) * 4;  // one layer's live activations, fp32
  const int64_t scores = 2 * c.num_attention_heads * prompt_len * S * 4;                 // scores + softmax (no fused attention)
  const int64_t vocab = static_cast<int64_t>(c.vocab_size) * 16;                          // logits, probabilities, sort values + indices
  return kv + act + scores + vocab;
}

int fit_generation_batch(int requested, int64_t per_sequence, int64_t free_bytes, const std::string& field) {
  if (free_bytes < 0) return requested > 0 ? requested : 64;
  const int64_t fit = std::max<int64_t>(0, static_cast<int64_t>(0.9 * static_cast<double>(free_bytes)) / std::max<int64_t>(1, per_sequence));
  if (requested == 0) {
    if (fit < 1)
      throw ResourceError(fmt::format("generation needs {:.2f} GiB per sequence, more than the {:.2f} GiB free", per_sequence / 1073741824.0,
                                      free_bytes / 1073741824.0),
                          "use a device with more memory, fewer max_new_tokens, or a smaller model");
    return static_cast<int>(std::min<int64_t>(fit, 4096));
  }
  if (requested > fit)
    throw ResourceError(fmt::format("{} {} needs about {:.2f} GiB to generate ({:.1f} MiB per sequence: KV cache, activations, "
                                    "vocabulary buffers), more than 90% of the {:.2f} GiB free",
                                    field, requested, requested * per_sequence / 1073741824.0, per_sequence / 1048576.0,
                                    free_bytes / 1073741824.0),
                        fmt::format("set {} to {} or less, or to 0 (auto: the largest batch that fits)", field, std::max<int64_t>(1, fit)));
  return requested;
}

namespace {

// The batch size: opt.batch_size, or with 0 as many sequences as fit in free memory.
int sample_batch_size(model::LlamaForCausalLM& m, const std::vector<std::vector<int>>& prompts, const SampleOptions& opt,
                      const torch::Device& dev) {
  size_t longest = 1;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  const int64_t per = generation_bytes_per_sequence(m->cfg, static_cast<int64_t>(longest), opt.max_new_tokens, opt.bf16);
  const int64_t free = model::free_memory_bytes(dev);
  const int chosen = fit_generation_batch(opt.batch_size, per, free, opt.batch_field);
  if (opt.batch_size == 0)
    log::info("sample", "{}: 0 (auto) -> {} sequences at once ({:.1f} MiB each, {} free)", opt.batch_field, chosen, per / 1048576.0,
              free >= 0 ? fmt::format("{:.2f} GiB", free / 1073741824.0) : "unknown");
  return chosen;
}

// In a stage's journal scope, this call's journal, with the batches it already holds read back into
// `out` and `st`; *first_batch: the first batch still to sample. Null outside a journal scope.
std::unique_ptr<fs::Journal> open_sample_journal(const std::vector<std::vector<int>>& prompts, const SampleOptions& opt,
                                                 std::vector<std::vector<int>>& out, SampleStats& st, size_t& first_batch) {
  std::unique_ptr<fs::Journal> journal;
  if (const auto jpath = fs::JournalScope::next("sample"); !jpath.empty()) {
    journal = std::make_unique<fs::Journal>(jpath, journal_header(prompts, opt));
    if (!journal->restarted_because().empty())
      log::warn("sample", "{}: starting over: {}", jpath.string(), journal->restarted_because());
    const auto& es = journal->entries();
    while (first_batch < es.size()) {
      const size_t b0 = first_batch * static_cast<size_t>(opt.batch_size);
      const size_t rows = std::min(prompts.size() - std::min(prompts.size(), b0), static_cast<size_t>(opt.batch_size));
      if (rows == 0 || !read_batch(es[first_batch], first_batch, rows, out, b0, st)) break;
      ++first_batch;
    }
    journal->keep(first_batch);
    if (first_batch > 0)
      log::info("sample", "resuming: {} of {} sequences read back from {}", std::min(prompts.size(), first_batch * opt.batch_size),
                prompts.size(), jpath.string());
  }
  return journal;
}

// Prompts b0..b1 left-padded to one length L: row r starts at pad[r]; positions count from its first
// real token; keymask marks padding keys; bias is the prefill's (B,1,L,L) causal + padding bias.
struct PaddedBatch {
  torch::Tensor ids, pos, keymask, bias;
  int64_t L = 0;
};
PaddedBatch left_pad(model::LlamaForCausalLM& m, const std::vector<std::vector<int>>& prompts, size_t b0, size_t b1, int pad_id,
                     const torch::Device& dev) {
  const int64_t B = static_cast<int64_t>(b1 - b0);
  const float ninf = -std::numeric_limits<float>::infinity();
  int64_t L = 0;
  for (size_t i = b0; i < b1; ++i) {
    if (prompts[i].empty()) throw DataError("cannot sample from an empty prompt");
    L = std::max<int64_t>(L, prompts[i].size());
  }
  auto ids = torch::full({B, L}, static_cast<int64_t>(pad_id), torch::kLong);
  auto pos = torch::zeros({B, L}, torch::kLong);
  auto keymask = torch::zeros({B, L}, torch::kBool);  // true = padding key
  std::vector<int64_t> pad(B);
  {
    auto pi = ids.accessor<int64_t, 2>();
    auto pp = pos.accessor<int64_t, 2>();
    auto pk = keymask.accessor<bool, 2>();
    for (int64_t r = 0; r < B; ++r) {
      const auto& p = prompts[b0 + r];
      pad[r] = L - static_cast<int64_t>(p.size());
      for (int64_t t = 0; t < L; ++t) {
        if (t < pad[r]) { pk[r][t] = true; continue; }
        pi[r][t] = p[t - pad[r]];
        pp[r][t] = t - pad[r];
      }
    }
  }
  ids = ids.to(dev);
  pos = pos.to(dev);
  keymask = keymask.to(dev);
  // Prefill bias (B,1,L,L): causal + padding keys; a padding query sees itself so no row is all -inf.
  auto causal = m->causal_mask(L);  // (L,L)
  auto eye = torch::eye(L, torch::TensorOptions().dtype(torch::kBool).device(dev));
  auto padkey = keymask.unsqueeze(1).expand({B, L, L}) & ~eye.unsqueeze(0);
  auto bias = causal.unsqueeze(0).masked_fill(padkey, ninf).unsqueeze(1);  // (B,1,L,L)

  return {ids, pos, keymask, bias, L};
}

// The prefill: fills `cache` with the prompts and returns the logits after their last tokens (B,V).
// Identical prompts in a batch (an evaluation's samples of one question) are prefilled once: the
// unique rows run, then their cache rows and last logits are copied to every duplicate.
torch::Tensor prefill(model::LlamaForCausalLM& m, const std::vector<std::vector<int>>& prompts, size_t b0, const PaddedBatch& pb,
                      model::KVCache& cache, const torch::Device& dev) {
  const int64_t B = pb.ids.size(0), L = pb.L;
  const auto& ids = pb.ids;
  const auto& pos = pb.pos;
  const auto& bias = pb.bias;
  torch::Tensor logits;
  std::map<std::vector<int>, int64_t> first;
  std::vector<int64_t> uniq, which(B);
  for (int64_t r = 0; r < B; ++r) {
    auto [it, fresh] = first.emplace(prompts[b0 + r], static_cast<int64_t>(uniq.size()));
    if (fresh) uniq.push_back(r);
    which[r] = it->second;
  }
  if (static_cast<int64_t>(uniq.size()) == B) {
    logits = m->head(m->hidden(ids, pos, bias, &cache).select(1, L - 1));
  } else {
    auto u = torch::tensor(uniq, torch::kLong).to(dev), w = torch::tensor(which, torch::kLong).to(dev);
    logits = m->head(m->hidden(ids.index_select(0, u), pos.index_select(0, u), bias.index_select(0, u), &cache).select(1, L - 1))
                 .index_select(0, w);
    for (auto& t : cache.k) t = t.index_select(0, w);
    for (auto& t : cache.v) t = t.index_select(0, w);
  }
  return logits;
}

// Decodes up to `budget` tokens for every row (one host sync every 8 steps to stop early when every
// row is done), appends each row's tokens up to its stop token to out[b0 + r]; returns the new
// tokens counted (stop tokens included).
int64_t decode_all(model::LlamaForCausalLM& m, const SampleOptions& opt, at::Generator& gen, torch::Tensor logits, model::KVCache& cache,
                   const PaddedBatch& pb, int64_t budget, std::vector<std::vector<int>>& out, size_t b0, const torch::Device& dev) {
  const int64_t B = pb.ids.size(0), L = pb.L;
  const auto& ids = pb.ids;
  const auto& pos = pb.pos;
  const auto& keymask = pb.keymask;
  const float ninf = -std::numeric_limits<float>::infinity();
  auto stop = torch::zeros({B}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  std::vector<torch::Tensor> steps;
  auto full_ids = ids;
  auto full_pos = pos;
  auto full_keymask = keymask;
  auto cur_pos = pos.select(1, L - 1);  // (B)
  auto stop_t = torch::tensor(std::vector<int64_t>(opt.stop_ids.begin(), opt.stop_ids.end()), torch::kLong).to(dev);
  for (int64_t s = 0; s < budget; ++s) {
    if (!opt.use_cache) {  // reference path: full recompute over the growing sequence
      const int64_t S = full_ids.size(1);
      auto c2 = m->causal_mask(S);
      auto eye2 = torch::eye(S, torch::TensorOptions().dtype(torch::kBool).device(dev));
      auto pk2 = full_keymask.unsqueeze(1).expand({B, S, S}) & ~eye2.unsqueeze(0);
      auto bias2 = c2.unsqueeze(0).masked_fill(pk2, ninf).unsqueeze(1);
      logits = m->forward(full_ids, full_pos, bias2, nullptr).select(1, S - 1);
    }
    auto next = pick(logits, opt, gen);  // (B)
    next = next.masked_fill(stop, opt.pad_id);
    steps.push_back(next);
    if (stop_t.numel() > 0) stop = stop | (next.unsqueeze(1) == stop_t.unsqueeze(0)).any(1);
    if (s + 1 == budget) break;
    // One host sync every 8 steps to stop early when every row is done.
    if ((s + 1) % 8 == 0 && stop.all().item<bool>()) break;
    cur_pos = cur_pos + 1;
    if (opt.use_cache) {
      auto step_bias = torch::zeros({B, 1, 1, cache.length + 1}, torch::TensorOptions().dtype(torch::kFloat).device(dev));
      step_bias.narrow(3, 0, L).masked_fill_(keymask.view({B, 1, 1, L}), ninf);
      logits = m->forward(next.unsqueeze(1), cur_pos.unsqueeze(1), step_bias, &cache).select(1, 0);
    } else {
      full_ids = torch::cat({full_ids, next.unsqueeze(1)}, 1);
      full_pos = torch::cat({full_pos, cur_pos.unsqueeze(1)}, 1);
      full_keymask = torch::cat({full_keymask, torch::zeros({B, 1}, full_keymask.options())}, 1);
    }
  }
  auto gen_ids = torch::stack(steps, 1).to(torch::kCPU);  // (B, steps)
  auto acc = gen_ids.accessor<int64_t, 2>();
  int64_t new_tokens = 0;
  for (int64_t r = 0; r < B; ++r) {
    auto& o = out[b0 + r];
    for (int64_t t = 0; t < gen_ids.size(1); ++t) {
      int id = static_cast<int>(acc[r][t]);
      if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) != opt.stop_ids.end()) break;
      o.push_back(id);
    }
    new_tokens += static_cast<int64_t>(o.size()) + 1;
  }
  return new_tokens;
}

}  // namespace

std::vector<std::vector<int>> sample(model::LlamaForCausalLM& m, const std::vector<std::vector<int>>& prompts,
                                     const SampleOptions& opt_in, SampleStats* stats) {
  c10::InferenceMode im;
  m->eval();
  const auto dev = m->parameters().front().device();
  const int64_t maxpos = m->cfg.max_position_embeddings;
  SampleOptions opt = opt_in;
  opt.batch_size = sample_batch_size(m, prompts, opt, dev);
  std::vector<std::vector<int>> out(prompts.size());
  SampleStats st;
  // In a stage's journal scope every finished batch is appended to this call's journal; a resumed
  // stage reads those back (each batch has its own generator, so the rest sample as they would have).
  size_t first_batch = 0;
  std::unique_ptr<fs::Journal> journal = open_sample_journal(prompts, opt, out, st, first_batch);
  for (size_t bi = first_batch, b0 = first_batch * static_cast<size_t>(opt.batch_size); b0 < prompts.size(); b0 += opt.batch_size, ++bi) {
    signals::throw_if_stopped("sampling (" + std::to_string(b0) + " of " + std::to_string(prompts.size()) + " sequences done)", "");
    const size_t b1 = std::min(prompts.size(), b0 + static_cast<size_t>(opt.batch_size));
    const int64_t B = static_cast<int64_t>(b1 - b0);
    const PaddedBatch pb = left_pad(m, prompts, b0, b1, opt.pad_id, dev);
    const int64_t L = pb.L;
    const int64_t budget = std::min<int64_t>(opt.max_new_tokens, maxpos - L);
    if (budget <= 0)
      throw DataError("prompt of " + std::to_string(L) + " tokens leaves no room in max_position_embeddings=" + std::to_string(maxpos));

    auto gen = at::make_generator<at::CPUGeneratorImpl>(config::derive_seed(opt.seed, "sample", std::to_string(bi)));
    model::Autocast ac(opt.bf16, dev.is_cuda());
    const double tp0 = log::now_seconds();
    model::KVCache cache = m->new_cache(B, L + budget);
    // The head on the last position only: (B,V), not (B,L,V) (152k-token vocabularies).
    torch::Tensor logits;
    if (opt.use_cache) logits = prefill(m, prompts, b0, pb, cache, dev);
    const double tp1 = log::now_seconds();

    SampleStats d;  // this batch's counts
    d.prompt_tokens = B * L;
    d.prefill_s = tp1 - tp0;
    if (opt.give_up || opt.allowed) {
      d.decode_s = decode_giving_up(m, opt, gen, logits, cache, pb.keymask, pb.pos.select(1, L - 1), L, budget, out, b0, d);
    } else {
      d.new_tokens = decode_all(m, opt, gen, logits, cache, pb, budget, out, b0, dev);
      d.decode_s = log::now_seconds() - tp1;
    }
    st += d;
    if (journal) append_batch(*journal, bi, out, b0, B, d, static_cast<bool>(opt.allowed));
  }
  if (stats) *stats = st;
  return out;
}

}  // namespace subliminal::generate
