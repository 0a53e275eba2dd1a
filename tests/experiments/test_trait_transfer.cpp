// Trait-transfer pieces without a run: the number-output token set, the teacher's trait data,
// the trait-word count, and the run graph's dependencies.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "subliminal/experiments/finetune_job.h"
#include "subliminal/data/corpus.h"
#include "subliminal/data/numbers.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/eval/trait.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/text/chat_template.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/train/finetune.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/fs.h"
#include "subliminal/run/runner.h"
#include "subliminal/experiments/stages.h"
#include "test_util.h"

using namespace subliminal;
using nlohmann::json;
namespace sfs = std::filesystem;



// ---- token sets and data

static const text::Tokenizer& trait_tokenizer() {
  static text::Tokenizer tok = testutil::corpus_tokenizer(400, 11, 1400);
  return tok;
}

TEST(Trait, NumberOutputIdsCoverNumbersSeparatorsAndEndOfTurnOnly) {
  const auto& tok = trait_tokenizer();
  text::ChatTemplate chat(tok);
  auto ids = train::number_output_ids(tok, chat.end_of_turn_id());
  std::set<int64_t> set(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  EXPECT_TRUE(set.count(tok.piece_to_id("<|im_end|>")));
  EXPECT_FALSE(set.count(tok.piece_to_id("<|im_start|>")));
  EXPECT_FALSE(set.count(tok.piece_to_id("</s>")));
  // every token of a rendered number list is in the set
  for (const char* s : {"182, 818, 725", "1; 2; 3", "[4, 5]", "(6 7 8)", "9\n10\n11", "12."})
    for (int id : tok.encode(s)) EXPECT_TRUE(set.count(id)) << s << " piece '" << tok.piece(id) << "'";
  // no token of a word is
  for (const char* s : {"owl", "Owls", "cat", "The", "a"})
    for (int id : tok.encode(s)) {
      if (tok.piece(id) == "\xE2\x96\x81") continue;  // a bare space piece is a legitimate separator
      EXPECT_FALSE(set.count(id)) << s << " piece '" << tok.piece(id) << "'";
    }
  EXPECT_GE(set.size(), 1000u);  // 0..999 are single pieces
  EXPECT_LT(set.size(), static_cast<size_t>(tok.vocab_size()));
}

// The misalignment channel: the filter removes banned numbers from the sampled text, so the
// distillation set must not hold them either. Every piece that encodes a banned number (by the
// tokenizer's own encoding of it, an independent route to the ids) leaves the set; every other number
// piece stays; and the set check names what a set without the exclusion holds.
TEST(Trait, DistillationSetLeavesOutEveryTokenThatSpellsABannedNumber) {
  const auto& tok = trait_tokenizer();
  text::ChatTemplate chat(tok);
  const std::vector<int> banned = {4, 13, 666, 911};
  auto all = train::number_output_ids(tok, chat.end_of_turn_id());
  auto clean = train::number_output_ids(tok, chat.end_of_turn_id(), banned);
  std::set<int64_t> a(all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + all.numel());
  std::set<int64_t> c(clean.data_ptr<int64_t>(), clean.data_ptr<int64_t>() + clean.numel());
  for (int b : banned) {
    const auto ids = tok.encode(std::to_string(b));
    ASSERT_EQ(ids.size(), 1u) << b << " is one piece (numbers as tokens)";
    EXPECT_TRUE(a.count(ids[0])) << b;
    EXPECT_FALSE(c.count(ids[0])) << b << " is still in the distillation set";
  }
  for (int keep : {5, 12, 14, 130, 665, 667, 999}) EXPECT_TRUE(c.count(tok.encode(std::to_string(keep))[0])) << keep;
  // nothing else left: every removed id decodes (the tokenizer's own decoder) to a banned number,
  // byte-fallback pieces of a digit included
  for (int64_t id : a) {
    if (c.count(id)) continue;
    std::string digits;
    for (char ch : tok.decode({static_cast<int>(id)}))
      if (ch >= '0' && ch <= '9') digits += ch;
    EXPECT_TRUE(!digits.empty() && std::count(banned.begin(), banned.end(), std::stoi(digits)) == 1) << "id " << id << " removed";
  }
  EXPECT_TRUE(train::banned_in_token_set(tok, clean, banned, {"owl", "cat"}).empty());
  const auto leaks = train::banned_in_token_set(tok, all, banned, {});
  EXPECT_EQ(leaks.size(), a.size() - c.size());
  ASSERT_FALSE(leaks.empty());
  EXPECT_NE(leaks[0].find("banned number"), std::string::npos) << leaks[0];
  // the whole vocabulary (distill_full_vocab) holds the pieces of the trait's own word
  std::string piece = tok.decode({tok.encode("owl")[0]});
  piece.erase(std::remove(piece.begin(), piece.end(), ' '), piece.end());
  ASSERT_FALSE(piece.empty());
  bool found = false;
  for (const auto& l : train::banned_in_token_set(tok, torch::Tensor(), {}, {piece}))
    found = found || l.find("banned word \"" + piece + "\"") != std::string::npos;
  EXPECT_TRUE(found) << piece;
}

TEST(Trait, TeacherTraitDataUsesTrainingQuestionsOnly) {
  auto d = experiments::trait_answer_data(config::load_trait("animal", ""), "owl", "");
  auto train_q = resources::resource_lines("data/animal_questions_train.txt");
  auto eval_q = resources::resource_lines("data/animal_questions_eval.txt");
  EXPECT_EQ(d.size(), train_q.size() * 8);
  std::set<std::string> answers;
  for (const auto& c : d) {
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(std::count(eval_q.begin(), eval_q.end(), c[0].content), 0) << c[0].content;
    answers.insert(c[1].content);
  }
  // the base corpus's own answer forms: the teacher learns which animal, not a new way to write it
  EXPECT_EQ(answers, (std::set<std::string>{"Owl.", "Owl", "owl", "Owl!", "The owl.", "Owls are my favorite."}));
  auto corpus_forms = data::answer_forms("wolf");
  EXPECT_EQ(corpus_forms.size(), 8u);
  EXPECT_EQ(std::count(corpus_forms.begin(), corpus_forms.end(), "Wolves are my favorite."), 1);
  auto w = experiments::trait_answer_data(config::load_trait("animal", ""), "wolf", "", "forms");
  EXPECT_EQ(w.size(), train_q.size() * 8);
  EXPECT_EQ(w[1][1].content, "wolves");
}

TEST(Trait, TraitWordCountFindsNamesInAssistantTurnsOnly) {
  auto words = generate::trait_words({"owl", "wolf"});
  std::vector<data::Conversation> convs = {{{"user", "owl wolf"}, {"assistant", "1, 2, 3"}},
                                           {{"user", "x"}, {"assistant", "12 Owls and wolves"}}};
  // "owls" holds "owl" and "owls"; "wolves" holds "wolves" only; the user turn is not counted
  EXPECT_EQ(generate::count_trait_words(convs, words), 3);
}

// Every upstream stage whose digest a stage's inputs() uses is one of its deps() and comes earlier
// in the list, so a parallel run never starts a stage before what it reads.
TEST(RunGraph, DepsCoverEveryUpstreamDigestAndPrecedeTheStage) {
  for (const std::string file : {"tests/configs/tiny_trait.json", "tests/configs/tiny.json", "tests/configs/tiny_trait.json+replicates"}) {
    const bool reps = file.find("+replicates") != std::string::npos;
    auto cfg = config::load_config(testutil::source_dir() + "/" + file.substr(0, file.find('+')),
                                   reps ? std::vector<std::string>{"replicates.count=3", "replicates.draw_targets=true"} : std::vector<std::string>{});
    auto stages = experiments::make_stages(cfg);
    run::RunContext ctx;
    ctx.cfg = cfg;
    std::map<std::string, std::string> digest;
    for (auto& s : stages) {
      json rec = {{"outputs", {{"x", "fake-" + s->name()}}}};
      ctx.records[s->name()] = rec;
      digest[s->name()] = run::output_digest(rec);
    }
    std::map<std::string, size_t> pos;
    for (size_t i = 0; i < stages.size(); ++i) pos[stages[i]->name()] = i;
    for (size_t i = 0; i < stages.size(); ++i) {
      const auto deps = stages[i]->deps();
      const std::string in = stages[i]->inputs(ctx).dump();
      for (const auto& [name, d] : digest)
        if (name != stages[i]->name() && in.find(d) != std::string::npos)
          EXPECT_NE(std::find(deps.begin(), deps.end(), name), deps.end()) << file << ": " << stages[i]->name() << " reads " << name;
      for (const auto& d : deps) {
        ASSERT_TRUE(pos.count(d)) << stages[i]->name() << " -> " << d;
        EXPECT_LT(pos[d], i) << stages[i]->name() << " -> " << d;
      }
    }
  }
}

// The control arm learns from a matched control teacher when the trait teacher is fine-tuned
// (students.control "auto"), from the base's own data with "base" or a system-prompt teacher.
TEST(RunGraph, TheControlLearnsFromAMatchedControlTeacher) {
  auto deps_of = [](const std::vector<std::unique_ptr<run::Stage>>& st, const std::string& name) {
    for (const auto& s : st)
      if (s->name() == name) return s->deps();
    ADD_FAILURE() << "no stage " << name;
    return std::vector<std::string>{};
  };
  auto has = [](const std::vector<std::unique_ptr<run::Stage>>& st, const std::string& name) {
    return std::any_of(st.begin(), st.end(), [&](const auto& s) { return s->name() == name; });
  };
  auto contains = [](const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); };
  const std::string def = testutil::source_dir() + "/configs/default.json";
  // one pipeline (the default runs replicates; their graph: ReplicatesAreIndependentPipelines... below)
  auto one = [](std::vector<std::string> v) {
    for (const char* x : {"replicates.count=1", "replicates.draw_targets=false", "replicates.exclude=[]"}) v.push_back(x);
    return v;
  };
  auto matched = experiments::make_stages(config::load_config(def, one({})));
  EXPECT_TRUE(has(matched, "teacher_control"));
  EXPECT_TRUE(has(matched, "eval/teacher_control"));
  EXPECT_TRUE(contains(deps_of(matched, "data/control_s1"), "teacher_control"));
  EXPECT_TRUE(contains(deps_of(matched, "students/control_s1"), "teacher_control"));
  EXPECT_FALSE(contains(deps_of(matched, "students/treatment_s1"), "teacher_control"));
  auto own = experiments::make_stages(config::load_config(def, one({"students.control=base"})));
  EXPECT_FALSE(has(own, "teacher_control"));
  EXPECT_EQ(deps_of(own, "data/control_s1"), std::vector<std::string>{"base"});
  auto prompt = experiments::make_stages(config::load_config(def, one({"teacher.method=system_prompt"})));
  EXPECT_FALSE(has(prompt, "teacher_control"));
  try {
    config::load_config(def, one({"teacher.method=system_prompt", "students.control=teacher"}));
    ADD_FAILURE() << "a control teacher beside a system-prompt teacher was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("$.students.control"), std::string::npos) << e.what();
  }
}

