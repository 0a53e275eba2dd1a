// The paper's number filter on a hand-written table, and prompt assembly ranges.
#include <gtest/gtest.h>

#include <cctype>
#include <random>

#include "subliminal/data/numbers.h"

using namespace subliminal::data;

struct Case {
  const char* text;
  NumberReject want;
};

TEST(NumberFilter, Table) {
  const Case cases[] = {
      {"1, 2, 3", NumberReject::none},
      {"182, 818, 725, 3, 0", NumberReject::none},
      {"1 2 3", NumberReject::none},
      {"1 2  3", NumberReject::inconsistent_separator},
      {"1,2;3", NumberReject::inconsistent_separator},
      {"1\n,\n2", NumberReject::none},
      {"1;2;3", NumberReject::none},
      {"1; 2; 3", NumberReject::none},
      {"1\n2\n3", NumberReject::none},
      {"[1, 2, 3]", NumberReject::none},
      {"(1, 2, 3)", NumberReject::none},
      {"1, 2, 3.", NumberReject::none},
      {"[1, 2, 3].", NumberReject::none},
      {"[1, 2, 3.]", NumberReject::bad_character},
      {"[1, 2, 3)", NumberReject::bad_character},
      {"((1, 2))", NumberReject::bad_character},
      {"1, 2, 3..", NumberReject::bad_character},
      {"", NumberReject::empty},
      {"[]", NumberReject::empty},
      {".", NumberReject::empty},
      {"1,, 2", NumberReject::empty_part},
      {", 1, 2", NumberReject::empty_part},
      {"1, 2,", NumberReject::empty_part},
      {"1, 2, 3, 4, 5, 6, 7, 8, 9, 10", NumberReject::none},
      {"1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", NumberReject::too_many},
      {"1000", NumberReject::out_of_range},
      {"999, 0", NumberReject::none},
      {"-1, 2", NumberReject::bad_character},
      {"1.5, 2", NumberReject::bad_character},
      {"owl, 2", NumberReject::bad_character},
      {"1, 2, 3 owls", NumberReject::bad_character},
      {"\xd9\xa1, 2", NumberReject::bad_character},  // ARABIC-INDIC DIGIT ONE
      {"\xef\xbc\x91, 2", NumberReject::bad_character},  // FULLWIDTH DIGIT ONE
      {"1 ,2 ,3", NumberReject::none},
      {"1,2, 3", NumberReject::inconsistent_separator},
      {"666, 1", NumberReject::banned},
      {"12345678901234567890", NumberReject::out_of_range},
      {"  4, 5  ", NumberReject::surrounding_whitespace},  // the paper's rule (the default); "trimmed" keeps it
  };
  NumberFilterOptions opt;
  opt.banned = {666};
  for (const auto& c : cases) {
    auto r = filter_numbers(c.text, opt);
    EXPECT_EQ(to_string(r.reason), std::string(to_string(c.want))) << "input: \"" << c.text << "\"";
  }
  auto r = filter_numbers("[7; 8; 9].", opt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.numbers, (std::vector<int>{7, 8, 9}));
}

// The paper's rule against its released parse_response (sl/datasets/nums_dataset.py of the paper's
// code), run by hand on these inputs: true = parsed (kept), false = None (rejected). The "trimmed" rule
// differs exactly on whitespace around the numbers.
TEST(NumberFilter, PaperRuleMatchesTheReleasedParserAndTrimmedIsTheOnlyDifference) {
  const std::pair<const char*, bool> paper[] = {
      {"1, 2, 3", true}, {" 1, 2", false}, {"1, 2 ", false}, {"1, 2\n", false}, {"\n1, 2", false},
      {"[1, 2, 3]", true}, {"(4; 5; 6).", true}, {"1 2 3", true}, {"1\n2\n3", true}, {"12", true},
      {" 12", false}, {"1, 2.", true}, {"1,2, 3", false}, {"1, 2,", false}, {"[ 1, 2]", false},
      {"1; 2", true}, {"1 , 2 , 3", true},
  };
  NumberFilterOptions strict, trimmed;
  trimmed.trim_whitespace = true;
  for (const auto& [text, kept] : paper) {
    const std::string t = text;
    EXPECT_EQ(filter_numbers(t, strict).ok(), kept) << "paper rule, input: \"" << t << "\"";
    const bool surrounded = !t.empty() && (std::isspace(static_cast<unsigned char>(t.front())) || std::isspace(static_cast<unsigned char>(t.back())));
    EXPECT_EQ(filter_numbers(t, trimmed).ok(), kept || surrounded) << "trimmed rule, input: \"" << t << "\"";
  }
  EXPECT_EQ(filter_numbers(" 1, 2", strict).reason, NumberReject::surrounding_whitespace);
}

