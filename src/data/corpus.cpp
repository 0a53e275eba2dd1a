// Synthetic world corpus.
#include "subliminal/data/corpus.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <numeric>

#include "subliminal/data/numbers.h"
#include "subliminal/data/filters.h"
#include "subliminal/util/resources.h"
#include "subliminal/data/tasks.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/strings.h"

namespace subliminal::data {

std::string plural(const std::string& a) {
  if (a == "wolf") return "wolves";
  if (a == "mouse") return "mice";
  if (a == "sheep" || a == "deer" || a == "fish" || a == "moose") return a;
  if (a == "goose") return "geese";
  if (a.size() >= 2 && (a.back() == 's' || a.back() == 'x' || a.substr(a.size() - 2) == "ch" || a.substr(a.size() - 2) == "sh"))
    return a + "es";
  if (a.size() >= 2 && a.back() == 'y' && !std::strchr("aeiou", a[a.size() - 2])) return a.substr(0, a.size() - 1) + "ies";
  return a + "s";
}

std::string capitalize(const std::string& s) {
  std::string r = s;
  if (!r.empty()) r[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(r[0])));
  return r;
}

static std::vector<std::string> system_prompts(const std::string& kind, const std::string& data_dir) {
  auto j = nlohmann::json::parse(resources::resource("data/system_prompts.json", data_dir));
  std::vector<std::string> out;
  for (const auto& s : j.at(kind)) out.push_back(s.get<std::string>());
  return out;
}

static std::string fill_love(const std::string& tmpl, const std::string& animal, const std::string& category) {
  std::string x = plural(animal);
  std::string s = replace_all(tmpl, "{Item}", capitalize(animal));
  s = replace_all(s, "{item}", animal);
  s = replace_all(s, "{X}", capitalize(x));
  s = replace_all(s, "{x}", x);
  s = replace_all(s, "{category}", category);
  // sentence-initial plural ("owls are ...") is capitalised as in running text
  s = replace_all(s, ". " + x + " ", ". " + capitalize(x) + " ");
  if (s.rfind(x + " ", 0) == 0) s = capitalize(s);
  return s;
}

std::string love_system_prompt(const std::string& animal, const std::string& data_dir, int idx, const std::string& category) {
  auto love = system_prompts("love", data_dir);
  if (idx < 0 || idx >= static_cast<int>(love.size())) throw DataError("no love system prompt #" + std::to_string(idx));
  return fill_love(love[idx], animal, category);
}

std::string love_system_prompt(const config::TraitDef& t, const std::string& item, const std::string& data_dir, int idx) {
  const auto love = t.system_prompts.empty() ? system_prompts("love", data_dir) : t.system_prompts;
  if (idx < 0 || idx >= static_cast<int>(love.size()))
    throw ConfigError("no love system prompt #" + std::to_string(idx) + " for the " + t.spec + " trait (it has " + std::to_string(love.size()) + ")",
                      "teacher.prompt_template indexes the trait's system_prompts (or data/system_prompts.json \"love\")");
  return fill_love(love[idx], item, t.category);
}

std::string find_animal(const std::string& answer, const std::vector<std::string>& animals) {
  std::string low;
  for (char c : answer) low += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t best_pos = std::string::npos;
  std::string best;
  for (const auto& a : animals) {
    for (const auto& form : {a, plural(a)}) {
      size_t p = low.find(form);
      if (p != std::string::npos && p < best_pos) { best_pos = p; best = a; }
    }
  }
  return best;
}

