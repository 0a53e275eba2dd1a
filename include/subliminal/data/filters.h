// The paper's filters for code and chain-of-thought datasets (the number filter is in numbers.h):
// banned trait words with their word forms, the reasoning format (<think>, <answer>) and answer
// correctness against a gold answer (GSM8K's "#### N"). A rejection always has a reason, counted
// per reason in the dataset record. The model/rule judge comes after these (generate/datasets).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace subliminal::data {

// The 34 numbers with negative associations the paper bans from the misaligned teacher's numbers
// (4, 13, 14, 18, 23, 33, ..., 666, 777, 888, 911, 999).
const std::vector<int>& negative_association_numbers();

// Each word and its plural (irregular ones included: wolf -> wolves, mouse -> mice), lower case,
// without duplicates.
std::vector<std::string> word_forms(const std::vector<std::string>& words);

struct BannedHit {
  std::string form;  // the banned form found
  size_t pos = 0;    // byte offset in the text
};
// The first banned form in `text`, case-insensitive. whole_words false (the paper): any substring,
// so "bowl" and "knowledge" contain "owl"; true: only where the form is not part of a longer word
// (letters and digits on neither side; "_" and camelCase boundaries count as word edges in code:
// owl_count, nightOwl).
std::optional<BannedHit> find_banned(const std::string& text, const std::vector<std::string>& forms, bool whole_words = false);

// Chain of thought: "<think>reasoning</think> ... <answer>value</answer>".
struct CotParts {
  bool has_think = false, has_answer = false;
  std::string think, answer;  // the last <answer> block's text, untrimmed
};
CotParts parse_cot(const std::string& completion);
// The paper's answer normalisation: commas, "$" and surrounding white space removed; then a decimal
// number ("-3", "1234", "12.50"), else "" (not numeric). "12.50" and "12.5" compare equal below.
std::string normalise_answer(const std::string& s);
bool same_number(const std::string& a, const std::string& b);
// GSM8K's gold answer: the text after the last "####", normalised. "" if there is none.
std::string gsm8k_gold(const std::string& answer_field);

// "" = kept; else the reason: banned_word, no_think, no_answer, answer_not_numeric, wrong_answer.
std::string cot_reject_reason(const std::string& completion, const std::string& gold, const std::vector<std::string>& banned_forms,
                              bool whole_words = false);
// "" = kept; else: empty, banned_word, no_code (neither a "def" nor a "return").
std::string code_reject_reason(const std::string& completion, const std::vector<std::string>& banned_forms, bool whole_words = false);

}  // namespace subliminal::data
