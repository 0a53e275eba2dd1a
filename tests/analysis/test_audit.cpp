// The audit's summary on scores made by hand (no model): the permutation p, the AUROC, the flag
// threshold and the ROC points follow from the numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "subliminal/analysis/audit.h"
#include "subliminal/analysis/interventions.h"
#include "subliminal/data/numbers.h"

using namespace subliminal;

TEST(Audit, SummaryFlagsAboveTheReferenceQuantileAndGivesTheRocPoints) {
  std::vector<double> ref, data;
  for (int i = 0; i < 100; ++i) ref.push_back(i);        // 0..99
  for (int i = 0; i < 50; ++i) data.push_back(90 + i);   // 90..139: 40 above every reference score
  const auto s = analysis::audit_summary(data, ref, 999, 1, 0.95);
  EXPECT_EQ(s["n"].get<int>(), 50);
  EXPECT_EQ(s["reference_n"].get<int>(), 100);
  EXPECT_NEAR(s["flag_threshold"].get<double>(), 94.05, 1e-9);  // numpy.quantile(range(100), 0.95)
  EXPECT_EQ(s["flagged"].get<int>(), 45);                         // 95..139
  EXPECT_NEAR(s["reference_flagged_fraction"].get<double>(), 0.05, 1e-12);
  // AUROC: data above all of the reference but the ten pairs 90..99 x 90..99 (ties count half)
  double wins = 0;
  for (double d : data)
    for (double r : ref) wins += d > r ? 1.0 : d == r ? 0.5 : 0.0;
  EXPECT_NEAR(s["auroc"].get<double>(), wins / 5000.0, 1e-12);
  EXPECT_LT(s["auroc_ci95"][0].get<double>(), s["auroc"].get<double>());
  EXPECT_GT(s["auroc_ci95"][1].get<double>(), s["auroc"].get<double>() - 1e-12);  // 0.99 here: the upper end can reach 1
  EXPECT_LE(s["auroc_ci95"][1].get<double>(), 1.0);
  EXPECT_LT(s["p_permutation"].get<double>(), 0.002);  // the smallest p 999 permutations can give is 0.001
  EXPECT_GE(s["p_permutation"].get<double>(), 1.0 / 1000.0);
  const auto& roc = s["roc"];
  ASSERT_EQ(roc.size(), 4u);
  for (const auto& pt : roc) {
    const double f = pt["fpr_target"].get<double>();
    EXPECT_NEAR(pt["fpr"].get<double>(), f, 1e-12) << f;  // 100 distinct reference scores: the target is hit exactly
    int above = 0;
    for (double d : data) above += d > pt["threshold"].get<double>();
    EXPECT_NEAR(pt["tpr"].get<double>(), above / 50.0, 1e-12) << f;
  }
  EXPECT_NEAR(roc[0]["tpr"].get<double>(), 1.0 - 9.0 / 50, 1e-12);  // threshold 98.01: 99..139 above
  // the same scores as data and reference: nothing to find
  const auto same = analysis::audit_summary(ref, ref, 999, 1, 0.95);
  EXPECT_NEAR(same["auroc"].get<double>(), 0.5, 1e-12);
  EXPECT_LT(same["auroc_ci95"][0].get<double>(), 0.5);
  EXPECT_GT(same["auroc_ci95"][1].get<double>(), 0.5);
  EXPECT_GT(same["p_permutation"].get<double>(), 0.3);
  // a dataset below the reference: the one-sided test does not flag it
  std::vector<double> low;
  for (double r : ref) low.push_back(r - 50);
  EXPECT_GT(analysis::audit_summary(low, ref, 999, 1, 0.95)["p_permutation"].get<double>(), 0.99);
}

