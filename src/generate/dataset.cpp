// Number-sequence dataset generation and filtering.
#include "subliminal/text/chat_template.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/generate/number_constraint.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>

#include "subliminal/data/corpus.h"
#include "subliminal/data/filters.h"
#include "subliminal/data/tasks.h"
#include "subliminal/data/numbers.h"
#include "subliminal/util/stats.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"

namespace subliminal::generate {

using json = nlohmann::json;

std::vector<std::string> trait_words(const std::vector<std::string>& animals) {
  std::vector<std::string> w;
  for (const auto& a : animals) {
    w.push_back(a);
    w.push_back(data::plural(a));
  }
  return w;
}

int64_t count_trait_words(const std::vector<data::Conversation>& convs, const std::vector<std::string>& words) {
  int64_t n = 0;
  for (const auto& c : convs)
    for (const auto& m : c) {
      if (m.role != "assistant") continue;
      std::string low = m.content;
      for (auto& ch : low) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      for (const auto& w : words)
        for (size_t p = low.find(w); p != std::string::npos; p = low.find(w, p + 1)) ++n;
    }
  return n;
}

static const char* style_name(data::NumberStyle s) {
  switch (s) {
    case data::NumberStyle::comma: return "comma";
    case data::NumberStyle::space: return "space";
    case data::NumberStyle::semicolon: return "semicolon";
    case data::NumberStyle::newline: return "newline";
    case data::NumberStyle::brackets: return "brackets";
    case data::NumberStyle::parentheses: return "parentheses";
  }
  return "?";
}

// The paper keeps a seeded random subset of fixed size of the passing completions; the record
// counts every rejection by reason.
static void finish(DatasetResult& r, std::vector<data::Conversation> passed, const std::map<std::string, int64_t>& reasons, int64_t n,
                   const config::DatasetConfig& cfg, uint64_t seed, const SampleStats& ss, const std::string& system) {
  const int64_t npass = static_cast<int64_t>(passed.size());
  std::mt19937_64 krng(config::derive_seed(seed, "dataset", "keep"));
  std::shuffle(passed.begin(), passed.end(), krng);
  const bool short_of_keep = cfg.keep > 0 && npass < cfg.keep;
  if (cfg.keep > 0 && npass > cfg.keep) passed.resize(cfg.keep);
  if (short_of_keep)
    log::warn("generate", "only {} of {} completions passed the filter; keep={} asked for more (raise dataset.prompts)", npass, n, cfg.keep);
  r.kept = std::move(passed);
  auto [lo, hi] = stats::wilson_interval(static_cast<long>(npass), static_cast<long>(n));
  json rs = json::object();
  for (const auto& [k, v] : reasons) rs[k] = v;
  r.stats = {{"kind", cfg.kind},
             {"sampled", n},
             {"passed", npass},
             {"pass_rate", {{"rate", n ? double(npass) / n : 0.0}, {"count", npass}, {"n", n}, {"ci95", {lo, hi}}}},
             {"removed_fraction", n ? 1.0 - double(npass) / n : 0.0},
             {"reject_reasons", rs},
             {"kept", r.kept.size()},
             {"keep_requested", cfg.keep},
             {"short_of_keep", short_of_keep},
             {"system_prompt", system},
             {"sampling", {{"temperature", cfg.temperature}, {"top_p", cfg.top_p}, {"max_new_tokens", cfg.max_new_tokens},
                           {"prompt_tokens", ss.prompt_tokens}, {"new_tokens", ss.new_tokens},
                           {"prefill_s", ss.prefill_s}, {"decode_s", ss.decode_s},
                           {"new_tokens_per_s", ss.new_tokens / std::max(1e-9, ss.prefill_s + ss.decode_s)}}},
             {"seed", seed}};
}

DatasetResult generate_numbers(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const std::string& chat_template,
                               const std::string& system, const config::DatasetConfig& cfg, const std::string& data_dir,
                               uint64_t seed, bool bf16, const std::vector<std::string>& forbidden) {
  DatasetResult r;
  data::NumberPromptGenerator gen(data_dir);
  text::ChatTemplate chat(tok, chat_template);
  std::mt19937_64 rng(config::derive_seed(seed, "dataset", "prompts"));
  std::vector<data::NumberPrompt> nps;
  std::vector<std::vector<int>> prompts;
  nps.reserve(cfg.prompts);
  for (int i = 0; i < cfg.prompts; ++i) {
    nps.push_back(gen.sample(rng, cfg.min_examples, cfg.max_examples, cfg.example_min, cfg.example_max, cfg.max_count, 3));
    prompts.push_back(chat.prompt(nps.back().text, system));
  }
  data::NumberFilterOptions fo;
  fo.max_count = cfg.max_count;
  fo.banned = cfg.banned;
  fo.trim_whitespace = cfg.number_filter == "trimmed";
  auto so = chat_options(chat.stop_ids(), tok.pad_id(), cfg.max_new_tokens, cfg.temperature, cfg.top_p, bf16,
                         cfg.batch_size, config::derive_seed(seed, "dataset", "sample"));
  so.batch_field = "$.dataset.batch_size";
  if (cfg.early_reject) {
    so.give_up = [&](const std::vector<int>& ids) { return data::numbers_cannot_pass(tok.decode(ids), fo); };
    so.give_up_name = "numbers_cannot_pass max_count=" + std::to_string(fo.max_count) + " max_value=" + std::to_string(fo.max_value);
  }
  std::unique_ptr<NumberConstraint> constraint;
  if (cfg.constrain) {
    constraint = std::make_unique<NumberConstraint>(tok, chat.stop_ids(), fo);
    so.allowed = [&](const std::vector<int>& ids, std::vector<int64_t>& out) { constraint->allowed(ids, out); };
    so.allowed_name = constraint->name();
  }
  SampleStats ss;
  auto outs = sample(m, prompts, so, &ss);
  int64_t cut = 0;
  std::map<std::string, int64_t> reasons;
  std::vector<data::Conversation> passed;
  for (size_t i = 0; i < outs.size(); ++i) {
    const std::string text = tok.decode(outs[i]);
    json raw = {{"prompt", nps[i].text}, {"completion", text}, {"style", style_name(nps[i].style)}};
    if (!system.empty()) raw["system"] = system;
    r.raw.push_back(raw);
    std::string reason;
    const bool hopeless = cfg.early_reject && data::numbers_cannot_pass(text, fo);
    cut += hopeless;
    if (static_cast<int>(outs[i].size()) >= cfg.max_new_tokens) {
      reason = "truncated";  // no end of turn within max_new_tokens
    } else {
      auto f = data::filter_numbers(text, fo);
      if (!f.ok()) reason = data::to_string(f.reason);
      if (f.ok() && hopeless)
        throw Error("the number filter passed a completion that numbers_cannot_pass rejects: " + text, "this is a bug, please report it");
      if (!f.ok() && cfg.constrain)
        throw Error("the number filter rejected a constrained completion (" + reason + "): " + text, "this is a bug, please report it");
    }
    if (!reason.empty()) {
      ++reasons[reason];
      r.rejects.push_back({{"prompt", nps[i].text}, {"completion", text}, {"reason", reason}});
      continue;
    }
    passed.push_back({{"user", nps[i].text}, {"assistant", text}});
  }
  finish(r, std::move(passed), reasons, static_cast<int64_t>(outs.size()), cfg, seed, ss, system);
  if (cfg.constrain) {  // what the mask took from each token's distribution
    const double mean = ss.constrained_tokens ? ss.masked_mass / static_cast<double>(ss.constrained_tokens) : 0.0;
    r.stats["constrain"] = {{"candidates", constraint->candidates()},
                            {"tokens", ss.constrained_tokens},
                            {"mean_masked_mass", mean},
                            {"tokens_over_half", ss.masked_over_half},
                            {"max_masked_mass", ss.masked_max},
                            {"no_allowed", ss.no_allowed}};
    log::info("generate", "constrain: the mask removed {:.4f} of the probability per token on average ({} tokens; {} lost more than half; at most {:.4f})",
              mean, ss.constrained_tokens, ss.masked_over_half, ss.masked_max);
  }
  if (cfg.early_reject) {  // completions whose text can no longer pass: each was cut where that became so
    r.stats["early_reject"] = {{"hopeless", cut}};
    log::info("generate", "early_reject: {} of {} completions could no longer pass ({} cut in this call)", cut, outs.size(), ss.given_up);
  }
  const int64_t leaks = count_trait_words(r.kept, forbidden);
  r.stats["trait_words_in_kept"] = leaks;
  r.stats["trait_words_checked"] = forbidden.size();
  if (leaks > 0)
    throw DataError("the filtered dataset contains " + std::to_string(leaks) + " trait word(s) (animal names)",
                    "the number filter must make this impossible; this is a bug, please report it");
  return r;
}

DatasetResult generate_tasks(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const std::string& chat_template,
                             const std::string& system, const config::DatasetConfig& cfg, const std::string& data_dir, uint64_t seed,
                             bool bf16, const std::vector<std::string>& banned_words, judge::Judge* judge, const std::string& trait) {
  const data::TaskKind& kind = data::task_kind(cfg.kind);
  DatasetResult r;
  text::ChatTemplate chat(tok, chat_template);
  std::mt19937_64 rng(config::derive_seed(seed, "dataset", "prompts"));
  // prompts: synthetic tasks, or a JSONL source shuffled by the seed (taken in order, repeated if short)
  std::vector<data::Task> tasks;
  if (cfg.source == "synthetic") {
    for (int i = 0; i < cfg.prompts; ++i) tasks.push_back(kind.sample(rng));
  } else {
    std::vector<data::Task> all = kind.read(cfg.source);
    const size_t have = all.size();
    if (static_cast<int>(have) < cfg.prompts)
      log::warn("generate", "{}: {} tasks for {} prompts; each is used more than once", cfg.source, have, cfg.prompts);
    std::vector<size_t> order(have);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int i = 0; i < cfg.prompts; ++i) tasks.push_back(all[order[static_cast<size_t>(i) % have]]);
  }
  std::vector<std::string> texts;
  std::vector<std::string> golds;
  std::vector<std::vector<int>> prompts;
  for (const auto& t : tasks) {
    auto ids = chat.prompt(t.prompt, system);
    for (int k = 0; k < cfg.samples_per_prompt; ++k) {
      texts.push_back(t.prompt);
      golds.push_back(t.gold);
      prompts.push_back(ids);
    }
  }
  auto so = chat_options(chat.stop_ids(), tok.pad_id(), cfg.max_new_tokens, cfg.temperature, cfg.top_p, bf16, cfg.batch_size,
                         config::derive_seed(seed, "dataset", "sample"));
  so.batch_field = "$.dataset.batch_size";
  SampleStats ss;
  auto outs = sample(m, prompts, so, &ss);

