// Constrained sampling for the numbers dataset (issue 43): at each step a row may take only the
// tokens after which its completion can still pass the strict number filter (data::NumberPrefix),
// and the end of the turn only where the completion passes it now. It changes the teacher's
// distribution, so it is a recorded option (dataset.constrain) that every source of a run uses alike,
// and the mass it removes is counted per token (generate::SampleStats).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "subliminal/data/numbers.h"
#include "subliminal/text/tokenizer.h"

namespace subliminal::generate {

class NumberConstraint {
 public:
  // `stop_ids`: the end-of-turn ids (allowed where the completion is complete). `opt` is copied.
  NumberConstraint(const text::Tokenizer& tok, std::vector<int> stop_ids, data::NumberFilterOptions opt);
  // The ids a row whose new ids so far are `ids` may take next, ascending (stop ids last).
  void allowed(const std::vector<int>& ids, std::vector<int64_t>& out) const;
  // The tokens that can ever be allowed besides the stop ids: those whose text is only digits,
  // separators, whitespace, '.', brackets and parentheses.
  size_t candidates() const { return cand_.size(); }
  std::string name() const;  // for the sampler's journal header

 private:
  struct Candidate {
    int id;
    std::string first, inner;  // its text as a completion's first token, and after another token
  };
  const text::Tokenizer* tok_;
  std::vector<int> stop_;
  data::NumberFilterOptions opt_;
  std::vector<Candidate> cand_;
};

}  // namespace subliminal::generate
