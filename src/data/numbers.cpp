// Number prompts, rendering and the strict filter.
#include "subliminal/data/numbers.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "subliminal/util/resources.h"
#include "subliminal/util/error.h"
#include "subliminal/util/strings.h"

namespace subliminal::data {

NumberStyle number_style_from_string(const std::string& s) {
  if (s == "comma") return NumberStyle::comma;
  if (s == "space") return NumberStyle::space;
  if (s == "semicolon") return NumberStyle::semicolon;
  if (s == "newline") return NumberStyle::newline;
  if (s == "brackets") return NumberStyle::brackets;
  if (s == "parentheses") return NumberStyle::parentheses;
  throw DataError("unknown number style '" + s + "' (expected comma, space, semicolon, newline, brackets, parentheses)");
}

std::string render_numbers(const std::vector<int>& xs, NumberStyle style) {
  std::vector<std::string> t;
  t.reserve(xs.size());
  for (int x : xs) t.push_back(std::to_string(x));
  return render_number_texts(t, style);
}

std::string render_number_texts(const std::vector<std::string>& xs, NumberStyle style, const char* sep) {
  if (!sep) switch (style) {
      case NumberStyle::space: sep = " "; break;
      case NumberStyle::semicolon: sep = "; "; break;
      case NumberStyle::newline: sep = "\n"; break;
      default: sep = ", "; break;
    }
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (i) s += sep;
    s += xs[i];
  }
  if (style == NumberStyle::brackets) return "[" + s + "]";
  if (style == NumberStyle::parentheses) return "(" + s + ")";
  return s;
}

NumberPromptGenerator::NumberPromptGenerator(const std::string& data_dir) {
  const std::string name = "data/number_prompts.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(resources::resource(name, data_dir));
    for (const auto& s : j.at("example")) example_.push_back(s.get<std::string>());
    for (const auto& s : j.at("instruction")) instruction_.push_back(s.get<std::string>());
    for (const auto& s : j.at("suffix")) suffix_.push_back(s.get<std::string>());
    for (const auto& f : j.at("format"))
      format_.emplace_back(f.at("text").get<std::string>(), number_style_from_string(f.at("style").get<std::string>()));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(name + ": " + e.what() + " (expected slots example, instruction, format, suffix)");
  }
  if (example_.empty() || instruction_.empty() || format_.empty() || suffix_.empty())
    throw DataError(name + ": every slot needs at least one template");
}

size_t NumberPromptGenerator::slot_sizes(int slot) const {
  switch (slot) {
    case 0: return example_.size();
    case 1: return instruction_.size();
    case 2: return format_.size();
    default: return suffix_.size();
  }
}

bool NumberPromptGenerator::requested_style(const std::string& prompt, NumberStyle& style) const {
  size_t best = 0;
  for (const auto& [text, st] : format_)
    if (text.size() > best && prompt.find(text) != std::string::npos) {
      best = text.size();
      style = st;
    }
  return best > 0;
}

NumberPrompt NumberPromptGenerator::sample(std::mt19937_64& rng, int min_examples, int max_examples, int example_min,
                                           int example_max, int max_count, int digits) const {
  int n = std::uniform_int_distribution<int>(min_examples, max_examples)(rng);
  std::vector<int> ex;
  for (int i = 0; i < n; ++i) ex.push_back(std::uniform_int_distribution<int>(example_min, example_max)(rng));
  return build(rng, std::move(ex), max_count, digits);
}

NumberPrompt NumberPromptGenerator::build(std::mt19937_64& rng, std::vector<int> examples, int max_count, int digits) const {
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  NumberPrompt p;
  p.examples = std::move(examples);
  std::string ex;
  for (size_t i = 0; i < p.examples.size(); ++i) ex += (i ? ", " : "") + std::to_string(p.examples[i]);
  const auto& fmt = format_[pick(format_.size())];
  p.style = fmt.second;
  p.max_count = max_count;
  std::string instr = replace_all(instruction_[pick(instruction_.size())], "{count}", std::to_string(max_count));
  instr = replace_all(instr, "{digits}", std::to_string(digits));
  p.text = replace_all(example_[pick(example_.size())], "{examples}", ex) + " " + instr + " " + fmt.first + " " +
           suffix_[pick(suffix_.size())];
  return p;
}