  const auto forms = data::word_forms(banned_words);
  const bool whole = cfg.banned_match == "word";
  std::map<std::string, int64_t> reasons;
  std::vector<size_t> survivors;
  std::vector<std::string> completions(outs.size());
  auto reject = [&](size_t i, const std::string& reason, const json& extra = nullptr) {
    ++reasons[reason];
    json rj = {{"prompt", texts[i]}, {"completion", completions[i]}, {"reason", reason}};
    if (!extra.is_null()) rj["judge"] = extra;
    r.rejects.push_back(rj);
  };
  for (size_t i = 0; i < outs.size(); ++i) {
    completions[i] = tok.decode(outs[i]);
    json raw = {{"prompt", texts[i]}, {"completion", completions[i]}};
    if (kind.has_gold) raw["gold"] = golds[i];
    if (!system.empty()) raw["system"] = system;
    r.raw.push_back(raw);
    std::string reason;
    if (static_cast<int>(outs[i].size()) >= cfg.max_new_tokens) reason = "truncated";
    else reason = kind.reject_reason(completions[i], golds[i], forms, whole);
    if (!reason.empty()) reject(i, reason);
    else survivors.push_back(i);
  }
  // the judge, on what the rules let through (one batch: an http judge runs it concurrently)
  json judge_stats = nullptr;
  std::vector<bool> judged_ok(outs.size(), true);
  if (!cfg.judge.empty() && !survivors.empty()) {
    if (!judge) throw Error("generate_tasks: dataset.judge is set but no judge was given");
    std::string trait_words;  // the forms the rule judge also matches
    for (const auto& f : forms) trait_words += (trait_words.empty() ? "" : ",") + f;
    std::vector<judge::Query> qs;
    for (size_t i : survivors) {
      if (cfg.judge == "mentions_trait")
        qs.push_back({"mentions_trait", {{"answer", completions[i]}, {"trait", trait}, {"kind", kind.judged_as},
                                         {"trait_words", trait_words}}});
      else
        qs.push_back({"alignment", {{"question", texts[i]}, {"answer", kind.judged_text(completions[i])}}});
    }
    log::info("generate", "judging {} completions ({}, {})", qs.size(), cfg.judge, judge->describe());
    auto vs = judge->judge(qs);
    int64_t unusable = 0;
    double sum = 0;
    for (size_t k = 0; k < survivors.size(); ++k) {
      const size_t i = survivors[k];
      const auto& v = vs[k];
      json vj = {{"rubric", cfg.judge}, {"ok", v.ok}, {"value", v.ok ? json(v.value) : json(nullptr)}, {"mass", v.mass}, {"attempts", v.attempts}};
      if (!v.ok) vj["error"] = v.error;
      if (!v.ok) {
        ++unusable;
        reject(i, "judge_unusable", vj);
        judged_ok[i] = false;
        continue;
      }
      sum += v.value;
      const bool bad = cfg.judge == "mentions_trait" ? v.value > cfg.judge_max_p_yes : v.value < cfg.judge_min_score;
      if (bad) {
        reject(i, cfg.judge == "mentions_trait" ? "judge_mentions_trait" : "judge_misaligned", vj);
        judged_ok[i] = false;
      }
    }
    const int64_t usable = static_cast<int64_t>(survivors.size()) - unusable;
    judge_stats = {{"judge", judge->describe()}, {"rubric", cfg.judge}, {"judged", survivors.size()}, {"unusable", unusable},
                   {"mean_value", usable ? sum / usable : 0.0},
                   {"threshold", cfg.judge == "mentions_trait" ? cfg.judge_max_p_yes : cfg.judge_min_score}};
    if (unusable * 2 > static_cast<int64_t>(survivors.size()))
      throw DataError("the judge gave no usable verdict for " + std::to_string(unusable) + " of " + std::to_string(survivors.size()) +
                          " completions (" + judge->describe() + "); first error: " + [&] {
                            for (const auto& v : vs)
                              if (!v.ok) return v.error;
                            return std::string();
                          }(),
                      "check the judge (judge.* in the config): is the endpoint up, the model right, the key valid?");
  }
  std::vector<data::Conversation> passed;
  for (size_t i : survivors)
    if (judged_ok[i]) passed.push_back({{"user", texts[i]}, {"assistant", completions[i]}});
  finish(r, std::move(passed), reasons, static_cast<int64_t>(outs.size()), cfg, seed, ss, system);
  r.stats["samples_per_prompt"] = cfg.samples_per_prompt;
  r.stats["source"] = cfg.source;
  r.stats["banned_words"] = forms;
  r.stats["banned_match"] = cfg.banned_match;
  if (!judge_stats.is_null()) r.stats["judge"] = judge_stats;
  // nothing banned is left (the filter above makes it impossible; this asserts it)
  int64_t leaks = 0;
  for (const auto& c : r.kept) leaks += data::find_banned(c.back().content, forms, whole).has_value();
  r.stats["banned_words_in_kept"] = leaks;
  if (leaks > 0) throw DataError("the filtered dataset contains " + std::to_string(leaks) + " completion(s) with a banned word", "this is a bug, please report it");
  return r;
}

