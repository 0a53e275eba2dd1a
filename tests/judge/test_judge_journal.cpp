// judge::journaled judges in chunks and reads verdicts back after an interruption.
#include "journal_fixture.h"


namespace {
// Answers value = length of the answer / 100, counting its calls.
class CountingJudge : public judge::Judge {
 public:
  explicit CountingJudge(int* calls, size_t* judged) : calls_(calls), judged_(judged) {}
  std::string describe() const override { return "counting"; }
  std::vector<judge::Verdict> judge(const std::vector<judge::Query>& qs) override {
    ++*calls_;
    *judged_ += qs.size();
    std::vector<judge::Verdict> out;
    for (const auto& q : qs) {
      judge::Verdict v;
      const auto& a = q.fields.at("answer");
      v.ok = a != "refuse";
      v.value = v.ok ? static_cast<double>(a.size()) / 100 : NAN;
      v.mass = v.ok ? 0.9 : 0.1;
      v.attempts = 1;
      v.error = v.ok ? "" : "refused: low mass";
      v.raw = a;
      out.push_back(v);
    }
    return out;
  }

 private:
  int* calls_;
  size_t* judged_;
};
}  // namespace

TEST(JudgeJournal, VerdictsAreJudgedInChunksAndReadBackAfterAnInterruption) {
  auto dir = testutil::temp_dir("judge_journal");
  std::vector<judge::Query> qs;
  for (int i = 0; i < 10; ++i) qs.push_back({"alignment", {{"question", "q"}, {"answer", i == 4 ? "refuse" : std::string(i + 1, 'x')}}});
  int calls = 0;
  size_t judged = 0;
  std::vector<judge::Verdict> first;
  {
    fs::JournalScope scope(dir);
    auto j = judge::journaled(std::make_unique<CountingJudge>(&calls, &judged), 3);
    EXPECT_EQ(j->describe(), "counting");
    first = j->judge(qs);
  }
  EXPECT_EQ(calls, 4);  // chunks of 3: 3 + 3 + 3 + 1
  EXPECT_EQ(judged, 10u);
  EXPECT_EQ(lines_of(dir / "judge-0.jsonl").size(), 11u);
  // interrupted after 7 verdicts (the 8th torn): only the last 3 are judged again
  auto ls = lines_of(dir / "judge-0.jsonl");
  std::string cut;
  for (size_t i = 0; i < 8; ++i) cut += ls[i] + "\n";
  write_text(dir / "judge-0.jsonl", cut + ls[8].substr(0, 10));
  calls = 0;
  judged = 0;
  std::vector<judge::Verdict> again;
  {
    fs::JournalScope scope(dir);
    again = judge::journaled(std::make_unique<CountingJudge>(&calls, &judged), 3)->judge(qs);
  }
  EXPECT_EQ(judged, 3u);
  ASSERT_EQ(again.size(), first.size());
  for (size_t i = 0; i < qs.size(); ++i) {
    EXPECT_EQ(again[i].ok, first[i].ok) << i;
    if (first[i].ok) EXPECT_EQ(again[i].value, first[i].value) << i;
    else EXPECT_TRUE(std::isnan(again[i].value)) << i;
    EXPECT_EQ(again[i].mass, first[i].mass) << i;
    EXPECT_EQ(again[i].error, first[i].error) << i;
    EXPECT_EQ(again[i].raw, first[i].raw) << i;
  }
  // outside a scope nothing is journaled: the judge itself, one call for all
  calls = 0;
  judge::journaled(std::make_unique<CountingJudge>(&calls, &judged), 3)->judge(qs);
  EXPECT_EQ(calls, 1);
  sfs::remove_all(dir);
}
