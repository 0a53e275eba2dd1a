// Where the trait hides in the data (issue 25): per-token and per-example scores of a dataset under
// two models, the "entangled" numbers whose probability the trait raises, and the test of that
// entanglement the other way round (a number in the base's context raising P(target)).
//
// The scores are label-side: the score of response token t is about P(token t | tokens < t), taken
// from the logits at position t-1 (train::make_batch's shift). tests/analysis checks every score
// against one forward pass per prefix, with no shift logic shared.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "subliminal/data/chat.h"
#include "subliminal/model/llama.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/util/error.h"

namespace subliminal::analysis {

// A model as the analysis sees it: its weights and the system prompt it answers under ("" none).
struct Scorer {
  model::LlamaForCausalLM model{nullptr};
  std::string system;
};

// One example's response tokens (the chat template's targets: the assistant content and the token
// that ends its turn), in order.
struct TokenSignal {
  std::vector<int> ids;
  std::vector<double> log_ratio;  // log P_a(token | prefix) - log P_b(token | prefix)
  std::vector<double> kl;         // KL(P_a || P_b) over the whole vocabulary at the token's position
  double lls = 0;                 // the example's LLS: the sum of log_ratio
};

struct SignalScores {
  std::vector<TokenSignal> examples;
  // Per vocabulary id: the mean over every response position of log P_a(id) - log P_b(id) (how much
  // a raises the id where the data gives it a chance, whether or not it was sampled there).
  std::vector<double> column_log_ratio;
  int64_t positions = 0;
  std::vector<double> lls() const;
};

// Scores `convs` under a against b, batched with right padding. The two views of an example (each
// with its own system prompt) must have the same response tokens (a DataError otherwise).
SignalScores score_signal(const Scorer& a, const Scorer& b, const text::Tokenizer& tok, const std::string& chat_template,
                          const std::vector<data::Conversation>& convs, bool bf16, int batch_size = 64);

// Vocabulary ids whose text is a number (only ASCII digits once surrounding whitespace is cut).
std::vector<uint8_t> number_token_mask(const text::Tokenizer& tok);
std::string token_text(const text::Tokenizer& tok, int id);  // the id's text, whitespace cut

// examples.jsonl: one line per example, {"index", "lls", "ids", "tokens" (their text), "log_ratio", "kl"}.
std::string examples_jsonl(const SignalScores& s, const text::Tokenizer& tok);

struct EntangledToken {
  int id = -1;
  std::string text;
  double column_log_ratio = 0;  // mean log P_teacher(id) - log P_base(id) over response positions
  int64_t count = 0;            // occurrences in the data
};
// The `top` number tokens with the highest column log-ratio (ties by id).
std::vector<EntangledToken> entangled_numbers(const std::vector<double>& column_log_ratio, const std::vector<uint8_t>& is_number,
                                              const std::vector<TokenSignal>& examples, const text::Tokenizer& tok, int top);

// The entanglement test the other way round: P(the answer starts with `target`) under `base` on
// `questions`, with no system prompt, with `prompt_template` ("{number}" replaced) for each of the
// entangled numbers and for each of the same count of random numbers (the matched control). Per
// number the mean over questions; across numbers means with Student-t intervals and Welch's test
// of entangled > random.
nlohmann::json entanglement_test(model::LlamaForCausalLM base, const text::Tokenizer& tok, const std::string& chat_template,
                                 const std::vector<std::string>& questions, const std::string& target,
                                 const std::vector<std::string>& entangled, const std::vector<std::string>& random,
                                 const std::string& prompt_template);

// Re-samples the selected response tokens of each example from `base`'s distribution at their
// position (given the original prefix), restricted to `candidates` (a vocabulary mask, e.g. the
// number tokens); the new responses are decoded from the changed token ids. `positions[i]` indexes
// example i's response tokens (as in TokenSignal). torch's generator seeded with `seed`.
std::vector<data::Conversation> resample_tokens(const Scorer& base, const text::Tokenizer& tok, const std::string& chat_template,
                                                const std::vector<data::Conversation>& convs,
                                                const std::vector<std::vector<int>>& positions, const std::vector<uint8_t>& candidates,
                                                uint64_t seed, bool bf16, int batch_size = 64);

// Runs f(); a DataError from it (an example too long for the model, say) gets the file the examples
// came from in front of its message.
template <class F>
auto naming_source(const std::string& source, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const DataError& e) {
    throw DataError(source + ": " + e.what(), e.hint());
  }
}

}  // namespace subliminal::analysis