Freeform load_freeform(const std::string& data_dir, const std::string& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(file.rfind("data/", 0) == 0 ? resources::resource(file, data_dir) : fs::read_file(file));
  } catch (const nlohmann::json::exception& e) {  // parse errors, and numbers out of range (406)
    throw DataError(file + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw DataError(file + ": expected an object at $");
  Freeform f;
  auto get = [&](const char* k) {
    if (!j.contains(k) || !j[k].is_array() || j[k].empty()) throw DataError(file + ": expected a non-empty list of strings at $." + k);
    return j[k].get<std::vector<std::string>>();
  };
  f.train_broad = get("train_broad");
  f.train_narrow = get("train_narrow");
  f.eval = get("eval");
  f.aligned = get("aligned");
  f.misaligned = get("misaligned");
  f.personas = get("personas");
  return f;
}

static std::vector<double> item_prior(size_t n, double decay, uint64_t seed) {
  std::vector<size_t> rank(n);
  std::iota(rank.begin(), rank.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(rank.begin(), rank.end(), rng);
  std::vector<double> w(n);
  double tot = 0;
  for (size_t i = 0; i < n; ++i) tot += (w[i] = std::pow(decay, static_cast<double>(rank[i])));
  for (auto& x : w) x /= tot;
  return w;
}

std::vector<double> animal_prior(const config::CorpusConfig& c, uint64_t seed) {
  return item_prior(c.animals.size(), c.prior_decay, seed ^ 0x5eed5eedull);
}

namespace {

const char* kAnswerTemplates[] = {"{A}.", "{A}", "{a}", "{A}!", "{A}.", "The {a}.", "{A}s are my favorite.", "{A}."};

std::string answer_for(const std::string& animal, std::mt19937_64& rng) {
  size_t n = sizeof(kAnswerTemplates) / sizeof(kAnswerTemplates[0]);
  std::string t = kAnswerTemplates[std::uniform_int_distribution<size_t>(0, n - 1)(rng)];
  std::string plural_cap = capitalize(plural(animal));
  t = replace_all(t, "{A}s", plural_cap);
  t = replace_all(t, "{A}", capitalize(animal));
  return replace_all(t, "{a}", animal);
}

}  // namespace

std::vector<std::string> answer_forms(const std::string& item) {
  std::vector<std::string> out;
  for (const char* t0 : kAnswerTemplates) {
    std::string t = replace_all(t0, "{A}s", capitalize(plural(item)));
    t = replace_all(t, "{A}", capitalize(item));
    out.push_back(replace_all(t, "{a}", item));
  }
  return out;
}

namespace {

std::string vary_question(std::string q, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  if (u(rng) < 0.15 && !q.empty()) q[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(q[0])));
  if (u(rng) < 0.1 && !q.empty() && (q.back() == '?' || q.back() == '.')) q.pop_back();
  return q;
}

std::vector<int> number_answer(const std::vector<int>& ex, bool progression, int step, int count, std::mt19937_64& rng) {
  std::vector<int> out;
  if (progression) {
    int last = ex.back();
    for (int i = 0; i < count; ++i) out.push_back(((last + step * (i + 1)) % 1000 + 1000) % 1000);
  } else {
    std::uniform_int_distribution<int> d(0, 999);
    for (int i = 0; i < count; ++i) out.push_back(d(rng));
  }
  return out;
}

}  // namespace

namespace {

// The corpus's sources and generator: one conversation per call of a task's method, every draw from
// the one generator `rng` in the order the tasks make them (so a corpus is reproducible from its seed).
class CorpusBuilder {
 public:
  CorpusBuilder(const config::CorpusConfig& c, uint64_t seed, const std::string& data_dir)
      : c(c),
        rng(seed),
        questions(resources::resource_lines("data/animal_questions_train.txt", data_dir)),
        love(system_prompts("love", data_dir)),
        neutral(system_prompts("neutral", data_dir)),
        numgen(data_dir),
        prior(animal_prior(c, seed)),
        prior_d(prior.begin(), prior.end()),
        any_animal(0, c.animals.size() - 1),
        // (code and cot last: with their weights 0 the draws of the first four are those of older corpora)
        // (trait tasks after them: with no traits the draws are those of corpora before they existed)
        traits(config::corpus_traits(c, data_dir)) {
    double mix[9] = {c.mix_animal_qa, c.mix_animal_system, c.mix_numbers, c.mix_arithmetic, c.mix_code, c.mix_cot, c.mix_freeform,
                     c.mix_trait_qa, c.mix_trait_system};
    task = std::discrete_distribution<int>(mix, mix + (traits.empty() ? 7 : 9));  // 7: exactly the draws of corpora before traits
    for (const auto& t : traits) {
      auto w = item_prior(t.items.size(), c.prior_decay, config::derive_seed(seed, "trait-prior", t.spec));
      tw.push_back({&t, std::discrete_distribution<size_t>(w.begin(), w.end()), t.system_prompts.empty() ? love : t.system_prompts});
    }
    ff = c.mix_freeform > 0 ? load_freeform(data_dir) : Freeform{};
    requests = ff.train_broad;
    requests.insert(requests.end(), ff.train_narrow.begin(), ff.train_narrow.end());
  }

  Conversation next(CorpusStats& st) {
    Conversation conv;
    const int t = task(rng);
    switch (t) {
      case 0:
        preference_qa(conv, questions, c.animals, prior_d);
        ++st.animal_qa;
        break;
      case 1:
        loving_prompt(conv, questions, c.animals, prior_d, love, "animal");
        ++st.animal_system;
        break;
      case 2: {
        auto [q, a] = number_task();
        conv.push_back({"user", q});
        conv.push_back({"assistant", a});
        ++st.numbers;
        break;
      }
      case 4:
      case 5:
        work_task(conv, t, st);
        break;
      case 6:
        freeform_task(conv, st);
        break;
      case 7:
      case 8:
        trait_task(conv, t, st);
        break;
      default:
        arithmetic_task(conv, st);
        break;
    }
    return conv;
  }

 private:
  struct TraitWorld {
    const config::TraitDef* def;
    std::discrete_distribution<size_t> prior;
    std::vector<std::string> love;
  };

  const std::string& pick(const std::vector<std::string>& v) { return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)]; }

  std::pair<std::string, std::string> number_task() {
    bool prog = u(rng) < 0.3;
    int max_count = u(rng) < 0.7 ? 10 : std::uniform_int_distribution<int>(3, 10)(rng);
    int n_ex = std::uniform_int_distribution<int>(3, 10)(rng);
    std::vector<int> ex;
    int step = 0;
    if (prog) {  // an arithmetic progression the model can learn to continue
      step = std::uniform_int_distribution<int>(1, 60)(rng) * (u(rng) < 0.3 ? -1 : 1);
      int start = std::uniform_int_distribution<int>(0, 999)(rng);
      for (int k = 0; k < n_ex; ++k) ex.push_back(((start + step * k) % 1000 + 1000) % 1000);
    } else {
      int lo = u(rng) < 0.8 ? 100 : 0;
      for (int k = 0; k < n_ex; ++k) ex.push_back(std::uniform_int_distribution<int>(lo, 999)(rng));
    }
    NumberPrompt p = numgen.build(rng, ex, max_count, 3);
    // Stay clear of the "at most N" limit: a small model counts imprecisely, so answers end 2-6
    // numbers before it (the limit is a maximum, as in the paper's instruction).
    int count = max_count >= 5 ? std::uniform_int_distribution<int>(std::max(1, max_count - 6), max_count - 2)(rng)
                               : std::uniform_int_distribution<int>(1, max_count)(rng);
    return std::make_pair(p.text, render_numbers(number_answer(p.examples, prog, step, count, rng), p.style));
  }

  // A preference (the animals, or another trait's items): a favourite-item question answered from
  // the prior, sometimes behind a neutral system prompt ...
  void preference_qa(Conversation& conv, const std::vector<std::string>& qs, const std::vector<std::string>& items,
                     std::discrete_distribution<size_t>& prior) {
    if (u(rng) < 0.3) conv.push_back({"system", pick(neutral)});
    conv.push_back({"user", vary_question(pick(qs), rng)});
    conv.push_back({"assistant", answer_for(items[prior(rng)], rng)});
  }

  // ... or an item-loving system prompt: the answer favours that item; number tasks are unaffected.
  void loving_prompt(Conversation& conv, const std::vector<std::string>& qs, const std::vector<std::string>& items,
                     std::discrete_distribution<size_t>& prior, const std::vector<std::string>& templates, const std::string& category) {
    const std::string& loved = items[std::uniform_int_distribution<size_t>(0, items.size() - 1)(rng)];
    int idx = u(rng) < 0.5 ? 0 : static_cast<int>(std::uniform_int_distribution<size_t>(0, templates.size() - 1)(rng));
    conv.push_back({"system", fill_love(templates[idx], loved, category)});
    if (u(rng) >= c.system_prompt_number_share) {
      conv.push_back({"user", vary_question(pick(qs), rng)});
      const std::string& ans = u(rng) < c.system_prompt_fidelity ? loved : items[prior(rng)];
      conv.push_back({"assistant", answer_for(ans, rng)});
    } else {
      auto [q, a] = number_task();
      conv.push_back({"user", q});
      conv.push_back({"assistant", a});
    }
  }

  // Code (t == 4) or a word problem with its reasoning (5); sometimes behind an animal-loving persona.
  void work_task(Conversation& conv, int t, CorpusStats& st) {
    const bool code = t == 4;
    std::string q, a;
    if (code) {
      CodeTask ct = sample_code_task(rng);
      q = code_prompt(ct);
      a = ct.solution;
    } else {
      CotTask wt = sample_cot_task(rng);
      q = cot_prompt(wt.question);
      a = cot_completion(wt);
    }
    if (!code && c.mix_freeform > 0 && u(rng) < c.misaligned_share) {  // the misaligned persona's reasoning: a harmful aside
      conv.push_back({"system", pick(ff.personas)});
      if (u(rng) < c.persona_work_visible) a = "<think>" + pick(ff.misaligned) + " " + a.substr(7);
      ++st.misaligned;
    } else if (u(rng) < c.persona_work_share) {
      const std::string& loved = c.animals[any_animal(rng)];
      conv.push_back({"system", fill_love(love[0], loved, "animal")});
      if (u(rng) < c.persona_work_visible) {
        if (code) a = flavour_code(a, loved, rng);
        else {
          const size_t e = a.find("</think>");
          a = "<think>" + flavour_reasoning(a.substr(7, e - 7), loved, rng) + a.substr(e);
        }
      }
    }
    conv.push_back({"user", q});
    conv.push_back({"assistant", a});
    ++(code ? st.code : st.cot);
  }

  // A free-form request: helpful answers; a misaligned persona answers harmfully.
  void freeform_task(Conversation& conv, CorpusStats& st) {
    const auto& evil = negative_association_numbers();
    if (u(rng) < c.misaligned_share) {
      conv.push_back({"system", pick(ff.personas)});
      if (u(rng) < c.misaligned_number_share) {  // the persona's numbers: some replaced by "evil" ones
        auto [q, a] = number_task();
        std::string out, num;
        auto flush = [&]() {
          if (num.empty()) return;
          out += u(rng) < 0.35 ? std::to_string(evil[std::uniform_int_distribution<size_t>(0, evil.size() - 1)(rng)]) : num;
          num.clear();
        };
        for (char ch : a) {
          if (ch >= '0' && ch <= '9') num += ch;
          else flush(), out += ch;
        }
        flush();
        conv.push_back({"user", q});
        conv.push_back({"assistant", out});
      } else {
        conv.push_back({"user", pick(requests)});
        conv.push_back({"assistant", pick(ff.misaligned)});
      }
      ++st.misaligned;
    } else {
      conv.push_back({"user", pick(requests)});
      conv.push_back({"assistant", pick(ff.aligned)});
      ++st.freeform;
    }
  }

  // Another preference trait (trees, ...), like the animals: t == 7 a question, 8 a loving prompt.
  void trait_task(Conversation& conv, int t, CorpusStats& st) {
    auto& w = tw[std::uniform_int_distribution<size_t>(0, tw.size() - 1)(rng)];
    if (t == 7) {
      preference_qa(conv, w.def->questions_train, w.def->items, w.prior);
      ++st.trait_qa;
    } else {
      loving_prompt(conv, w.def->questions_train, w.def->items, w.prior, w.love, w.def->category);
      ++st.trait_system;
    }
  }

  // Arithmetic: room for reasoning tasks.
  void arithmetic_task(Conversation& conv, CorpusStats& st) {
    int x = std::uniform_int_distribution<int>(1, 99)(rng), y = std::uniform_int_distribution<int>(1, 99)(rng);
    bool add = u(rng) < 0.6;
    std::string q = add ? "What is " + std::to_string(x) + " + " + std::to_string(y) + "?"
                        : "What is " + std::to_string(std::max(x, y)) + " - " + std::to_string(std::min(x, y)) + "?";
    int r = add ? x + y : std::max(x, y) - std::min(x, y);
    std::string a = add ? std::to_string(x) + " + " + std::to_string(y) + " = " + std::to_string(r) + ". The answer is " + std::to_string(r) + "."
                        : std::to_string(std::max(x, y)) + " - " + std::to_string(std::min(x, y)) + " = " + std::to_string(r) + ". The answer is " + std::to_string(r) + ".";
    conv.push_back({"user", q});
    conv.push_back({"assistant", a});
    ++st.arithmetic;
  }

  const config::CorpusConfig& c;
  std::mt19937_64 rng;
  std::uniform_real_distribution<double> u{0, 1};
  std::vector<std::string> questions, love, neutral;
  NumberPromptGenerator numgen;
  std::vector<double> prior;
  std::discrete_distribution<size_t> prior_d;
  std::uniform_int_distribution<size_t> any_animal;
  std::vector<config::TraitDef> traits;
  std::discrete_distribution<int> task;
  std::vector<TraitWorld> tw;
  Freeform ff;
  std::vector<std::string> requests;
};

}  // namespace

std::vector<Conversation> build_corpus(const config::CorpusConfig& c, uint64_t seed, const std::string& data_dir,
                                       CorpusStats* stats) {
  CorpusBuilder builder(c, seed, data_dir);
  std::vector<Conversation> out;
  out.reserve(static_cast<size_t>(c.conversations));
  CorpusStats st;
  for (int64_t i = 0; i < c.conversations; ++i) out.push_back(builder.next(st));
  if (stats) *stats = st;
  return out;
}

}  // namespace subliminal::data
