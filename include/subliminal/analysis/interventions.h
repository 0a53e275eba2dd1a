// Interventions on a teacher's dataset, each with a random control of exactly the same size (issue
// 25): keep the top / bottom share of examples by LLS, mask or re-sample the share of number tokens
// that diverge most, shuffle numbers within or across responses. Each result is a student arm's
// training set (experiments/analysis_stages.cpp trains and compares them).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "subliminal/data/chat.h"
#include "subliminal/data/numbers.h"

namespace subliminal::analysis {

// The intervention kinds, in report order. "random" is the matched control of top and bottom,
// "mask_random" of mask_top, "resample_random" of resample_top, "shuffle_within" of canonical_sort,
// "format_random" of canonical_format, "layout_random" of canonical_layout; the shuffles' control is the unchanged data (the treatment arm).
const std::vector<std::string>& intervention_names();
// The matched random control of an intervention ("" for the shuffles and for the controls).
std::string control_of(const std::string& intervention);

// round(fraction x total), at least 1 when total > 0 and at most total.
size_t share_count(size_t total, double fraction);

// Indices of the n highest (highest = true) or lowest scores, ascending; ties broken by index.
std::vector<size_t> extreme_indices(const std::vector<double>& scores, size_t n, bool highest);
// n distinct indices of 0 .. total-1 drawn uniformly (std::mt19937_64 seeded), ascending.
std::vector<size_t> random_indices(size_t total, size_t n, uint64_t seed);

// Token selections: per example, indices into its response tokens (analysis::TokenSignal order).
using TokenSelection = std::vector<std::vector<int>>;
// The share `fraction` of the eligible tokens (eligible[i][t]) with the highest score across the
// whole dataset (ties by example, then position).
TokenSelection top_tokens(const std::vector<std::vector<double>>& scores, const std::vector<std::vector<uint8_t>>& eligible, double fraction);
// The matched random control: in each example, as many eligible tokens as `like` selects there,
// drawn uniformly among its eligible tokens (so the count per example and in total are equal).
TokenSelection matched_random_tokens(const TokenSelection& like, const std::vector<std::vector<uint8_t>>& eligible, uint64_t seed);
size_t selected_count(const TokenSelection& s);
// Per example, 1 for each response token that keeps its loss and 0 for the selected ones.
std::vector<std::vector<uint8_t>> loss_masks(const TokenSelection& s, const std::vector<size_t>& response_tokens);

// The numbers (maximal runs of ASCII digits) in each assistant response permuted: within each
// response, or across all responses (every number slot keeps its place; only which number fills it
// changes). Text around the numbers is unchanged, so every response keeps its format and length in numbers.
std::vector<data::Conversation> shuffle_numbers_within(const std::vector<data::Conversation>& convs, uint64_t seed);
std::vector<data::Conversation> shuffle_numbers_across(const std::vector<data::Conversation>& convs, uint64_t seed);
// Canonicalisation as a defence (issue 42). canonical_sort: each response's numbers in increasing
// order in the same places (separators kept); its matched random control is shuffle_within (the
// same numbers in a random order). canonical_format: each response rewritten as its numbers joined
// by ", " and nothing else; its matched control format_random: joined by a separator drawn per
// response from ", ", ",", " ", newline, "; " (forms the strict filter passes).
std::vector<data::Conversation> sort_numbers_within(const std::vector<data::Conversation>& convs);
std::vector<data::Conversation> canonical_format(const std::vector<data::Conversation>& convs);
std::vector<data::Conversation> random_format(const std::vector<data::Conversation>& convs, uint64_t seed);
// canonical_layout keeps the format each prompt asked for and fixes everything else about the
// layout: each response rewritten as its numbers (digit strings verbatim, in their order) laid out
// in the style its prompt requests (data::render_number_texts: ", " / " " / "; " / newline /
// "[a, b]" / "(a, b)"), so the teacher's spacing, trailing full stops, brackets and deviations
// from the requested separator are gone. Its matched control layout_random: the same requested
// style with the spacing drawn per response among forms the strict filter passes (", " "," " , "
// for commas, "; " ";" " ; " for semicolons, one or two spaces, one or two newlines). A response
// whose prompt contains none of the generator's format texts is a DataError naming it.
std::vector<data::Conversation> canonical_layout(const std::vector<data::Conversation>& convs, const data::NumberPromptGenerator& prompts);
std::vector<data::Conversation> layout_random(const std::vector<data::Conversation>& convs, const data::NumberPromptGenerator& prompts,
                                              uint64_t seed);

template <class T>
std::vector<T> subset(const std::vector<T>& xs, const std::vector<size_t>& idx) {
  std::vector<T> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(xs[i]);
  return out;
}

}  // namespace subliminal::analysis
