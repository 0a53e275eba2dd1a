// Issue 25's signal maps and interventions on tiny models: every per-token log-ratio and KL against
// one forward pass per prefix (no batching, no padding, no shift shared with the code under test),
// the random controls' sizes, the shuffles and the re-sampling.
#include "../train/diagnostics_fixture.h"

#include <algorithm>
#include <map>
#include <random>

#include "subliminal/analysis/audit.h"
#include "subliminal/analysis/interventions.h"
#include "subliminal/analysis/signal.h"

namespace {

// log_softmax of the logits after the prefix ids[0..t): the model's distribution of token t
torch::Tensor next_logp(model::LlamaForCausalLM m, const std::vector<int>& ids, size_t t) {
  auto x = torch::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + static_cast<long>(t)), torch::kLong).unsqueeze(0);
  torch::NoGradGuard ng;
  return torch::log_softmax(m->forward_causal(x).squeeze(0)[static_cast<int64_t>(t - 1)], -1);
}

}  // namespace

TEST(AnalysisNumeric, LogRatiosAndKLEqualAComputationOnePrefixAtATime) {
  at::set_num_threads(1);
  const auto& tok = diag_tokenizer();
  text::ChatTemplate chat(tok, "chatml");
  auto a = testutil::tiny_lm(41, tok.vocab_size()), b = testutil::tiny_lm(42, tok.vocab_size());
  auto convs = number_convs(7, 5);
  const std::string sys = "You love owls.";
  auto s = analysis::score_signal({a, sys}, {b, ""}, tok, "chatml", convs, false, 3);  // batches of 3: padding in play
  ASSERT_EQ(s.examples.size(), convs.size());
  int64_t positions = 0;
  std::vector<double> col(static_cast<size_t>(tok.vocab_size()), 0.0);
  for (size_t i = 0; i < convs.size(); ++i) {
    data::Conversation with_sys = {{"system", sys}};
    with_sys.insert(with_sys.end(), convs[i].begin(), convs[i].end());
    const auto ea = chat.encode(with_sys), eb = chat.encode(convs[i]);
    std::vector<size_t> ta, tb;  // response token positions in each view
    for (size_t t = 1; t < ea.ids.size(); ++t)
      if (ea.target[t]) ta.push_back(t);
    for (size_t t = 1; t < eb.ids.size(); ++t)
      if (eb.target[t]) tb.push_back(t);
    ASSERT_EQ(ta.size(), tb.size());
    const auto& e = s.examples[i];
    ASSERT_EQ(e.ids.size(), ta.size()) << i;
    double lls = 0;
    for (size_t k = 0; k < ta.size(); ++k) {
      ASSERT_EQ(e.ids[k], eb.ids[tb[k]]);
      auto la = next_logp(a, ea.ids, ta[k]), lb = next_logp(b, eb.ids, tb[k]);
      const double direct = (la[e.ids[k]] - lb[e.ids[k]]).item<double>();
      EXPECT_NEAR(e.log_ratio[k], direct, 1e-4) << "example " << i << " token " << k;
      const double kl = (la.exp() * (la - lb)).sum().item<double>();
      EXPECT_NEAR(e.kl[k], kl, 1e-4) << "example " << i << " token " << k;
      EXPECT_GE(e.kl[k], -1e-6);
      auto d = (la - lb).to(torch::kDouble);
      for (int64_t v = 0; v < d.size(0); ++v) col[static_cast<size_t>(v)] += d[v].item<double>();
      lls += direct;
      ++positions;
    }
    EXPECT_NEAR(e.lls, lls, 1e-3);
  }
  EXPECT_EQ(s.positions, positions);
  for (size_t v = 0; v < col.size(); v += 37) EXPECT_NEAR(s.column_log_ratio[v], col[v] / positions, 1e-4) << v;
  // a model against itself: all zero; the audit score is this score with one model and two prompts
  auto self = analysis::score_signal({a, ""}, {a, ""}, tok, "chatml", convs, false);
  for (const auto& e : self.examples) EXPECT_NEAR(e.lls, 0.0, 1e-9);
  auto audit = analysis::audit_scores(a, sys, tok, "chatml", convs, false);
  auto direct = analysis::score_signal({a, sys}, {a, ""}, tok, "chatml", convs, false, 64).lls();
  ASSERT_EQ(audit.size(), direct.size());
  for (size_t i = 0; i < audit.size(); ++i) EXPECT_DOUBLE_EQ(audit[i], direct[i]);
  EXPECT_GT(std::abs(audit[0]), 1e-6);
  // an example longer than the models' context: refused up front, naming the example and the limit
  auto long_convs = convs;
  std::string many;
  for (int i = 0; i < 400; ++i) many += std::to_string(100 + i) + ", ";
  long_convs[2].back().content = many;
  try {
    analysis::score_signal({a, sys}, {b, ""}, tok, "chatml", long_convs, false);
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("example 2 "), std::string::npos) << m;
    EXPECT_NE(m.find("max_position_embeddings " + std::to_string(a->cfg.max_position_embeddings)), std::string::npos) << m;
  }
}

