// A resumed generate::sample reads back finished batches and samples the rest as before.
#include "journal_fixture.h"


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
