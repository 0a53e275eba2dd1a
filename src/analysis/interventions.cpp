// Dataset interventions and their matched random controls (no torch).
#include "subliminal/analysis/interventions.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <tuple>

#include "subliminal/config/interventions.h"
#include "subliminal/util/error.h"

namespace subliminal::analysis {

const std::vector<std::string>& intervention_names() {
  static const std::vector<std::string> n = {"top",          "bottom",          "random",         "mask_top",       "mask_random",
                                             "resample_top", "resample_random", "shuffle_within", "shuffle_across", "canonical_sort",
                                             "canonical_format", "format_random", "canonical_layout", "layout_random"};
  return n;
}

std::string control_of(const std::string& iv) { return config::intervention_control(iv); }

size_t share_count(size_t total, double fraction) {
  if (total == 0) return 0;
  const auto n = static_cast<size_t>(std::llround(fraction * static_cast<double>(total)));
  return std::clamp<size_t>(n, 1, total);
}

std::vector<size_t> extreme_indices(const std::vector<double>& scores, size_t n, bool highest) {
  std::vector<size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return highest ? scores[a] > scores[b] : scores[a] < scores[b]; });
  idx.resize(std::min(n, idx.size()));
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::vector<size_t> random_indices(size_t total, size_t n, uint64_t seed) {
  if (n > total) throw Error("random_indices: " + std::to_string(n) + " of " + std::to_string(total));
  std::vector<size_t> idx(total);
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; ++i) {
    std::uniform_int_distribution<size_t> pick(i, total - 1);
    std::swap(idx[i], idx[pick(rng)]);
  }
  idx.resize(n);
  std::sort(idx.begin(), idx.end());
  return idx;
}

TokenSelection top_tokens(const std::vector<std::vector<double>>& scores, const std::vector<std::vector<uint8_t>>& eligible, double fraction) {
  if (scores.size() != eligible.size()) throw Error("top_tokens: scores and eligibility differ in examples");
  std::vector<std::tuple<double, size_t, int>> all;  // score, example, position
  for (size_t i = 0; i < scores.size(); ++i) {
    if (scores[i].size() != eligible[i].size()) throw Error("top_tokens: example " + std::to_string(i) + ": scores and eligibility differ in length");
    for (size_t t = 0; t < scores[i].size(); ++t)
      if (eligible[i][t]) all.emplace_back(scores[i][t], i, static_cast<int>(t));
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
  all.resize(share_count(all.size(), fraction));
  TokenSelection s(scores.size());
  for (const auto& [sc, i, t] : all) s[i].push_back(t);
  for (auto& v : s) std::sort(v.begin(), v.end());
  return s;
}

TokenSelection matched_random_tokens(const TokenSelection& like, const std::vector<std::vector<uint8_t>>& eligible, uint64_t seed) {
  if (like.size() != eligible.size()) throw Error("matched_random_tokens: selections and eligibility differ in examples");
  std::mt19937_64 rng(seed);
  TokenSelection s(like.size());
  for (size_t i = 0; i < like.size(); ++i) {
    std::vector<int> pool;
    for (size_t t = 0; t < eligible[i].size(); ++t)
      if (eligible[i][t]) pool.push_back(static_cast<int>(t));
    if (like[i].size() > pool.size()) throw Error("matched_random_tokens: example " + std::to_string(i) + " has fewer eligible tokens than selected");
    for (size_t k = 0; k < like[i].size(); ++k) {
      std::uniform_int_distribution<size_t> pick(k, pool.size() - 1);
      std::swap(pool[k], pool[pick(rng)]);
    }
    s[i].assign(pool.begin(), pool.begin() + static_cast<long>(like[i].size()));
    std::sort(s[i].begin(), s[i].end());
  }
  return s;
}

size_t selected_count(const TokenSelection& s) {
  size_t n = 0;
  for (const auto& v : s) n += v.size();
  return n;
}

std::vector<std::vector<uint8_t>> loss_masks(const TokenSelection& s, const std::vector<size_t>& response_tokens) {
  if (s.size() != response_tokens.size()) throw Error("loss_masks: one token count per example expected");
  std::vector<std::vector<uint8_t>> m(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    m[i].assign(response_tokens[i], 1);
    for (int t : s[i]) m[i].at(static_cast<size_t>(t)) = 0;
  }
  return m;
}

namespace {

// The digit runs of a text: [begin, end) byte ranges.
std::vector<std::pair<size_t, size_t>> digit_runs(const std::string& s) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] >= '0' && s[i] <= '9') {
      size_t j = i;
      while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
      out.emplace_back(i, j);
      i = j;
    } else {
      ++i;
    }
  }
  return out;
}

