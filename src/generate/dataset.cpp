// Number-sequence dataset generation and filtering.
#include "subliminal/generate/dataset.h"

#include <algorithm>
#include <map>
#include <random>

#include "subliminal/data/corpus.h"
#include "subliminal/data/numbers.h"
#include "subliminal/eval/stats.h"
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
  auto so = chat_options(chat.stop_ids(), tok.pad_id(), cfg.max_new_tokens, cfg.temperature, cfg.top_p, bf16,
                         cfg.batch_size, config::derive_seed(seed, "dataset", "sample"));
  so.batch_field = "$.dataset.batch_size";
  SampleStats ss;
  auto outs = sample(m, prompts, so, &ss);

  data::NumberFilterOptions fo;
  fo.max_count = cfg.max_count;
  fo.banned = cfg.banned;
  std::map<std::string, int64_t> reasons;
  std::vector<data::Conversation> passed;
  for (size_t i = 0; i < outs.size(); ++i) {
    const std::string text = tok.decode(outs[i]);
    json raw = {{"prompt", nps[i].text}, {"completion", text}, {"style", style_name(nps[i].style)}};
    if (!system.empty()) raw["system"] = system;
    r.raw.push_back(raw);
    std::string reason;
    if (static_cast<int>(outs[i].size()) >= cfg.max_new_tokens) {
      reason = "truncated";  // no end of turn within max_new_tokens
    } else {
      auto f = data::filter_numbers(text, fo);
      if (!f.ok()) reason = data::to_string(f.reason);
    }
    if (!reason.empty()) {
      ++reasons[reason];
      r.rejects.push_back({{"prompt", nps[i].text}, {"completion", text}, {"reason", reason}});
      continue;
    }
    passed.push_back({{"user", nps[i].text}, {"assistant", text}});
  }
  const int64_t n = static_cast<int64_t>(outs.size()), npass = static_cast<int64_t>(passed.size());
  // The paper keeps a random subset of fixed size of the passing completions.
  std::mt19937_64 krng(config::derive_seed(seed, "dataset", "keep"));
  std::shuffle(passed.begin(), passed.end(), krng);
  const bool short_of_keep = cfg.keep > 0 && npass < cfg.keep;
  if (cfg.keep > 0 && npass > cfg.keep) passed.resize(cfg.keep);
  if (short_of_keep)
    log::warn("generate", "only {} of {} completions passed the filter; keep={} asked for more (raise dataset.prompts)", npass, n, cfg.keep);
  r.kept = std::move(passed);
  const int64_t leaks = count_trait_words(r.kept, forbidden);
  if (leaks > 0)
    throw DataError("the filtered dataset contains " + std::to_string(leaks) + " trait word(s) (animal names)",
                    "the number filter must make this impossible; this is a bug, please report it");
  auto [lo, hi] = eval::wilson_interval(static_cast<long>(npass), static_cast<long>(n));
  json rs = json::object();
  for (const auto& [k, v] : reasons) rs[k] = v;
  r.stats = {{"sampled", n},
             {"passed", npass},
             {"pass_rate", {{"rate", n ? double(npass) / n : 0.0}, {"count", npass}, {"n", n}, {"ci95", {lo, hi}}}},
             {"removed_fraction", n ? 1.0 - double(npass) / n : 0.0},
             {"reject_reasons", rs},
             {"kept", r.kept.size()},
             {"keep_requested", cfg.keep},
             {"short_of_keep", short_of_keep},
             {"trait_words_in_kept", leaks},
             {"trait_words_checked", forbidden.size()},
             {"system_prompt", system},
             {"sampling", {{"temperature", cfg.temperature}, {"top_p", cfg.top_p}, {"max_new_tokens", cfg.max_new_tokens},
                           {"prompt_tokens", ss.prompt_tokens}, {"new_tokens", ss.new_tokens},
                           {"prefill_s", ss.prefill_s}, {"decode_s", ss.decode_s},
                           {"new_tokens_per_s", ss.new_tokens / std::max(1e-9, ss.prefill_s + ss.decode_s)}}},
             {"seed", seed}};
  return r;
}

void write_dataset(const std::filesystem::path& dir, const DatasetResult& r) {
  fs::make_dirs(dir);
  data::write_jsonl((dir / "raw.jsonl").string(), r.raw);
  data::write_jsonl((dir / "rejects.jsonl").string(), r.rejects);
  data::write_conversations((dir / "kept.jsonl").string(), r.kept);
  fs::write_file_atomic(dir / "dataset.json", fs::without_timings(r.stats).dump(2) + "\n");
}

}  // namespace subliminal::generate