const char* to_string(NumberReject r) {
  switch (r) {
    case NumberReject::none: return "ok";
    case NumberReject::empty: return "empty";
    case NumberReject::bad_character: return "bad_character";
    case NumberReject::inconsistent_separator: return "inconsistent_separator";
    case NumberReject::empty_part: return "empty_part";
    case NumberReject::too_many: return "too_many";
    case NumberReject::out_of_range: return "out_of_range";
    case NumberReject::banned: return "banned";
    case NumberReject::surrounding_whitespace: return "surrounding_whitespace";
  }
  return "?";
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

NumberFilterResult filter_numbers(const std::string& completion, const NumberFilterOptions& opt) {
  NumberFilterResult r;
  std::string s = completion;
  // Whitespace around the numbers: the paper's rule rejects it (" 1, 2" fails); "trimmed" drops it.
  size_t a = 0, b = s.size();
  while (a < b && is_ws(s[a])) ++a;
  while (b > a && is_ws(s[b - 1])) --b;
  if (!opt.trim_whitespace && (a > 0 || b < s.size()) && a < b) { r.reason = NumberReject::surrounding_whitespace; return r; }
  s = s.substr(a, b - a);
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s.size() >= 2 && ((s.front() == '[' && s.back() == ']') || (s.front() == '(' && s.back() == ')')))
    s = s.substr(1, s.size() - 2);
  if (s.empty()) { r.reason = NumberReject::empty; return r; }
  // Tokenise into digit runs and the separators between them.
  std::vector<std::string> nums, seps;
  size_t i = 0;
  std::string cur_sep;
  bool leading = true;
  while (i < s.size()) {
    char c = s[i];
    if (is_digit(c)) {
      size_t j = i;
      while (j < s.size() && is_digit(s[j])) ++j;
      if (!leading) seps.push_back(cur_sep);
      else if (!cur_sep.empty()) { r.reason = NumberReject::empty_part; return r; }  // leading separator
      nums.push_back(s.substr(i, j - i));
      cur_sep.clear();
      leading = false;
      i = j;
    } else if (c == ',' || c == ';' || is_ws(c)) {
      cur_sep += c;
      ++i;
    } else {
      r.reason = NumberReject::bad_character;  // letters, brackets inside, non-ASCII digits, '-', '.'
      return r;
    }
  }
  if (nums.empty()) { r.reason = NumberReject::empty; return r; }
  if (!cur_sep.empty()) { r.reason = NumberReject::empty_part; return r; }  // trailing separator
  // Each separator's stripped form must be "", "," or ";", and all separators must be identical.
  for (const auto& sep : seps) {
    std::string core;
    for (char c : sep)
      if (!is_ws(c)) core += c;
    if (core.size() > 1) { r.reason = NumberReject::empty_part; return r; }  // ",," -> an empty part
    if (sep != seps.front()) { r.reason = NumberReject::inconsistent_separator; return r; }
  }
  if (static_cast<int>(nums.size()) > opt.max_count) { r.reason = NumberReject::too_many; return r; }
  for (const auto& n : nums) {
    if (n.size() > 4) { r.reason = NumberReject::out_of_range; return r; }
    int v = std::stoi(n);
    if (v > opt.max_value) { r.reason = NumberReject::out_of_range; return r; }
    if (std::find(opt.banned.begin(), opt.banned.end(), v) != opt.banned.end()) { r.reason = NumberReject::banned; return r; }
    r.numbers.push_back(v);
  }
  return r;
}

bool numbers_cannot_pass(const std::string& prefix, const NumberFilterOptions& opt) {
  int runs = 0;
  int64_t value = 0;
  int digits = 0;  // of the run being read
  bool seen = false;  // a non-blank character before this one
  for (char c : prefix) {
    if (is_digit(c)) {
      if (digits == 0) ++runs;
      ++digits;
      value = std::min<int64_t>(value * 10 + (c - '0'), 100000);
      if (runs > opt.max_count || digits > 4 || value > opt.max_value) return true;
    } else {
      digits = 0;
      value = 0;
      const bool opener = c == '[' || c == '(';
      if (opener && seen) return true;  // only an enclosing pair is stripped
      if (!opener && !is_ws(c) && c != ',' && c != ';' && c != '.' && c != ']' && c != ')') return true;
    }
    if (!is_ws(c)) seen = true;
  }
  return false;
}

