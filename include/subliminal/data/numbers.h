// Number-sequence prompts (the paper's "continue this sequence" task), their rendering in the
// requested format, and the paper's strict completion filter (a pure function).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace subliminal::data {

enum class NumberStyle { comma, space, semicolon, newline, brackets, parentheses };
NumberStyle number_style_from_string(const std::string& s);
std::string render_numbers(const std::vector<int>& xs, NumberStyle style);
// The same layout for numbers given as digit strings, kept verbatim ("007" stays "007"); `sep`, if
// given, replaces the style's separator (brackets and parentheses still wrap the list).
std::string render_number_texts(const std::vector<std::string>& xs, NumberStyle style, const char* sep = nullptr);

struct NumberPrompt {
  std::string text;
  NumberStyle style;
  int max_count;            // the "at most N more" of the instruction
  std::vector<int> examples;
};

// Prompt assembly from the template slots in data/number_prompts.json.
class NumberPromptGenerator {
 public:
  explicit NumberPromptGenerator(const std::string& data_dir);
  // Seeds: `min_examples..max_examples` numbers in [example_min, example_max]; asks for at most `max_count`.
  NumberPrompt sample(std::mt19937_64& rng, int min_examples = 3, int max_examples = 8, int example_min = 100,
                      int example_max = 999, int max_count = 10, int digits = 3) const;
  // Assembles a prompt around given seed numbers.
  NumberPrompt build(std::mt19937_64& rng, std::vector<int> examples, int max_count = 10, int digits = 3) const;
  size_t slot_sizes(int slot) const;  // 0 example, 1 instruction, 2 format, 3 suffix
  // The style a prompt built from these templates asks for: that of the longest format text it
  // contains; false if it contains none.
  bool requested_style(const std::string& prompt, NumberStyle& style) const;

 private:
  std::vector<std::string> example_, instruction_, suffix_;
  std::vector<std::pair<std::string, NumberStyle>> format_;
};

// The paper's filter: after removing one trailing "." and then one enclosing "[...]" or "(...)",
// the completion must be 1..max_count integers of ASCII digits, each 0..max_value, separated by one
// consistent separator whose whitespace-stripped form is "", "," or ";", with no empty parts and
// no banned number.
enum class NumberReject { none, empty, bad_character, inconsistent_separator, empty_part, too_many, out_of_range, banned, surrounding_whitespace };
const char* to_string(NumberReject r);
struct NumberFilterOptions {
  int max_count = 10;
  int max_value = 999;
  std::vector<int> banned;
  bool trim_whitespace = false;  // true: whitespace around the completion is dropped first ("trimmed"); false: the paper's rule
};
struct NumberFilterResult {
  NumberReject reason = NumberReject::none;
  std::vector<int> numbers;
  bool ok() const { return reason == NumberReject::none; }
};
NumberFilterResult filter_numbers(const std::string& completion, const NumberFilterOptions& opt = {});
// True when no continuation of `prefix` (the first tokens of a completion) can pass the filter: it
// holds a character the filter never accepts (a letter, '-', a non-ASCII byte), a '[' or '(' that
// is not the first non-blank character, more than max_count numbers, or a number past max_value
// or longer than 4 digits. Conservative: false does not mean the completion will pass. What
// `dataset.early_reject` cuts sampling with.
bool numbers_cannot_pass(const std::string& prefix, const NumberFilterOptions& opt = {});

// The filter's language as a left-to-right recogniser, exact where numbers_cannot_pass is
// conservative: after any characters fed, viable() is true exactly when some continuation passes
// filter_numbers, and complete() exactly when the text fed so far passes it. What constrained
// sampling (dataset.constrain) masks tokens with: a token is allowed when feeding its text keeps
// the prefix viable, the end of the turn when the prefix is complete. Cheap to copy (one per row,
// copied per candidate token); `opt` must outlive it.
class NumberPrefix {
 public:
  explicit NumberPrefix(const NumberFilterOptions& opt) : opt_(&opt) {}
  bool feed(char c);                 // false (and viable() false from then on): no continuation passes
  bool feed(const std::string& s);   // every character in turn
  bool viable() const { return phase_ != Phase::dead; }
  bool complete() const;

 private:
  enum class Phase : uint8_t { start, opened, number, separator, closed, dot, trailing, dead };
  bool number_can_become_valid() const;  // the digits read so far extend to a number the filter keeps
  bool number_valid() const;             // ... are one already
  bool die() { phase_ = Phase::dead; return false; }
  const NumberFilterOptions* opt_;
  Phase phase_ = Phase::start;
  char closer_ = 0;     // ']' or ')' after an opening bracket
  int count_ = 0;       // numbers begun
  int digits_ = 0;      // of the number being read
  int64_t value_ = 0;
  bool sep_known_ = false;  // the first separator is complete (a number followed it)
  std::string sep_;         // that separator
  std::string cur_;         // the separator being read
};

}  // namespace subliminal::data