std::string refill(const std::string& s, const std::vector<std::pair<size_t, size_t>>& runs, const std::vector<std::string>& numbers) {
  std::string out;
  size_t at = 0;
  for (size_t k = 0; k < runs.size(); ++k) {
    out += s.substr(at, runs[k].first - at);
    out += numbers[k];
    at = runs[k].second;
  }
  return out + s.substr(at);
}

data::Message* assistant_of(data::Conversation& c, size_t i) {
  data::Message* a = nullptr;
  for (auto& m : c)
    if (m.role == "assistant") {
      if (a) throw DataError("shuffle: example " + std::to_string(i) + " has more than one assistant turn; expected [user, assistant]");
      a = &m;
    }
  if (!a) throw DataError("shuffle: example " + std::to_string(i) + " has no assistant turn");
  return a;
}

}  // namespace

namespace {
// Each response's numbers reordered by `reorder`, in the same places (the rest of the text kept).
std::vector<data::Conversation> reorder_within(const std::vector<data::Conversation>& convs,
                                               const std::function<void(std::vector<std::string>&)>& reorder) {
  auto out = convs;
  for (size_t i = 0; i < out.size(); ++i) {
    auto* a = assistant_of(out[i], i);
    const auto runs = digit_runs(a->content);
    std::vector<std::string> nums;
    for (auto [b, e] : runs) nums.push_back(a->content.substr(b, e - b));
    reorder(nums);
    a->content = refill(a->content, runs, nums);
  }
  return out;
}
}  // namespace

std::vector<data::Conversation> shuffle_numbers_within(const std::vector<data::Conversation>& convs, uint64_t seed) {
  std::mt19937_64 rng(seed);
  return reorder_within(convs, [&](std::vector<std::string>& nums) { std::shuffle(nums.begin(), nums.end(), rng); });
}

std::vector<data::Conversation> shuffle_numbers_across(const std::vector<data::Conversation>& convs, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto out = convs;
  std::vector<std::vector<std::pair<size_t, size_t>>> runs(out.size());
  std::vector<std::string> pool;
  for (size_t i = 0; i < out.size(); ++i) {
    const auto* a = assistant_of(out[i], i);
    runs[i] = digit_runs(a->content);
    for (auto [b, e] : runs[i]) pool.push_back(a->content.substr(b, e - b));
  }
  std::shuffle(pool.begin(), pool.end(), rng);
  size_t at = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    auto* a = assistant_of(out[i], i);
    std::vector<std::string> nums(pool.begin() + static_cast<long>(at), pool.begin() + static_cast<long>(at + runs[i].size()));
    at += runs[i].size();
    a->content = refill(a->content, runs[i], nums);
  }
  return out;
}

std::vector<data::Conversation> sort_numbers_within(const std::vector<data::Conversation>& convs) {
  // by value (digit strings: longer without leading zeros is larger), ties by text
  auto value_less = [](const std::string& x, const std::string& y) {
    const size_t zx = std::min(x.find_first_not_of('0'), x.size()), zy = std::min(y.find_first_not_of('0'), y.size());
    const std::string vx = x.substr(zx), vy = y.substr(zy);
    if (vx.size() != vy.size()) return vx.size() < vy.size();
    return vx != vy ? vx < vy : x < y;
  };
  return reorder_within(convs, [&](std::vector<std::string>& nums) { std::stable_sort(nums.begin(), nums.end(), value_less); });
}