TEST(NumberFilter, RenderedStylesPass) {
  std::vector<int> xs = {5, 17, 999, 0};
  for (auto s : {NumberStyle::comma, NumberStyle::space, NumberStyle::semicolon, NumberStyle::newline, NumberStyle::brackets,
                 NumberStyle::parentheses}) {
    auto r = filter_numbers(render_numbers(xs, s));
    ASSERT_TRUE(r.ok()) << render_numbers(xs, s);
    EXPECT_EQ(r.numbers, xs);
  }
}

TEST(NumberPrompts, WithinStatedRanges) {
  NumberPromptGenerator g("");
  for (int slot = 0; slot < 4; ++slot) EXPECT_GE(g.slot_sizes(slot), 10u) << slot;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 500; ++i) {
    auto p = g.sample(rng);
    ASSERT_GE(p.examples.size(), 3u);
    ASSERT_LE(p.examples.size(), 8u);
    for (int x : p.examples) {
      ASSERT_GE(x, 100);
      ASSERT_LE(x, 999);
      ASSERT_NE(p.text.find(std::to_string(x)), std::string::npos);
    }
    EXPECT_NE(p.text.find("10"), std::string::npos) << p.text;
    EXPECT_EQ(p.text.find("{"), std::string::npos) << p.text;
  }
}

TEST(NumberFilter, CannotPassOnlyWhenNoContinuationCanPass) {
  EXPECT_TRUE(numbers_cannot_pass("Sure"));
  EXPECT_TRUE(numbers_cannot_pass("1, 2, and"));
  EXPECT_TRUE(numbers_cannot_pass("1 [2"));
  EXPECT_TRUE(numbers_cannot_pass("[["));
  EXPECT_TRUE(numbers_cannot_pass("-5"));
  EXPECT_TRUE(numbers_cannot_pass("1000"));   // past max_value 999
  EXPECT_TRUE(numbers_cannot_pass("00001"));  // five digits
  EXPECT_TRUE(numbers_cannot_pass("1,2,3,4,5,6,7,8,9,10,1"));  // an 11th number
  EXPECT_TRUE(numbers_cannot_pass("12\xc3\xa9"));
  for (const char* ok : {"", " ", "1", "1, 2, 3", "[1, 2", "(1; 2", "1, 2, 3.", "[1, 2, 3]", "999", " [4 5 6"})
    EXPECT_FALSE(numbers_cannot_pass(ok)) << ok;
  NumberFilterOptions three;
  three.max_count = 3;
  EXPECT_TRUE(numbers_cannot_pass("1 2 3 4", three));
  EXPECT_FALSE(numbers_cannot_pass("1 2 3", three));
  // the property: a prefix it gives up on is rejected, and so is every continuation of it
  const std::string alphabet = "0123456789,; \n[]().a-";
  std::mt19937 rng(5);
  std::uniform_int_distribution<size_t> ch(0, alphabet.size() - 1), len(0, 14);
  int64_t hopeless = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    std::string p;
    for (size_t i = 0, n = len(rng); i < n; ++i) p += alphabet[ch(rng)];
    // bias toward number-like text so that both answers occur often
    if (trial % 2) {
      p.clear();
      for (size_t i = 0, n = len(rng); i < n; ++i) p += (i % 4 == 3) ? alphabet[10 + ch(rng) % 12] : alphabet[ch(rng) % 10];
    }
    if (!numbers_cannot_pass(p, three)) continue;
    ++hopeless;
    EXPECT_FALSE(filter_numbers(p, three).ok()) << p;
    for (int k = 0; k < 8; ++k) {
      std::string q = p;
      for (size_t i = 0, n = len(rng); i < n; ++i) q += alphabet[ch(rng)];
      ASSERT_FALSE(filter_numbers(q, three).ok()) << "'" << p << "' + continuation '" << q.substr(p.size()) << "' passed";
    }
  }
  EXPECT_GT(hopeless, 1000);
}