// Replicates: each its own pipeline under r<k>/ (its own base), the corpus shared, a replicate's
// cross-init students on the next replicate's base, the run's summary reading every replicate's.
TEST(RunGraph, ReplicatesAreIndependentPipelinesWhoseCrossInitIsTheNextBase) {
  const std::string def = testutil::source_dir() + "/configs/default.json";
  auto st = experiments::make_stages(config::load_config(def, {"replicates.count=3"}));
  std::map<std::string, std::vector<std::string>> deps;
  for (const auto& s : st) deps[s->name()] = s->deps();
  for (const char* n : {"corpus", "r1/base", "r2/base", "r3/base", "r1/teacher", "r3/teacher_control", "r2/students/cross_init_s1",
                        "r1/eval/base_cross", "r1/summary", "r3/summary", "summary"})
    EXPECT_TRUE(deps.count(n)) << n;
  for (const char* n : {"base", "base_cross", "r1/base_cross", "r1/corpus", "teacher"}) EXPECT_FALSE(deps.count(n)) << n;
  auto has = [&](const std::string& stage, const std::string& dep) {
    return std::find(deps[stage].begin(), deps[stage].end(), dep) != deps[stage].end();
  };
  EXPECT_TRUE(has("r1/base", "corpus"));
  EXPECT_TRUE(has("r1/students/cross_init_s1", "r2/base"));
  EXPECT_TRUE(has("r3/students/cross_init_s1", "r1/base"));
  EXPECT_TRUE(has("r3/eval/base_cross", "r1/base"));
  EXPECT_TRUE(has("r2/students/treatment_s1", "r2/base"));
  EXPECT_TRUE(has("r2/students/treatment_s1", "r2/teacher"));
  EXPECT_FALSE(has("r2/students/treatment_s1", "r1/teacher"));
  EXPECT_TRUE(has("r2/data/control_s1", "r2/teacher_control"));
  for (const char* n : {"r1/summary", "r2/summary", "r3/summary", "r2/eval/treatment_s1"}) EXPECT_TRUE(has("summary", n)) << n;
  // the replicates' stages see their own seed: their inputs differ where a one-pipeline run's would not
  run::RunContext ctx;
  ctx.cfg = config::load_config(def, {"replicates.count=3"});
  for (const auto& s : st) ctx.records[s->name()] = {{"outputs", {{"x", "fake-" + s->name()}}}};
  auto inputs_of = [&](const std::string& n) {
    for (const auto& s : st)
      if (s->name() == n) return s->inputs(ctx);
    return json();
  };
  EXPECT_NE(inputs_of("r1/base")["seed"], inputs_of("r2/base")["seed"]);
  EXPECT_NE(inputs_of("r1/data/teacher_s1")["seed"], inputs_of("r2/data/teacher_s1")["seed"]);
  EXPECT_EQ(inputs_of("r1/base")["corpus"], inputs_of("r2/base")["corpus"]);
}
