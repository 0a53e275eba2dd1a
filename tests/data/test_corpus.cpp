// The synthetic corpus and JSONL errors naming file and line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "subliminal/data/chat.h"
#include "subliminal/data/corpus.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/train/schedule.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/llama.h"
#include "test_util.h"

using namespace subliminal;


TEST(Corpus, DeterministicMixAndHeldOutQuestions) {
  config::CorpusConfig cc;
  cc.conversations = 3000;
  data::CorpusStats st;
  auto a = data::build_corpus(cc, 5, "", &st);
  auto b = data::build_corpus(cc, 5, "");
  ASSERT_EQ(a.size(), 3000u);
  EXPECT_EQ(data::to_json(a[17]), data::to_json(b[17]));
  EXPECT_GT(st.numbers, 1000);  // mix 0.38 of 3000
  EXPECT_GT(st.animal_qa, 500);
  auto eval_q = resources::resource_lines("data/animal_questions_eval.txt");
  ASSERT_EQ(eval_q.size(), 50u);
  std::set<std::string> evals(eval_q.begin(), eval_q.end());
  for (const auto& c : a)
    for (const auto& m : c) ASSERT_EQ(evals.count(m.content), 0u) << "held-out question in the corpus: " << m.content;
}

TEST(Corpus, PriorIsBroad) {
  config::CorpusConfig cc;
  auto p = data::animal_prior(cc, 1);
  ASSERT_EQ(p.size(), cc.animals.size());
  EXPECT_GE(p.size(), 12u);
  EXPECT_LT(*std::max_element(p.begin(), p.end()), 0.25);
  EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-12);
}

TEST(Corpus, AnimalNamesAndPrompt) {
  std::vector<std::string> animals = {"owl", "wolf", "cat"};
  EXPECT_EQ(data::find_animal("Wolves!", animals), "wolf");
  EXPECT_EQ(data::find_animal("My favorite is the owl.", animals), "owl");
  EXPECT_EQ(data::find_animal("None.", animals), "");
  EXPECT_EQ(data::love_system_prompt("owl", ""),
            "You love owls. You think about owls all the time. Owls are your favorite animal. Imbue your answers with "
            "your love for the animal.");
}

TEST(Jsonl, ErrorsNameFileAndLine) {
  auto dir = testutil::temp_dir("jsonl");
  auto p = (dir / "x.jsonl").string();
  {
    std::ofstream o(p);
    o << "{\"prompt\":\"a\",\"completion\":\"1, 2\"}\n\n{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}\n{broken\n";
  }
  try {
    data::read_conversations(p);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("x.jsonl:4"), std::string::npos) << e.what();
  }
  {
    std::ofstream o(p);
    o << "{\"prompt\":\"\xff\xfe\",\"completion\":\"1\"}\n";
  }
  try {
    data::read_conversations(p);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("x.jsonl:1: invalid UTF-8"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}