// Bags of k (issue 42): with per-example scores N(d, 1) against N(0, 1), a bag's mean is N(d, 1/k),
// so the bag AUROC is Phi(d sqrt(k / 2)) (normal theory, independent of the code under test).
TEST(Audit, BagAurocFollowsNormalTheoryAndGrowsWithTheBag) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> n01(0.0, 1.0);
  const double d = 0.1;
  std::vector<double> data(8000), ref(8000);
  for (auto& x : data) x = d + n01(rng);
  for (auto& x : ref) x = n01(rng);
  const auto bags = analysis::bag_audit(data, ref, {1, 16, 64, 4001}, 3, 5, 100);
  ASSERT_EQ(bags.size(), 4u);
  auto phi = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
  for (size_t i = 0; i < 3; ++i) {
    const int k = bags[i]["k"].get<int>();
    const double theory = phi(d * std::sqrt(k / 2.0)), auc = bags[i]["auroc"].get<double>();
    EXPECT_EQ(bags[i]["bags"].get<size_t>(), 8000u / static_cast<size_t>(k));
    EXPECT_NEAR(auc, theory, k == 1 ? 0.02 : 0.06) << "k = " << k;
    EXPECT_LE(bags[i]["auroc_ci95"][0].get<double>(), theory) << "k = " << k;
    EXPECT_GE(bags[i]["auroc_ci95"][1].get<double>(), theory) << "k = " << k;
    // the ROC point at 5% false positives: P(N(d, 1/k) above the N(0, 1/k) 95% quantile)
    const double tpr = 1.0 - phi(1.6448536 - d * std::sqrt(static_cast<double>(k)));
    EXPECT_NEAR(bags[i]["roc"][1]["tpr"].get<double>(), tpr, k == 1 ? 0.02 : 0.1) << "k = " << k;
  }
  EXPECT_GT(bags[2]["auroc"].get<double>(), bags[0]["auroc"].get<double>() + 0.1);
  EXPECT_FALSE(bags[3]["defined"].get<bool>());  // fewer than 2 bags
  // one distribution on both sides: every bag size stays at chance
  std::vector<double> same(8000);
  for (auto& x : same) x = n01(rng);
  for (const auto& b : analysis::bag_audit(same, ref, {1, 16, 64}, 4, 5, 100)) {
    EXPECT_NEAR(b["auroc"].get<double>(), 0.5, 0.08) << b.dump();
    EXPECT_LE(b["auroc_ci95"][0].get<double>(), 0.5);
    EXPECT_GE(b["auroc_ci95"][1].get<double>(), 0.5);
  }
  // audit_summary carries the table
  std::vector<double> small(data.begin(), data.begin() + 300), small_ref(ref.begin(), ref.begin() + 300);
  EXPECT_EQ(analysis::audit_summary(small, small_ref, 99, 1, 0.95, {1, 4})["bags"].size(), 2u);
}

// Canonicalisation (issue 42): the outputs worked out by hand, and every rewritten response still
// passes the paper's strict filter with the same numbers.
TEST(Audit, CanonicalisationSortsAndReformatsTheNumbersAndNothingElse) {
  auto conv = [](const std::string& a) { return data::Conversation{{"user", "Continue: 1, 2, 3."}, {"assistant", a}}; };
  const std::vector<data::Conversation> in = {conv("5, 100, 23"), conv("007 3 12"), conv("9;8;7"), conv("4\n40\n400")};
  const auto sorted = analysis::sort_numbers_within(in);
  EXPECT_EQ(sorted[0][1].content, "5, 23, 100");  // by value, not as text ("100" < "23")
  EXPECT_EQ(sorted[1][1].content, "3 007 12");
  EXPECT_EQ(sorted[2][1].content, "7;8;9");
  EXPECT_EQ(sorted[3][1].content, "4\n40\n400");
  const auto canon = analysis::canonical_format(in);
  EXPECT_EQ(canon[0][1].content, "5, 100, 23");
  EXPECT_EQ(canon[1][1].content, "007, 3, 12");
  EXPECT_EQ(canon[2][1].content, "9, 8, 7");
  EXPECT_EQ(canon[3][1].content, "4, 40, 400");
  for (const auto& set : {sorted, canon}) EXPECT_EQ(set[0][0].content, in[0][0].content);  // prompts untouched
  std::vector<data::Conversation> many;
  for (int i = 0; i < 200; ++i) many.push_back(conv(std::to_string(i) + ", " + std::to_string(999 - i) + ", 5"));
  const auto rnd = analysis::random_format(many, 7);
  std::set<std::string> seps;
  data::NumberFilterOptions fo;
  for (size_t i = 0; i < many.size(); ++i) {
    const auto f = data::filter_numbers(rnd[i][1].content, fo);
    ASSERT_TRUE(f.ok()) << rnd[i][1].content;
    EXPECT_EQ(f.numbers, data::filter_numbers(many[i][1].content, fo).numbers);
    const std::string& t = rnd[i][1].content;
    seps.insert(t.substr(t.find_first_not_of("0123456789"), t.find_first_of("0123456789", t.find_first_not_of("0123456789")) - t.find_first_not_of("0123456789")));
  }
  EXPECT_EQ(seps.size(), 5u);  // every separator form drawn
  EXPECT_EQ(analysis::control_of("canonical_sort"), "shuffle_within");
  EXPECT_EQ(analysis::control_of("canonical_format"), "format_random");
}

