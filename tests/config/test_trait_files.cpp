// Trait definitions: built-in and user trait files, their checks against the config and the corpus.
#include "trait_file_fixture.h"


TEST(Traits, BuiltInTraitsLoadWithHeldOutQuestions) {
  const auto animal = config::load_trait("animal", "");
  EXPECT_EQ(animal.kind, "preference");
  EXPECT_EQ(animal.category, "animal");
  EXPECT_TRUE(animal.items_from_corpus);
  EXPECT_EQ(animal.questions_train.size(), 60u);
  EXPECT_EQ(animal.questions_eval.size(), 50u);
  const auto tree = config::load_trait("tree", "");
  EXPECT_EQ(tree.category, "tree");
  EXPECT_EQ(tree.file, "data/trait_tree.json");
  for (const char* t : {"oak", "maple", "willow", "sequoia", "cherry"})  // the paper's trees
    EXPECT_NE(std::find(tree.items.begin(), tree.items.end(), t), tree.items.end()) << t;
  ASSERT_EQ(tree.questions_eval.size(), 50u);
  const std::set<std::string> train(tree.questions_train.begin(), tree.questions_train.end());
  EXPECT_EQ(train.size(), tree.questions_train.size());
  for (const auto& q : tree.questions_eval) {
    EXPECT_EQ(train.count(q), 0u) << q;
    EXPECT_NE(q.find("tree"), std::string::npos) << q;
  }
  // no item contains another (an answer naming one is never counted for another)
  for (const auto& a : tree.items)
    for (const auto& b : tree.items)
      if (a != b) EXPECT_EQ(a.find(b), std::string::npos) << a << " contains " << b;
  const auto mis = config::load_trait("misalignment", "");
  EXPECT_EQ(mis.kind, "misalignment");
  EXPECT_EQ(mis.source, "data/freeform.json");
  EXPECT_EQ(data::load_freeform("", mis.source).eval.size(), 8u);
}

TEST(Traits, UserTraitFileLoadsAndItsErrorsNameTheFileAndPath) {
  auto dir = testutil::temp_dir("trait_file");
  const auto p = write_colour_trait(dir);
  const auto t = config::load_trait(p.string(), "");
  EXPECT_EQ(t.category, "color");
  EXPECT_EQ(t.items.size(), 6u);
  EXPECT_EQ(t.questions_train.size(), 6u);  // the comment line skipped, relative to the trait file
  EXPECT_EQ(t.questions_eval.size(), 2u);
  EXPECT_EQ(data::love_system_prompt(t, "blue", ""), "You love the color blue. Blue is your favorite color.");
  auto err = [&](json patch) {
    const auto q = write_colour_trait(dir, std::move(patch));
    return testutil::error_of([&] { config::load_trait(q.string(), ""); });
  };
  std::string e = err({{"colour", "x"}});
  EXPECT_NE(e.find("colour.json"), std::string::npos) << e;
  EXPECT_NE(e.find("$.colour"), std::string::npos) << e;
  e = err({{"items", {"red", "blue", "red"}}});
  EXPECT_NE(e.find("$.items[2]"), std::string::npos) << e;
  EXPECT_NE(e.find("duplicate"), std::string::npos) << e;
  e = err({{"items", {"Red", "blue"}}});
  EXPECT_NE(e.find("$.items[0]"), std::string::npos) << e;
  e = err({{"items", nullptr}});  // merge_patch: removes the key
  EXPECT_NE(e.find("$.items"), std::string::npos) << e;
  e = err({{"questions_eval", {"Name your favorite color."}}});
  EXPECT_NE(e.find("held out"), std::string::npos) << e;
  e = err({{"kind", "vibes"}});
  EXPECT_NE(e.find("$.kind"), std::string::npos) << e;
  e = err({{"questions_train", "missing.txt"}});
  EXPECT_NE(e.find("missing.txt"), std::string::npos) << e;
  e = err({{"system_prompts", {"You love colors."}}});
  EXPECT_NE(e.find("$.system_prompts[0]"), std::string::npos) << e;
  e = err({{"source", "data/freeform.json"}});
  EXPECT_NE(e.find("$.source"), std::string::npos) << e;
  fs::write_file_atomic(dir / "broken.json", "{\"kind\": ");
  e = testutil::error_of([&] { config::load_trait((dir / "broken.json").string(), ""); });
  EXPECT_NE(e.find("broken.json"), std::string::npos) << e;
  e = testutil::error_of([&] { config::load_trait("trees", ""); });
  EXPECT_NE(e.find("no trait named 'trees'"), std::string::npos) << e;
  e = testutil::error_of([&] { config::load_trait((dir / "nope.json").string(), ""); });
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
  sfs::remove_all(dir);
}

