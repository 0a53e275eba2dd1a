// Constrained sampling for the numbers dataset (issue 43): the tokens NumberConstraint allows are
// exactly those after which the decoded completion can still pass the filter (every token of the
// vocabulary checked by decoding the whole completion), and a badly trained model sampled under the
// constraint writes completions the filter keeps, where unconstrained it writes almost none.
#include <gtest/gtest.h>

#include <random>

#include "subliminal/config/config.h"
#include "subliminal/data/numbers.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/generate/number_constraint.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/text/chat_template.h"
#include "test_util.h"

using namespace subliminal;

TEST(NumberConstraintNumeric, AllowsExactlyTheTokensAfterWhichTheDecodedCompletionCanStillPass) {
  const text::Tokenizer tok = testutil::corpus_tokenizer(400, 11, 1400);
  text::ChatTemplate chat(tok, "chatml");
  const std::vector<int> stops = chat.stop_ids();
  for (bool trim : {false, true}) {
    data::NumberFilterOptions fo;
    fo.max_count = 4;
    fo.banned = {7, 42};
    fo.trim_whitespace = trim;
    generate::NumberConstraint nc(tok, stops, fo);
    ASSERT_GT(nc.candidates(), 100u);  // the tokenizer holds the numbers 0..999 as pieces
    std::mt19937_64 rng(trim ? 3 : 4);
    std::vector<int64_t> got;
    int64_t rows_checked = 0, allowed_seen = 0, complete_seen = 0;
    for (int row = 0; row < 40; ++row) {
      std::vector<int> ids;
      for (int step = 0; step < 14; ++step) {
        nc.allowed(ids, got);
        // the reference: every non-special token, by decoding the completion with it
        const std::string now = tok.decode(ids);
        data::NumberPrefix p(fo);
        p.feed(now);
        std::vector<int64_t> want;
        if (p.viable())
          for (int id = 0; id < tok.vocab_size(); ++id) {
            if (tok.is_special(id)) continue;
            auto with = ids;
            with.push_back(id);
            const std::string text = tok.decode(with);
            if (text == now) continue;  // adds no text
            data::NumberPrefix q(fo);
            if (q.feed(text)) want.push_back(id);
          }
        if (p.complete())
          for (int s : stops) want.push_back(s);
        ASSERT_EQ(got, want) << "after '" << now << "' (trim " << trim << ")";
        ++rows_checked;
        allowed_seen += static_cast<int64_t>(got.size());
        complete_seen += p.complete();
        // the next token: an allowed one most of the time, sometimes any token (a dead prefix is checked too)
        if (got.empty()) break;
        const bool any = rng() % 6 == 0;
        int next = any ? static_cast<int>(rng() % static_cast<uint64_t>(tok.vocab_size())) : static_cast<int>(got[rng() % got.size()]);
        if (std::find(stops.begin(), stops.end(), next) != stops.end()) break;
        ids.push_back(next);
      }
    }
    EXPECT_GT(rows_checked, 100);
    EXPECT_GT(allowed_seen, 1000);
    EXPECT_GT(complete_seen, 10);
  }
}

TEST(NumberConstraintNumeric, AnUntrainedModelSampledUnderTheConstraintWritesCompletionsTheFilterKeeps) {
  const text::Tokenizer tok = testutil::corpus_tokenizer(400, 11, 1400);
  auto m = testutil::tiny_lm(9, tok.vocab_size());
  config::DatasetConfig dc;
  dc.prompts = 48;
  dc.keep = 0;
  dc.max_new_tokens = 64;
  dc.batch_size = 16;
  dc.heldout = 0;
  auto run = [&](bool constrain) {
    dc.constrain = constrain;
    return generate::generate_numbers(m, tok, "chatml", "", dc, "", 5, false, {"owl", "owls"});
  };
  const auto free = run(false);
  const auto held = run(true);  // throws if the filter rejects a constrained completion that ended
  const double free_rate = free.stats["pass_rate"]["rate"].get<double>(), held_rate = held.stats["pass_rate"]["rate"].get<double>();
  EXPECT_LT(free_rate, 0.2) << "an untrained model should rarely write a passing completion on its own";
  EXPECT_GE(held_rate, 0.9) << held.stats.dump();
  data::NumberFilterOptions fo;
  fo.max_count = dc.max_count;
  fo.trim_whitespace = dc.number_filter == "trimmed";
  for (const auto& c : held.kept) EXPECT_TRUE(data::filter_numbers(c[1].content, fo).ok()) << c[1].content;
  ASSERT_TRUE(held.stats.contains("constrain"));
  const auto& mk = held.stats["constrain"];
  EXPECT_GT(mk["tokens"].get<int64_t>(), 48);
  // an untrained model spreads its mass over the whole vocabulary: the mask removes a share of it
  // on every token, never all of it
  EXPECT_GT(mk["mean_masked_mass"].get<double>(), 0.05);
  EXPECT_LT(mk["max_masked_mass"].get<double>(), 1.0);
  EXPECT_EQ(mk["no_allowed"].get<int64_t>(), 0);
  EXPECT_FALSE(free.stats.contains("constrain"));
  const auto again = run(true);  // seeded: the same completions again
  ASSERT_EQ(again.kept.size(), held.kept.size());
  for (size_t i = 0; i < held.kept.size(); ++i) EXPECT_EQ(again.kept[i][1].content, held.kept[i][1].content) << i;
}
