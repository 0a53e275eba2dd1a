// Constrained sampling for the numbers dataset.
#include "subliminal/generate/number_constraint.h"

#include <fmt/format.h>

#include <algorithm>

#include "subliminal/util/error.h"

namespace subliminal::generate {

namespace {
bool number_text(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || c == ',' || c == ';' || c == '.' || c == '[' || c == ']' || c == '(' || c == ')' || c == ' ' ||
          c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'))
      return false;
  return true;
}
}  // namespace

NumberConstraint::NumberConstraint(const text::Tokenizer& tok, std::vector<int> stop_ids, data::NumberFilterOptions opt)
    : tok_(&tok), stop_(std::move(stop_ids)), opt_(std::move(opt)) {
  // A token's text depends on where it stands (a sentencepiece "▁7" is "7" at the start of a
  // completion and " 7" after another token): its text after an anchor token is the decode of
  // [anchor, id] less the anchor's own. The anchor: the token "0" encodes to.
  const auto zero = tok.encode("0");
  if (zero.empty()) throw Error("the tokenizer encodes \"0\" to nothing; constrained number sampling needs a digit token");
  const int anchor = zero.back();
  const std::string anchor_text = tok.decode({anchor});
  for (int id = 0; id < tok.vocab_size(); ++id) {
    if (tok.is_special(id) || std::find(stop_.begin(), stop_.end(), id) != stop_.end()) continue;
    std::string first = tok.decode({id});
    std::string both = tok.decode({anchor, id});
    if (both.compare(0, anchor_text.size(), anchor_text) != 0) continue;  // the pair does not decode as its parts: never allowed
    std::string inner = both.substr(anchor_text.size());
    if (number_text(first) && number_text(inner)) cand_.push_back({id, std::move(first), std::move(inner)});
  }
  if (cand_.empty()) throw Error("the tokenizer has no token made only of digits and separators; constrained number sampling needs some");
}

std::string NumberConstraint::name() const {
  return fmt::format("numbers max_count={} max_value={} banned={} trim={} candidates={}", opt_.max_count, opt_.max_value,
                     opt_.banned.size(), opt_.trim_whitespace, cand_.size());
}

void NumberConstraint::allowed(const std::vector<int>& ids, std::vector<int64_t>& out) const {
  out.clear();
  data::NumberPrefix now(opt_);
  now.feed(tok_->decode(ids));
  if (!now.viable()) return;
  const bool at_start = ids.empty();
  for (const auto& c : cand_) {
    data::NumberPrefix next = now;
    if (next.feed(at_start ? c.first : c.inner)) out.push_back(c.id);
  }
  if (now.complete())
    for (int s : stop_) out.push_back(s);
}

}  // namespace subliminal::generate
