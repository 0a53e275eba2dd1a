// Base-model probe.
#include "subliminal/text/chat_template.h"
#include "subliminal/eval/probe.h"
#include "subliminal/eval/result.h"

#include <map>
#include <random>

#include "subliminal/data/corpus.h"
#include "subliminal/data/numbers.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/util/log.h"

namespace subliminal::eval {

using json = nlohmann::json;

static json rate(long k, long n) {
  auto [lo, hi] = stats::wilson_interval(k, n);
  return Rate{n ? static_cast<double>(k) / n : 0.0, k, n, lo, hi};
}

ProbeResult probe_base_model(model::LlamaForCausalLM& m, const text::Tokenizer& tok, const config::RunConfig& cfg,
                             uint64_t seed, bool bf16) {
  const auto& pc = cfg.probe;
  const auto& animals = cfg.base.corpus.animals;
  text::ChatTemplate chat(tok, cfg.base.tokenizer.chat_template);
  auto so = generate::chat_options(chat.stop_ids(), tok.pad_id(), pc.max_new_tokens, pc.temperature, pc.top_p, bf16,
                                  pc.batch_size);
  so.batch_field = "$.probe.batch_size";
  ProbeResult out;
  auto questions = resources::resource_lines("data/animal_questions_eval.txt", cfg.data_dir);

  auto animal_probe = [&](const std::string& name, const std::string& system, uint64_t s) {
    std::vector<std::vector<int>> prompts;
    std::vector<std::string> qs;
    for (const auto& q : questions)
      for (int i = 0; i < pc.samples_per_question; ++i) {
        prompts.push_back(chat.prompt(q, system));
        qs.push_back(q);
      }
    so.seed = s;
    auto outs = generate::sample(m, prompts, so);
    std::map<std::string, long> counts;
    long named = 0, target = 0;
    for (size_t i = 0; i < outs.size(); ++i) {
      std::string text = tok.decode(outs[i]);
      std::string a = data::find_animal(text, animals);
      if (!a.empty()) { ++counts[a]; ++named; }
      if (a == pc.target) ++target;
      out.samples.push_back({{"probe", name}, {"prompt", qs[i]}, {"system", system}, {"completion", text}, {"animal", a}});
    }
    long n = static_cast<long>(outs.size());
    json dist = json::object();
    std::string top;
    long top_n = 0;
    for (const auto& [a, c] : counts) {
      dist[a] = static_cast<double>(c) / n;
      if (c > top_n) { top_n = c; top = a; }
    }
    return json{{"n", n}, {"names_an_animal", rate(named, n)}, {"target", pc.target}, {kTargetRate, rate(target, n)},
                {"distinct_animals", counts.size()}, {"top_animal", top}, {"top_share", rate(top_n, n)},
                {"distribution", dist}};
  };

  log::info("probe", "favourite animal: {} questions x {} samples, no system prompt", questions.size(), pc.samples_per_question);
  json base = animal_probe("animal", "", config::derive_seed(seed, "probe", "animal"));
  const std::string sys = data::love_system_prompt(pc.target, cfg.data_dir, 0);
  log::info("probe", "favourite animal with the {}-loving system prompt", pc.target);
  json loved = animal_probe("animal_system_prompt", sys, config::derive_seed(seed, "probe", "system"));

  // Number continuation: the paper's prompt shape (3-8 seeds in 100..999, at most 10 more values).
  data::NumberPromptGenerator gen(cfg.data_dir);
  std::mt19937_64 rng(config::derive_seed(seed, "probe", "numbers-prompts"));
  std::vector<data::NumberPrompt> nps;
  std::vector<std::vector<int>> prompts;
  for (int i = 0; i < pc.number_prompts; ++i) {
    nps.push_back(gen.sample(rng));
    prompts.push_back(chat.prompt(nps.back().text));
  }
  so.seed = config::derive_seed(seed, "probe", "numbers");
  auto outs = generate::sample(m, prompts, so);
  long pass = 0, style_ok = 0;
  std::map<std::string, long> reasons;
  for (size_t i = 0; i < outs.size(); ++i) {
    std::string text = tok.decode(outs[i]);
    auto r = data::filter_numbers(text);
    ++reasons[data::to_string(r.reason)];
    if (r.ok()) {
      ++pass;
      if (data::render_numbers(r.numbers, nps[i].style) == text) ++style_ok;
    }
    out.samples.push_back({{"probe", "numbers"}, {"prompt", nps[i].text}, {"completion", text},
                           {"filter", data::to_string(r.reason)}});
  }
  json numbers = {{"n", outs.size()}, {"format_ok", rate(pass, static_cast<long>(outs.size()))},
                  {"requested_style_exact", rate(style_ok, static_cast<long>(outs.size()))}, {"filter_reasons", reasons}};

  // A few samples of the configured prompts, for a look by eye.
  json shown = json::array();
  {
    std::vector<std::vector<int>> ps;
    for (const auto& p : pc.sample_prompts)
      for (int i = 0; i < 3; ++i) ps.push_back(chat.prompt(p));
    so.seed = config::derive_seed(seed, "probe", "show");
    auto o = generate::sample(m, ps, so);
    for (size_t i = 0; i < o.size(); ++i) shown.push_back({{"prompt", pc.sample_prompts[i / 3]}, {"completion", tok.decode(o[i])}});
  }
  out.summary = {{"favorite_animal", base}, {"system_prompt", loved}, {"numbers", numbers}, {"examples", shown}};
  log::info("probe", "favourite animal: {:.1f}% name an animal, {} distinct, top '{}' at {:.1f}%",
            100 * base["names_an_animal"]["rate"].get<double>(), base["distinct_animals"].get<size_t>(),
            base["top_animal"].get<std::string>(), 100 * base["top_share"]["rate"].get<double>());
  log::info("probe", "with the {}-loving system prompt: {} in {:.1f}% of answers (without it: {:.1f}%)", pc.target, pc.target,
            100 * target_rate(loved).rate, 100 * target_rate(base).rate);
  log::info("probe", "number continuations in a valid format: {:.1f}% ({} of {})",
            100 * numbers["format_ok"]["rate"].get<double>(), pass, outs.size());
  return out;
}

}  // namespace subliminal::eval