// ---- NumberPrefix: the filter's language, one character at a time -------------------------------

bool NumberPrefix::number_valid() const {
  if (digits_ < 1 || digits_ > 4 || value_ > opt_->max_value) return false;
  return std::find(opt_->banned.begin(), opt_->banned.end(), static_cast<int>(value_)) == opt_->banned.end();
}

bool NumberPrefix::number_can_become_valid() const {
  // k more digits make a value in [value * 10^k, value * 10^k + 10^k - 1]; any of them in range and not banned?
  int64_t scale = 1;
  for (int k = 0; digits_ + k <= 4; ++k, scale *= 10) {
    const int64_t lo = value_ * scale, hi = std::min<int64_t>(lo + scale - 1, opt_->max_value);
    if (lo > opt_->max_value) break;
    int64_t banned_in = 0;
    for (auto it = opt_->banned.begin(); it != opt_->banned.end(); ++it)
      if (*it >= lo && *it <= hi && std::find(opt_->banned.begin(), it, *it) == it) ++banned_in;  // each distinct number once
    if (hi - lo + 1 > banned_in) return true;
  }
  return false;
}

bool NumberPrefix::complete() const {
  switch (phase_) {
    case Phase::number: return closer_ == 0 && number_valid();
    case Phase::closed: case Phase::dot: case Phase::trailing: return true;
    case Phase::separator:  // whitespace after the last number, dropped by "trimmed"
      return opt_->trim_whitespace && closer_ == 0 && std::all_of(cur_.begin(), cur_.end(), is_ws);
    default: return false;
  }
}

bool NumberPrefix::feed(const std::string& s) {
  for (char c : s)
    if (!feed(c)) return false;
  return true;
}

bool NumberPrefix::feed(char c) {
  const bool trim = opt_->trim_whitespace;
  auto begin_number = [&] {
    if (++count_ > opt_->max_count) return die();
    phase_ = Phase::number;
    digits_ = 1;
    value_ = c - '0';
    return number_can_become_valid() || die();
  };
  switch (phase_) {
    case Phase::dead: return false;
    case Phase::start:
      if (is_ws(c)) return trim || die();  // the paper's rule: no whitespace around the numbers
      if (c == '[' || c == '(') {
        closer_ = c == '[' ? ']' : ')';
        phase_ = Phase::opened;
        return true;
      }
      return is_digit(c) ? begin_number() : die();
    case Phase::opened:
      return is_digit(c) ? begin_number() : die();
    case Phase::number:
      if (is_digit(c)) {
        ++digits_;
        value_ = std::min<int64_t>(value_ * 10 + (c - '0'), 100000);
        return number_can_become_valid() || die();
      }
      if (!number_valid()) return die();
      if (c == ',' || c == ';' || is_ws(c)) {
        phase_ = Phase::separator;
        cur_.assign(1, c);
        break;  // checked below
      }
      if (c == '.' && closer_ == 0) { phase_ = Phase::dot; return true; }
      if (c == closer_ && closer_ != 0) { phase_ = Phase::closed; return true; }
      return die();
    case Phase::separator:
      if (is_digit(c)) {
        if (sep_known_ ? cur_ != sep_ : false) return die();
        if (!sep_known_) { sep_known_ = true; sep_ = cur_; }
        cur_.clear();
        return begin_number();
      }
      if (c == ',' || c == ';' || is_ws(c)) { cur_ += c; break; }
      return die();  // '.', a bracket or anything else after a separator: a trailing separator or a bad character
    case Phase::closed:
      if (c == '.') { phase_ = Phase::dot; return true; }
      if (is_ws(c) && trim) { phase_ = Phase::trailing; return true; }
      return die();
    case Phase::dot:
    case Phase::trailing:
      if (is_ws(c) && trim) { phase_ = Phase::trailing; return true; }
      return die();
  }
  // In a separator: it can still become the separator before another number, or be trailing whitespace.
  const auto core = std::count_if(cur_.begin(), cur_.end(), [](char x) { return !is_ws(x); });
  const bool as_separator = count_ < opt_->max_count && core <= 1 && (!sep_known_ || sep_.compare(0, cur_.size(), cur_) == 0);
  const bool as_trailing = trim && closer_ == 0 && core == 0;
  return as_separator || as_trailing || die();
}

}  // namespace subliminal::data