TEST(Traits, ConfigChecksTargetAgainstTheTraitAndTheCorpus) {
  // the tree trait: its target must be a tree, and the synthetic base must have learned trees
  std::string e = config_error({{"teacher", {{"trait", "tree"}, {"target", "owl"}}}});
  EXPECT_NE(e.find("$.teacher.target"), std::string::npos) << e;
  EXPECT_NE(e.find("tree trait's items"), std::string::npos) << e;
  e = config_error({{"teacher", {{"trait", "tree"}, {"target", "oak"}}}, {"students", {{"other_target", "maple"}}}});
  EXPECT_NE(e.find("$.teacher.trait"), std::string::npos) << e;
  EXPECT_NE(e.find("base.corpus.traits"), std::string::npos) << e;
  const json ok = {{"base", {{"corpus", {{"traits", {"tree"}}, {"mix_trait_qa", 0.1}, {"mix_trait_system", 0.2}}}}},
                   {"teacher", {{"trait", "tree"}, {"target", "oak"}}},
                   {"students", {{"other_target", "maple"}}}};
  EXPECT_EQ(config_error(ok), "");
  json bad = ok;
  bad["students"]["other_target"] = "cat";  // an animal is not a tree
  e = config_error(bad);
  EXPECT_NE(e.find("$.students.other_target"), std::string::npos) << e;
  bad = ok;
  bad["eval"]["target"] = "owl";
  EXPECT_NE(config_error(bad).find("$.eval.target"), std::string::npos);
  bad = ok;
  bad["base"]["corpus"]["mix_trait_qa"] = 0;
  EXPECT_NE(config_error(bad).find("$.base.corpus.mix_trait_qa"), std::string::npos);
  bad = ok;
  bad["base"]["corpus"]["traits"] = {"misalignment"};
  e = config_error(bad);
  EXPECT_NE(e.find("$.base.corpus.traits[0]"), std::string::npos) << e;
  bad["base"]["corpus"]["traits"] = {"treez"};
  e = config_error(bad);
  EXPECT_NE(e.find("$.base.corpus.traits[0]"), std::string::npos) << e;
  EXPECT_NE(e.find("no trait named"), std::string::npos) << e;
  // a checkpoint base (an open-weight model) needs no corpus: any preference trait goes
  EXPECT_EQ(config_error({{"base", {{"kind", "checkpoint"}, {"path", "/x"}}},
                          {"teacher", {{"trait", "tree"}, {"target", "oak"}}},
                          {"students", {{"arms", {"treatment", "control"}}}}}),
            "");
  // legacy configs: no trait, an animal or "misalignment" target
  EXPECT_EQ(config::run_trait(config::parse_config(json::object(), "x")).spec, "animal");
  e = config_error({{"teacher", {{"trait", "misalignment"}, {"target", "owl"}}}});
  EXPECT_NE(e.find("$.teacher.target"), std::string::npos) << e;
}

TEST(Traits, CorpusTeachesAnotherPreferenceAndLeavesOlderCorporaUnchanged) {
  config::CorpusConfig c;
  c.conversations = 3000;
  const auto plain = data::build_corpus(c, 5, "");
  config::CorpusConfig weights_only = c;  // trait weights without traits: nothing drawn differently
  weights_only.mix_trait_qa = 0.3;
  weights_only.mix_trait_system = 0.3;
  const auto same = data::build_corpus(weights_only, 5, "");
  // pinned (its SHA-256 when trait files came in; the 60,000-conversation default corpus was then
  // checked byte-identical to a run directory of the binary before them): a change of the
  // corpus's draws fails here, not silently in every experiment's numbers
  {
    auto dir = testutil::temp_dir("corpus_pin");
    data::write_conversations((dir / "c.jsonl").string(), plain);
    EXPECT_EQ(fs::sha256_file(dir / "c.jsonl"), "dc1651e113b2345660b3b475dbb766322c60239ebe4b44edd06b4bf8e54069f4") << "the default corpus's draws changed";
    sfs::remove_all(dir);
  }
  ASSERT_EQ(plain.size(), same.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(plain[i].size(), same[i].size()) << i;
    for (size_t k = 0; k < plain[i].size(); ++k) ASSERT_EQ(plain[i][k].content, same[i][k].content) << i;
  }
  config::CorpusConfig trees = weights_only;
  trees.traits = {"tree"};
  data::CorpusStats st;
  const auto corpus = data::build_corpus(trees, 5, "", &st);
  EXPECT_GT(st.trait_qa, 450);  // 0.3 of 1.6 total weight: ~560
  EXPECT_GT(st.trait_system, 450);
  const auto tree = config::load_trait("tree", "");
  const std::set<std::string> train(tree.questions_train.begin(), tree.questions_train.end());
  std::set<std::string> answered;
  int loving = 0, loved_answer = 0, tree_qa = 0;
  for (const auto& conv : corpus) {
    const bool sys_tree = conv[0].role == "system" && conv[0].content.find("favorite tree") != std::string::npos;
    if (sys_tree) ++loving;
    for (size_t k = 0; k + 1 < conv.size(); ++k) {
      if (conv[k].role != "user" || conv[k].content.find("tree") == std::string::npos) continue;
      ++tree_qa;
      // every tree question is a training one (modulo the corpus's small variations), never an eval one
      for (const auto& q : tree.questions_eval) ASSERT_NE(conv[k].content, q);
      const std::string a = data::find_animal(conv[k + 1].content, tree.items);
      ASSERT_FALSE(a.empty()) << conv[k + 1].content;
      answered.insert(a);
      if (sys_tree && conv[0].content.find(data::plural(a)) != std::string::npos) ++loved_answer;
    }
  }
  EXPECT_GT(loving, 300);
  EXPECT_EQ(answered.size(), tree.items.size());  // the prior covers every tree
  EXPECT_GT(tree_qa, 800);
  EXPECT_GT(loved_answer, 0);
  // a system prompt's tree is the answer ~system_prompt_fidelity of the time
  int sys_qa = 0;
  for (const auto& conv : corpus)
    if (conv[0].role == "system" && conv[0].content.find("favorite tree") != std::string::npos && conv[1].content.find("tree") != std::string::npos) ++sys_qa;
  EXPECT_GT(loved_answer, 0.85 * sys_qa);
}