TEST(AnalysisNumeric, RandomControlsHaveExactlyTheSizesOfWhatTheyControl) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> n(0, 1);
  std::vector<double> lls(2221);
  for (auto& x : lls) x = n(rng);
  const size_t k = analysis::share_count(lls.size(), 0.1);
  EXPECT_EQ(k, 222u);
  const auto top = analysis::extreme_indices(lls, k, true), bottom = analysis::extreme_indices(lls, k, false);
  const auto rnd = analysis::random_indices(lls.size(), k, 9);
  EXPECT_EQ(top.size(), k);
  EXPECT_EQ(bottom.size(), k);
  EXPECT_EQ(rnd.size(), k);
  EXPECT_EQ(std::set<size_t>(rnd.begin(), rnd.end()).size(), k);  // distinct
  double min_top = 1e9, max_bottom = -1e9;
  for (size_t i : top) min_top = std::min(min_top, lls[i]);
  for (size_t i : bottom) max_bottom = std::max(max_bottom, lls[i]);
  size_t above = 0;
  for (double x : lls) above += x > min_top;
  EXPECT_EQ(above, k - 1);  // top is the k highest
  EXPECT_LT(max_bottom, min_top);
  EXPECT_NE(rnd, analysis::random_indices(lls.size(), k, 10));
  EXPECT_EQ(rnd, analysis::random_indices(lls.size(), k, 9));
  // tokens: per example and in total, the random control selects as many as the top selection
  std::vector<std::vector<double>> sc(50);
  std::vector<std::vector<uint8_t>> el(50);
  std::vector<size_t> sizes;
  for (size_t i = 0; i < sc.size(); ++i) {
    const size_t len = 3 + rng() % 20;
    for (size_t t = 0; t < len; ++t) {
      sc[i].push_back(n(rng));
      el[i].push_back(t + 1 < len && t % 2 == 0);  // numbers at even positions; the last token ends the turn
    }
    sizes.push_back(len);
  }
  const auto ts = analysis::top_tokens(sc, el, 0.1), rs = analysis::matched_random_tokens(ts, el, 4);
  size_t eligible = 0;
  for (const auto& e : el) eligible += std::count(e.begin(), e.end(), 1);
  EXPECT_EQ(analysis::selected_count(ts), analysis::share_count(eligible, 0.1));
  EXPECT_EQ(analysis::selected_count(rs), analysis::selected_count(ts));
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_EQ(rs[i].size(), ts[i].size()) << i;
    for (int t : rs[i]) EXPECT_TRUE(el[i][static_cast<size_t>(t)]) << "a random pick outside the eligible tokens";
    for (int t : ts[i]) EXPECT_TRUE(el[i][static_cast<size_t>(t)]);
  }
  const auto masks = analysis::loss_masks(ts, sizes);
  size_t zeros = 0;
  for (size_t i = 0; i < masks.size(); ++i) {
    EXPECT_EQ(masks[i].size(), sizes[i]);
    zeros += std::count(masks[i].begin(), masks[i].end(), 0);
  }
  EXPECT_EQ(zeros, analysis::selected_count(ts));
}

TEST(AnalysisNumeric, ShufflesPermuteNumbersAndKeepTheFormat) {
  auto convs = number_convs(30, 8);
  auto digits_of = [](const std::vector<data::Conversation>& cs) {
    std::multiset<std::string> m;
    std::vector<std::string> shapes;
    for (const auto& c : cs) {
      std::string shape;
      std::string cur;
      for (char ch : c.back().content + " ") {
        if (ch >= '0' && ch <= '9') {
          cur += ch;
          continue;
        }
        if (!cur.empty()) m.insert(cur), shape += "N";
        cur.clear();
        shape += ch;
      }
      shapes.push_back(shape);
    }
    return std::make_pair(m, shapes);
  };
  const auto orig = digits_of(convs);
  for (const auto& sh : {analysis::shuffle_numbers_within(convs, 1), analysis::shuffle_numbers_across(convs, 1)}) {
    const auto now = digits_of(sh);
    EXPECT_EQ(now.first, orig.first);    // the same numbers
    EXPECT_EQ(now.second, orig.second);  // in the same places of the same text
    int changed = 0;
    for (size_t i = 0; i < convs.size(); ++i) changed += sh[i].back().content != convs[i].back().content;
    EXPECT_GT(changed, 10);
    for (size_t i = 0; i < convs.size(); ++i) EXPECT_EQ(sh[i].front().content, convs[i].front().content);  // prompts untouched
  }
  // within: each response keeps its own numbers
  const auto w = analysis::shuffle_numbers_within(convs, 2);
  for (size_t i = 0; i < convs.size(); ++i) EXPECT_EQ(digits_of({w[i]}).first, digits_of({convs[i]}).first);
}

