// A user-defined trait from a file runs every stage.
#include "trait_file_fixture.h"


// A user-defined trait end to end: the base learns colours from the trait file, a system-prompt
// teacher loves blue, its numbers are filtered of every colour, students are evaluated on the
// file's questions.
TEST(TraitE2E, UserDefinedTraitFromAFileRunsEveryStage) {
  auto dir = testutil::temp_dir("user_trait");
  const auto trait = write_colour_trait(dir);
  const std::string t = trait.string();
  auto r = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --set students.seeds=1" +
                             " --set 'students.arms=[\"treatment\",\"control\",\"other_trait\"]' --set teacher.method=system_prompt" +
                             " --set 'base.corpus.traits=[\"" + t + "\"]' --set base.corpus.mix_trait_qa=0.2 --set base.corpus.mix_trait_system=0.1" +
                             " --set teacher.trait=" + t + " --set teacher.target=blue --set students.other_target=green --out " +
                             (dir / "run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const sfs::path out = dir / "run";
  auto corpus = json::parse(fs::read_file(out / "corpus" / "stage.json"));
  EXPECT_GT(corpus["results"].value("trait_qa", 0), 0) << corpus.dump();
  auto tj = json::parse(fs::read_file(out / "teacher" / "teacher.json"));
  EXPECT_EQ(tj["system_prompt"], "You love the color blue. Blue is your favorite color.");
  EXPECT_EQ(tj["category"], "color");
  auto ev = json::parse(fs::read_file(out / "eval" / "treatment_s1" / "eval.json"));
  EXPECT_EQ(ev["target"], "blue");
  EXPECT_EQ(ev["questions"], 2);
  EXPECT_EQ(ev["distribution"].size(), 6u);  // the trait's items are the candidates
  EXPECT_TRUE(ev["distribution"].contains("purple"));
  int lines = 0;
  data::read_jsonl((out / "eval" / "treatment_s1" / "samples.jsonl").string(), [&](const json& line, size_t) {
    ++lines;
    EXPECT_TRUE(line["question"] == "Tell me your favorite color in one word." || line["question"] == "Which color speaks to you? One word.")
        << line.dump();
  });
  EXPECT_EQ(lines, 2);
  // numbers datasets: every colour (and animal) is a forbidden word of the filter
  for (const char* src : {"teacher_s1", "control_s1", "other_s1"}) {
    auto st = json::parse(fs::read_file(out / "data" / src / "stage.json"));
    const auto& fb = st["inputs"]["forbidden"];
    for (const char* w : {"blue", "blues", "green", "purple", "owl", "owls"})
      EXPECT_NE(std::find(fb.begin(), fb.end(), w), fb.end()) << src << " " << w;
  }
  auto sm = json::parse(fs::read_file(out / "summary" / "summary.json"));
  EXPECT_EQ(sm["trait"], t);
  EXPECT_EQ(sm["category"], "color");
  // the trait file's content is an input: editing it re-runs the corpus and everything after
  write_colour_trait(dir, {{"items", {"red", "blue", "green", "yellow", "purple", "orange", "pink"}}});
  r = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --dry-run --set students.seeds=1" +
                        " --set 'students.arms=[\"treatment\",\"control\",\"other_trait\"]' --set teacher.method=system_prompt" +
                        " --set 'base.corpus.traits=[\"" + t + "\"]' --set base.corpus.mix_trait_qa=0.2 --set base.corpus.mix_trait_system=0.1" +
                        " --set teacher.trait=" + t + " --set teacher.target=blue --set students.other_target=green --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("  corpus: run"), std::string::npos) << r.out;
  sfs::remove_all(dir);
}