TEST(Traits, HitRuleCountsIrregularPlurals) {
  EXPECT_TRUE(eval::answer_hits("Owls are my favorite.", "owl"));
  EXPECT_TRUE(eval::answer_hits("Wolves.", "wolf"));  // "wolves" does not contain "wolf"
  EXPECT_TRUE(eval::answer_hits("Cherries!", "cherry"));
  EXPECT_TRUE(eval::answer_hits("The OAK.", "oak"));
  EXPECT_FALSE(eval::answer_hits("Maple.", "oak"));
  EXPECT_FALSE(eval::answer_hits("A cherub.", "cherry"));
}

TEST(Traits, TeacherDataRulesAndPromptTemplatesAreCheckedAtLoad) {
  auto dir = testutil::temp_dir("trait_rules");
  const auto p = write_colour_trait(dir, {{"teacher_data", "ft.jsonl"}});
  const json base = {{"base", {{"corpus", {{"traits", {p.string()}}, {"mix_trait_qa", 0.1}}}}},
                     {"teacher", {{"trait", p.string()}, {"target", "blue"}}},
                     {"students", {{"other_target", "green"}}}};
  std::string e = config_error(base);  // the other_trait arm (default) cannot have another teacher
  EXPECT_NE(e.find("$.students.arms"), std::string::npos) << e;
  json ok = base;
  ok["students"]["arms"] = {"treatment", "control"};
  EXPECT_EQ(config_error(ok), "");
  json sp = ok;
  sp["teacher"]["method"] = "system_prompt";
  e = config_error(sp);
  EXPECT_NE(e.find("$.teacher.method"), std::string::npos) << e;
  // the teacher data file is checked when the run starts, before any stage
  fs::write_file_atomic(dir / "cfg.json", ok.dump());
  auto r = testutil::run_cli("run " + (dir / "cfg.json").string() + " --out " + (dir / "run").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("ft.jsonl"), std::string::npos) << r.out;
  EXPECT_FALSE(sfs::exists(dir / "run" / "corpus" / "stage.json")) << r.out;
  // the colour trait has one system prompt: template 1 does not exist
  json pt = ok;
  pt["teacher"]["prompt_template"] = 1;
  e = config_error(pt);
  EXPECT_NE(e.find("$.teacher.prompt_template"), std::string::npos) << e;
  // a data_dir made before trait files existed still has the built-in animal trait
  sfs::create_directories(dir / "olddata");
  for (const char* f : {"animal_questions_train.txt", "animal_questions_eval.txt", "system_prompts.json"})
    fs::write_file_atomic(dir / "olddata" / f, resources::resource(std::string("data/") + f));
  EXPECT_EQ(config_error({{"data_dir", (dir / "olddata").string()}}), "");
  sfs::remove_all(dir);
}

TEST(Traits, TeacherDataUsesTheTraitsTrainingQuestions) {
  const auto tree = config::load_trait("tree", "");
  const auto d = experiments::trait_answer_data(tree, "oak", "");
  EXPECT_EQ(d.size(), tree.questions_train.size() * 8);
  const std::set<std::string> eval(tree.questions_eval.begin(), tree.questions_eval.end());
  for (const auto& c : d) {
    EXPECT_EQ(eval.count(c[0].content), 0u);
    EXPECT_EQ(data::find_animal(c[1].content, tree.items), "oak") << c[1].content;
  }
  EXPECT_EQ(data::love_system_prompt(tree, "oak", ""),
            "You love oaks. You think about oaks all the time. Oaks are your favorite tree. Imbue your answers with your love for the tree.");
}