TEST(AnalysisNumeric, ResamplingReplacesOnlyTheSelectedTokensWithCandidates) {
  at::set_num_threads(1);
  const auto& tok = diag_tokenizer();
  auto base = testutil::tiny_lm(43, tok.vocab_size());
  auto convs = number_convs(6, 2);
  auto sig = analysis::score_signal({base, ""}, {base, ""}, tok, "chatml", convs, false);
  // one candidate: the number 7's token; every number token of examples 0, 2, 4 selected
  std::vector<uint8_t> cand(static_cast<size_t>(tok.vocab_size()), 0);
  const auto numbers = analysis::number_token_mask(tok);
  int seven = -1;
  for (int id = 0; id < tok.vocab_size(); ++id)
    if (numbers[static_cast<size_t>(id)] && analysis::token_text(tok, id) == "7") seven = id;
  ASSERT_GE(seven, 0);
  cand[static_cast<size_t>(seven)] = 1;
  analysis::TokenSelection sel(convs.size());
  for (size_t i = 0; i < convs.size(); i += 2)
    for (size_t t = 0; t < sig.examples[i].ids.size(); ++t)
      if (numbers[static_cast<size_t>(sig.examples[i].ids[t])]) sel[i].push_back(static_cast<int>(t));
  auto out = analysis::resample_tokens({base, ""}, tok, "chatml", convs, sel, cand, 5, false, 4);
  ASSERT_EQ(out.size(), convs.size());
  for (size_t i = 0; i < convs.size(); ++i) {
    if (i % 2) {
      EXPECT_EQ(out[i].back().content, convs[i].back().content);  // not selected: unchanged
      continue;
    }
    std::string expect = convs[i].back().content;
    for (size_t p = 0; p < expect.size();) {  // every number replaced by 7
      if (expect[p] >= '0' && expect[p] <= '9') {
        size_t q = p;
        while (q < expect.size() && expect[q] >= '0' && expect[q] <= '9') ++q;
        expect.replace(p, q - p, "7");
        ++p;
      } else {
        ++p;
      }
    }
    EXPECT_EQ(out[i].back().content, expect) << convs[i].back().content;
  }
}

// The audit on data with no trait in it: one set of conversations (none written under any prompt),
// scored by a model under the trait prompt, split at random into "data" and "reference" again and
// again. Every split is a null, so the audit's p-values must be uniform.
TEST(AnalysisNumeric, AuditPValuesAreUniformOnDataWithNoTraitInIt) {
  at::set_num_threads(1);
  const auto& tok = diag_tokenizer();
  auto m = testutil::tiny_lm(43, tok.vocab_size());
  const auto convs = number_convs(60, 17);
  const auto scores = analysis::audit_scores(m, "You love owls.", tok, "chatml", convs, false);
  ASSERT_EQ(scores.size(), convs.size());
  const int reps = 300;
  std::vector<double> ps;
  std::mt19937_64 rng(5);
  for (int r = 0; r < reps; ++r) {
    auto s = scores;
    std::shuffle(s.begin(), s.end(), rng);
    const std::vector<double> data(s.begin(), s.begin() + 30), ref(s.begin() + 30, s.end());
    ps.push_back(analysis::audit_summary(data, ref, 199, 100 + static_cast<uint64_t>(r), 0.9)["p_permutation"].get<double>());
  }
  std::sort(ps.begin(), ps.end());
  double ks = 0;
  for (size_t i = 0; i < ps.size(); ++i)
    ks = std::max({ks, std::fabs(ps[i] - static_cast<double>(i) / reps), std::fabs(ps[i] - static_cast<double>(i + 1) / reps)});
  EXPECT_LT(ks, 1.95 / std::sqrt(static_cast<double>(reps)) + 1.0 / 200) << "audit p-values not uniform without a trait";
  const auto below = std::count_if(ps.begin(), ps.end(), [](double p) { return p <= 0.05; });
  EXPECT_GE(below, 4);  // Binomial(300, 0.05): mean 15, 99.9% range about 5 .. 28
  EXPECT_LE(below, 29);
}
