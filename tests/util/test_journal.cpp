// The append-only journal: complete lines kept, a torn one cut, another header starts over.
#include "journal_fixture.h"


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