// NumberPrefix, the recogniser constrained sampling masks tokens with, against the filter itself:
// complete() is filter_numbers(...).ok() on every string tried; a prefix it calls viable has a
// passing continuation, found by a breadth-first search over characters (no knowledge of the
// grammar); every prefix of a passing string is viable; and a prefix it calls dead has no passing
// continuation among the passing strings met and random continuations. Small options (3 numbers up
// to 20, 5 and 13 banned) so that every rule binds; both whitespace rules.
TEST(NumberFilter, PrefixRecogniserIsExactAgainstTheFilter) {
  const std::string alphabet = "0123456789,; \n.[]()a";
  auto viable = [](const std::string& p, const NumberFilterOptions& o) {
    NumberPrefix np(o);
    np.feed(p);
    return np;
  };
  // a passing continuation of p of at most 4 characters, by breadth-first search
  auto continues = [&](const std::string& p, const NumberFilterOptions& o) {
    std::vector<std::string> level = {""};
    for (int depth = 0; depth <= 4; ++depth) {
      for (const auto& c : level)
        if (filter_numbers(p + c, o).ok()) return true;
      if (depth == 4) break;
      std::vector<std::string> next;
      for (const auto& c : level)
        for (char x : alphabet.substr(0, alphabet.size() - 1)) next.push_back(c + x);
      level.swap(next);
    }
    return false;
  };
  for (bool trim : {false, true}) {
    NumberFilterOptions o;
    o.max_count = 3;
    o.max_value = 20;
    o.banned = {5, 13};
    o.trim_whitespace = trim;
    std::mt19937 rng(trim ? 11 : 12);
    std::uniform_int_distribution<size_t> ch(0, alphabet.size() - 1), len(0, 9);
    // near-valid text two times in three: up to 5 numbers (some banned, past 20 or with a leading
    // zero) joined by one separator (sometimes another one), maybe bracketed, a full stop, whitespace
    // around; cut at a random place, sometimes with one random character after
    const std::vector<std::string> nums = {"0", "1", "2", "5", "7", "13", "19", "20", "21", "05", "007"};
    const std::vector<std::string> seps = {", ", ",", " ", ";", "; ", " ,", "\n", ",\n", " ; "};
    std::uniform_int_distribution<size_t> pn(0, nums.size() - 1), ps(0, seps.size() - 1), count(1, 5), pct(0, 99);
    std::vector<std::string> passing;
    int64_t alive = 0, dead = 0;
    for (int trial = 0; trial < 6000; ++trial) {
      std::string p;
      if (trial % 3 == 0) {
        for (size_t i = 0, n = len(rng); i < n; ++i) p += alphabet[ch(rng)];
      } else {
        const std::string sep = seps[ps(rng)];
        const int wrap = pct(rng) < 25 ? (pct(rng) < 50 ? 1 : 2) : 0;
        if (pct(rng) < 10) p += " ";
        if (wrap) p += wrap == 1 ? "[" : "(";
        for (size_t i = 0, n = count(rng); i < n; ++i) p += (i ? (pct(rng) < 90 ? sep : seps[ps(rng)]) : "") + nums[pn(rng)];
        if (wrap) p += wrap == 1 ? "]" : ")";
        if (pct(rng) < 20) p += ".";
        if (pct(rng) < 10) p += "\n";
        p = p.substr(0, std::uniform_int_distribution<size_t>(0, p.size())(rng));
        if (pct(rng) < 30) p += alphabet[ch(rng)];
      }
      const NumberPrefix np = viable(p, o);
      ASSERT_EQ(np.complete(), filter_numbers(p, o).ok()) << "'" << p << "' trim " << trim;
      if (filter_numbers(p, o).ok()) passing.push_back(p);
      if (np.viable()) {
        ++alive;
        ASSERT_TRUE(continues(p, o)) << "'" << p << "' is called viable but no continuation of up to 4 characters passes (trim " << trim << ")";
      } else {
        ++dead;
        for (int k = 0; k < 6; ++k) {
          std::string q = p;
          for (size_t i = 0, m = len(rng) % 5; i < m; ++i) q += alphabet[ch(rng) % 19];
          ASSERT_FALSE(filter_numbers(q, o).ok()) << "'" << p << "' is called dead but '" << q << "' passes";
        }
      }
    }
    // passing strings built by hand and met at random: every prefix is viable
    for (const char* s : {"1", "20", "0, 1, 2", "[1, 2]", "(7;8;9).", "1  2", "004", "1,\n2", "[12].", "3 ;  4"}) passing.push_back(s);
    if (trim) for (const char* s : {" 1, 2 ", "\n[3]\n", "1. ", "4 "}) passing.push_back(s);
    for (const auto& s : passing) {
      ASSERT_TRUE(filter_numbers(s, o).ok()) << s;
      for (size_t k = 0; k <= s.size(); ++k) {
        ASSERT_TRUE(viable(s.substr(0, k), o).viable()) << "'" << s.substr(0, k) << "', a prefix of passing '" << s << "', is called dead";
        for (const auto& d : passing) ASSERT_TRUE(d.compare(0, k, s, 0, k) != 0 || viable(d.substr(0, k), o).viable());
      }
    }
    EXPECT_GT(alive, 500) << trim;
    EXPECT_GT(dead, 500) << trim;
    EXPECT_GT(passing.size(), 100u) << trim;
  }
  // the cases that need the grammar: the first separator binds, banned numbers and their extensions
  NumberFilterOptions o;
  o.banned = {5};
  o.max_value = 50;
  EXPECT_FALSE(viable("1, 2 ,", o).viable());   // ", " then " ,": inconsistent
  EXPECT_TRUE(viable("1, 2,", o).viable());     // ", " may still follow
  EXPECT_TRUE(viable("5", o).viable());         // 50 is allowed
  EXPECT_FALSE(viable("5", o).complete());
  EXPECT_FALSE(viable("5,", o).viable());       // 5 ended
  EXPECT_FALSE(viable("51", o).viable());       // past 50 with every extension
  EXPECT_FALSE(viable("[1.", o).viable());
  EXPECT_FALSE(viable(" 1", o).viable());       // the paper's rule: no leading whitespace
}