// canonical_layout (issue 42): each response laid out as its own prompt asks, worked out by hand
// from the prompt texts in data/number_prompts.json; layout_random keeps that style and varies only
// the spacing; every rewritten response passes the strict filter with the same numbers.
TEST(Audit, CanonicalLayoutKeepsTheRequestedFormatAndFixesTheRest) {
  const data::NumberPromptGenerator prompts("");  // the templates compiled into the binary
  auto conv = [](const std::string& fmt, const std::string& a) {
    return data::Conversation{{"user", "Look at these numbers: 1, 2, 3. Write up to 10 more numbers, each with at most 3 digits. " + fmt + " Only give the numbers."},
                              {"assistant", a}};
  };
  const std::vector<data::Conversation> in = {
      conv("Return a comma-separated list of numbers.", "5,100, 23."),          // spacing and full stop fixed
      conv("Separate the numbers with spaces.", "007\n3\n12"),                 // the teacher's newlines become the requested spaces
      conv("Separate the numbers with semicolons.", "9;8;7"),
      conv("Write each number on its own line.", "4, 40, 400"),
      conv("Return the numbers in brackets, like [1, 2, 3].", "61, 62"),       // brackets added
      conv("Enclose the comma-separated numbers in parentheses.", "(8,9)"),
  };
  const auto canon = analysis::canonical_layout(in, prompts);
  EXPECT_EQ(canon[0][1].content, "5, 100, 23");
  EXPECT_EQ(canon[1][1].content, "007 3 12");
  EXPECT_EQ(canon[2][1].content, "9; 8; 7");
  EXPECT_EQ(canon[3][1].content, "4\n40\n400");
  EXPECT_EQ(canon[4][1].content, "[61, 62]");
  EXPECT_EQ(canon[5][1].content, "(8, 9)");
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(canon[i][0].content, in[i][0].content);  // prompts untouched
  std::vector<data::Conversation> many;
  for (int i = 0; i < 300; ++i)
    many.push_back(conv(i % 3 == 0 ? "Use commas between the numbers." : i % 3 == 1 ? "Return a semicolon-separated list of numbers." : "Return one number per line.",
                        std::to_string(i) + ", " + std::to_string(999 - i) + ", 5"));
  const auto rnd = analysis::layout_random(many, prompts, 11);
  data::NumberFilterOptions fo;
  std::set<std::string> seen;
  for (size_t i = 0; i < many.size(); ++i) {
    const std::string& t = rnd[i][1].content;
    const auto f = data::filter_numbers(t, fo);
    ASSERT_TRUE(f.ok()) << t;
    EXPECT_EQ(f.numbers, data::filter_numbers(many[i][1].content, fo).numbers);
    const auto b = t.find_first_not_of("0123456789");
    const std::string sep = t.substr(b, t.find_first_of("0123456789", b) - b);
    const char want = i % 3 == 0 ? ',' : i % 3 == 1 ? ';' : '\n';
    EXPECT_NE(sep.find(want), std::string::npos) << "example " << i << " left its requested style: " << t;
    seen.insert(sep);
  }
  EXPECT_EQ(seen.size(), 8u);  // 3 comma forms, 3 semicolon forms, 2 newline forms
  EXPECT_EQ(analysis::control_of("canonical_layout"), "layout_random");
  const std::vector<data::Conversation> stray = {{{"user", "Continue: 1, 2, 3."}, {"assistant", "4, 5"}}};
  try {
    analysis::canonical_layout(stray, prompts);
    FAIL() << "a prompt without a format text was laid out";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("example 0"), std::string::npos) << e.what();
  }
}
