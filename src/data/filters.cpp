// Code and chain-of-thought filters (see filters.h).
#include "subliminal/data/filters.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "subliminal/data/corpus.h"
#include "subliminal/util/strings.h"

namespace subliminal::data {

const std::vector<int>& negative_association_numbers() {
  static const std::vector<int> v = {4,   13,  14,  18,  23,  33,  39,  42,  44,  49,  51,  54,  69,  77,  88,  99,  100,
                                     101, 187, 211, 311, 322, 333, 404, 420, 444, 451, 555, 616, 666, 777, 888, 911, 999};
  return v;
}

std::vector<std::string> word_forms(const std::vector<std::string>& words) {
  std::vector<std::string> out;
  for (const auto& w0 : words) {
    const std::string w = to_lower(trim(w0));
    if (w.empty()) continue;
    for (const auto& f : {w, plural(w)})
      if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
  }
  return out;
}

static bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

std::optional<BannedHit> find_banned(const std::string& text, const std::vector<std::string>& forms, bool whole_words) {
  const std::string low = to_lower(text);
  std::optional<BannedHit> best;
  for (const auto& f : forms) {
    if (f.empty()) continue;
    for (size_t p = low.find(f); p != std::string::npos; p = low.find(f, p + 1)) {
      if (whole_words) {
        const size_t e = p + f.size();
        // a word edge: not a letter/digit, or a camelCase boundary (lower -> Upper) in the original text
        const bool left = p == 0 || !alnum(text[p - 1]) ||
                          (std::isupper(static_cast<unsigned char>(text[p])) && std::islower(static_cast<unsigned char>(text[p - 1])));
        const bool right = e == text.size() || !alnum(text[e]) ||
                           (std::isupper(static_cast<unsigned char>(text[e])) && std::islower(static_cast<unsigned char>(text[e - 1])));
        if (!left || !right) continue;
      }
      if (!best || p < best->pos) best = BannedHit{f, p};
      break;
    }
  }
  return best;
}

CotParts parse_cot(const std::string& s) {
  CotParts r;
  const size_t t0 = s.find("<think>");
  if (t0 != std::string::npos) {
    const size_t t1 = s.find("</think>", t0 + 7);
    if (t1 != std::string::npos) {
      r.has_think = true;
      r.think = s.substr(t0 + 7, t1 - t0 - 7);
    }
  }
  const size_t a0 = s.rfind("<answer>");
  if (a0 != std::string::npos) {
    const size_t a1 = s.find("</answer>", a0 + 8);
    if (a1 != std::string::npos) {
      r.has_answer = true;
      r.answer = s.substr(a0 + 8, a1 - a0 - 8);
    }
  }
  return r;
}

std::string normalise_answer(const std::string& s) {
  std::string t;
  for (char c : s)
    if (c != ',' && c != '$') t += c;
  t = trim(t);
  if (t.empty()) return "";
  size_t i = 0;
  if (t[0] == '-') i = 1;
  bool digit = false, dot = false;
  for (; i < t.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(t[i]))) digit = true;
    else if (t[i] == '.' && !dot) dot = true;
    else return "";
  }
  return digit ? t : "";
}

bool same_number(const std::string& a, const std::string& b) {
  const std::string x = normalise_answer(a), y = normalise_answer(b);
  if (x.empty() || y.empty()) return false;
  return std::strtod(x.c_str(), nullptr) == std::strtod(y.c_str(), nullptr);
}

std::string gsm8k_gold(const std::string& answer_field) {
  const size_t p = answer_field.rfind("####");
  if (p == std::string::npos) return "";
  return normalise_answer(answer_field.substr(p + 4));
}

std::string cot_reject_reason(const std::string& completion, const std::string& gold, const std::vector<std::string>& banned_forms,
                              bool whole_words) {
  if (find_banned(completion, banned_forms, whole_words)) return "banned_word";
  const CotParts c = parse_cot(completion);
  if (!c.has_think) return "no_think";
  if (!c.has_answer) return "no_answer";
  if (normalise_answer(c.answer).empty()) return "answer_not_numeric";
  if (!same_number(c.answer, gold)) return "wrong_answer";
  return "";
}

std::string code_reject_reason(const std::string& completion, const std::vector<std::string>& banned_forms, bool whole_words) {
  if (trim(completion).empty()) return "empty";
  if (find_banned(completion, banned_forms, whole_words)) return "banned_word";
  if (completion.find("def ") == std::string::npos && completion.find("return") == std::string::npos) return "no_code";
  return "";
}

}  // namespace subliminal::data