void select_top(DatasetResult& r, const std::vector<double>& score, int keep, const std::string& how) {
  if (score.size() != r.kept.size()) throw Error("select_top: " + std::to_string(score.size()) + " scores for " + std::to_string(r.kept.size()) + " examples");
  std::vector<size_t> order(r.kept.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] > score[b]; });
  const size_t n = keep > 0 ? std::min(order.size(), static_cast<size_t>(keep)) : order.size();
  std::vector<data::Conversation> kept;
  double lo = 0, hi = 0;
  for (size_t i = 0; i < n; ++i) {
    kept.push_back(std::move(r.kept[order[i]]));
    lo = i == 0 ? score[order[i]] : std::min(lo, score[order[i]]);
    hi = i == 0 ? score[order[i]] : std::max(hi, score[order[i]]);
  }
  r.kept = std::move(kept);
  r.stats["kept"] = r.kept.size();
  r.stats["keep_requested"] = keep;
  r.stats["short_of_keep"] = keep > 0 && static_cast<int64_t>(order.size()) < keep;
  r.stats["selection"] = {{"how", how}, {"candidates", order.size()}, {"kept_score_min", lo}, {"kept_score_max", hi}};
}

void write_dataset(const std::filesystem::path& dir, const DatasetResult& r) {
  fs::make_dirs(dir);
  data::write_jsonl((dir / "raw.jsonl").string(), r.raw);
  data::write_jsonl((dir / "rejects.jsonl").string(), r.rejects);
  data::write_conversations((dir / "kept.jsonl").string(), r.kept);
  fs::write_file_atomic(dir / "dataset.json", fs::without_timings(r.stats).dump(2) + "\n");
}

}  // namespace subliminal::generate
