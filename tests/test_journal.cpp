// Resumable sampling and judging (issue 9): the append-only journal, and generate::sample /
// judge::journaled reading back what an interrupted stage already finished.
#include <gtest/gtest.h>

#include <fstream>

#include "subliminal/generate/sampler.h"
#include "subliminal/judge/judge.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/journal.h"
#include "test_util.h"

using nlohmann::json;
namespace sfs = std::filesystem;
using namespace subliminal;

namespace {
std::vector<std::string> lines_of(const sfs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
void write_text(const sfs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
}  // namespace

TEST(Journal, KeepsCompleteLinesCutsATornOneAndStartsOverOnAnotherHeader) {
  auto dir = testutil::temp_dir("journal");
  const auto p = dir / "j.jsonl";
  const json head = {{"kind", "test"}, {"inputs", 1}};
  {
    fs::Journal j(p, head);
    EXPECT_TRUE(j.entries().empty());
    for (int i = 0; i < 3; ++i) j.append({{"unit", i}});
  }
  EXPECT_EQ(lines_of(p).size(), 4u);
  // a process killed mid-write leaves a line without its newline
  { std::ofstream(p, std::ios::app) << "{\"unit\": 3, \"da"; }
  {
    fs::Journal j(p, head);
    ASSERT_EQ(j.entries().size(), 3u);
    EXPECT_EQ(j.entries()[2]["unit"], 2);
    EXPECT_EQ(j.restarted_because(), "");
    j.append({{"unit", 3}});
  }
  auto ls = lines_of(p);
  ASSERT_EQ(ls.size(), 5u);
  EXPECT_EQ(json::parse(ls[4])["unit"], 3);  // the torn line is gone, the new one follows the last complete one
  {
    fs::Journal j(p, head);
    EXPECT_EQ(j.entries().size(), 4u);
    j.keep(1);  // the caller found entry 1 unusable
  }
  EXPECT_EQ(lines_of(p).size(), 2u);
  {
    fs::Journal j(p, {{"kind", "test"}, {"inputs", 2}});  // other inputs: never mixed
    EXPECT_TRUE(j.entries().empty());
    EXPECT_NE(j.restarted_because(), "");
  }
  EXPECT_EQ(lines_of(p).size(), 1u);
  // a torn header: started over
  write_text(p, "{\"kind\": \"te");
  {
    fs::Journal j(p, head);
    EXPECT_TRUE(j.entries().empty());
  }
  EXPECT_EQ(json::parse(lines_of(p).at(0)), head);
  // scopes: numbered per kind, nested scopes shadow, nothing outside a scope
  EXPECT_TRUE(fs::JournalScope::next("sample").empty());
  {
    fs::JournalScope a(dir / "a");
    EXPECT_EQ(fs::JournalScope::next("sample"), dir / "a" / "sample-0.jsonl");
    EXPECT_EQ(fs::JournalScope::next("sample"), dir / "a" / "sample-1.jsonl");
    EXPECT_EQ(fs::JournalScope::next("judge"), dir / "a" / "judge-0.jsonl");
    {
      fs::JournalScope b(dir / "b");
      EXPECT_EQ(fs::JournalScope::next("sample"), dir / "b" / "sample-0.jsonl");
    }
    EXPECT_EQ(fs::JournalScope::next("sample"), dir / "a" / "sample-2.jsonl");
  }
  EXPECT_TRUE(fs::JournalScope::next("sample").empty());
  sfs::remove_all(dir);
}

TEST(SamplerJournalNumeric, AResumedCallReadsBackFinishedBatchesAndSamplesTheRestAsBefore) {
  auto m = testutil::tiny_lm(5, 64);
  generate::SampleOptions so;
  so.max_new_tokens = 12;
  so.temperature = 1.0;
  so.seed = 7;
  so.batch_size = 3;
  so.stop_ids = {2};
  std::vector<std::vector<int>> prompts;
  for (int i = 0; i < 10; ++i) prompts.push_back({1, 3 + i % 5, 4 + i % 7});  // 4 batches: 3 + 3 + 3 + 1
  generate::SampleStats plain_st;
  const auto plain = generate::sample(m, prompts, so, &plain_st);

  auto dir = testutil::temp_dir("sampler_journal");
  const auto jp = dir / "sample-0.jsonl";
  {
    fs::JournalScope scope(dir);
    EXPECT_EQ(generate::sample(m, prompts, so), plain);  // journaling does not change the samples
  }
  auto ls = lines_of(jp);
  ASSERT_EQ(ls.size(), 5u);  // header + one line per batch
  EXPECT_EQ(json::parse(ls[0])["sequences"], 10);
  for (size_t b = 0; b < 4; ++b) EXPECT_EQ(json::parse(ls[b + 1])["batch"], b);

  // An interrupted stage: batches 0 and 1 written, batch 2 torn. Batch 1's ids are replaced by a
  // marker: the resumed call must read them back, not sample them again.
  json b1 = json::parse(ls[2]);
  const std::vector<int> marker = {9, 9, 9};
  b1["ids"] = json::array({marker, marker, marker});
  write_text(jp, ls[0] + "\n" + ls[1] + "\n" + b1.dump() + "\n" + ls[3].substr(0, ls[3].size() / 2));
  generate::SampleStats st;
  std::vector<std::vector<int>> resumed;
  {
    fs::JournalScope scope(dir);
    resumed = generate::sample(m, prompts, so, &st);
  }
  ASSERT_EQ(resumed.size(), plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    if (i >= 3 && i < 6) EXPECT_EQ(resumed[i], marker) << i;
    else EXPECT_EQ(resumed[i], plain[i]) << i;  // batches 2 and 3 sampled as the uninterrupted call did
  }
  EXPECT_EQ(lines_of(jp).size(), 5u);
  EXPECT_EQ(st.prompt_tokens, plain_st.prompt_tokens);  // counts include the batches read back

  // A journal of other inputs (another seed) is not mixed in: the call starts over.
  so.seed = 8;
  const auto other_plain = generate::sample(m, prompts, so);
  {
    fs::JournalScope scope(dir);
    EXPECT_EQ(generate::sample(m, prompts, so), other_plain);
  }
  EXPECT_EQ(lines_of(jp).size(), 5u);
  // an entry that does not fit (a wrong row count) ends what is read back there
  ls = lines_of(jp);
  json bad = json::parse(ls[1]);
  bad["ids"].erase(0);
  write_text(jp, ls[0] + "\n" + bad.dump() + "\n" + ls[2] + "\n");
  {
    fs::JournalScope scope(dir);
    EXPECT_EQ(generate::sample(m, prompts, so), other_plain);
  }
  sfs::remove_all(dir);
}

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