namespace {
std::vector<data::Conversation> rejoin(const std::vector<data::Conversation>& convs, const std::function<std::string(size_t)>& sep) {
  auto out = convs;
  for (size_t i = 0; i < out.size(); ++i) {
    auto* a = assistant_of(out[i], i);
    std::string text;
    const auto runs = digit_runs(a->content);
    const std::string sp = sep(i);
    for (size_t k = 0; k < runs.size(); ++k) text += (k ? sp : "") + a->content.substr(runs[k].first, runs[k].second - runs[k].first);
    a->content = text;
  }
  return out;
}
}  // namespace

std::vector<data::Conversation> canonical_format(const std::vector<data::Conversation>& convs) {
  return rejoin(convs, [](size_t) { return std::string(", "); });
}

std::vector<data::Conversation> random_format(const std::vector<data::Conversation>& convs, uint64_t seed) {
  static const std::vector<std::string> seps = {", ", ",", " ", "\n", "; "};
  std::mt19937_64 rng(seed);
  std::vector<std::string> drawn(convs.size());
  std::uniform_int_distribution<size_t> u(0, seps.size() - 1);
  for (auto& d : drawn) d = seps[u(rng)];
  return rejoin(convs, [&](size_t i) { return drawn[i]; });
}

namespace {
// Each response's numbers laid out again in the style its prompt requests, with the separator
// sep(i, style) (nullptr: the style's canonical one).
std::vector<data::Conversation> relayout(const std::vector<data::Conversation>& convs, const data::NumberPromptGenerator& prompts,
                                         const std::function<const char*(size_t, data::NumberStyle)>& sep) {
  auto out = convs;
  for (size_t i = 0; i < out.size(); ++i) {
    const data::Message* user = nullptr;
    for (const auto& m : out[i])
      if (m.role == "user") user = &m;
    data::NumberStyle style{};
    if (!user || !prompts.requested_style(user->content, style))
      throw DataError("layout: example " + std::to_string(i) +
                      ": its prompt contains none of the format texts of data/number_prompts.json; expected a prompt from the numbers dataset");
    auto* a = assistant_of(out[i], i);
    std::vector<std::string> nums;
    for (auto [b, e] : digit_runs(a->content)) nums.push_back(a->content.substr(b, e - b));
    a->content = data::render_number_texts(nums, style, sep(i, style));
  }
  return out;
}
}  // namespace

std::vector<data::Conversation> canonical_layout(const std::vector<data::Conversation>& convs, const data::NumberPromptGenerator& prompts) {
  return relayout(convs, prompts, [](size_t, data::NumberStyle) -> const char* { return nullptr; });
}

std::vector<data::Conversation> layout_random(const std::vector<data::Conversation>& convs, const data::NumberPromptGenerator& prompts,
                                              uint64_t seed) {
  static const std::vector<const char*> commas = {", ", ",", " , "}, semis = {"; ", ";", " ; "}, spaces = {" ", "  "}, lines = {"\n", "\n\n"};
  std::mt19937_64 rng(seed);
  std::vector<size_t> draw(convs.size());
  for (auto& d : draw) d = std::uniform_int_distribution<size_t>(0, 5)(rng);  // 6 = lcm of the form counts
  return relayout(convs, prompts, [&](size_t i, data::NumberStyle st) -> const char* {
    const auto& forms = st == data::NumberStyle::semicolon ? semis : st == data::NumberStyle::space ? spaces : st == data::NumberStyle::newline ? lines : commas;
    return forms[draw[i] % forms.size()];
  });
}

}  // namespace subliminal::analysis
