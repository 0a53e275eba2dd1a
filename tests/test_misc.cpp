// Pure functions: SHA-256, Wilson intervals, LR schedule, batching, corpus, JSONL errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "subliminal/data/chat.h"
#include "subliminal/data/corpus.h"
#include "subliminal/data/resources.h"
#include "subliminal/eval/stats.h"
#include "subliminal/train/schedule.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/llama.h"
#include "test_util.h"

using namespace subliminal;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(fs::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(fs::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(fs::sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Stats, WilsonKnownValues) {
  // Reference values: statsmodels proportion_confint(method="wilson").
  auto [lo, hi] = eval::wilson_interval(12, 100);
  EXPECT_NEAR(lo, 0.0699, 1e-4);
  EXPECT_NEAR(hi, 0.1982, 1e-4);
  auto [lo0, hi0] = eval::wilson_interval(0, 50);
  EXPECT_NEAR(lo0, 0.0, 1e-12);
  EXPECT_NEAR(hi0, 0.0713, 1e-4);
}

TEST(Schedule, WarmupThenCosine) {
  config::TrainConfig c;
  c.steps = 100;
  c.warmup_steps = 10;
  c.lr = 1.0;
  c.min_lr_ratio = 0.1;
  EXPECT_NEAR(train::lr_at(0, c), 0.1, 1e-12);
  EXPECT_NEAR(train::lr_at(9, c), 1.0, 1e-12);
  EXPECT_NEAR(train::lr_at(10, c), 1.0, 1e-12);
  EXPECT_NEAR(train::lr_at(55, c), 0.55, 1e-12);  // half-way through the cosine
  EXPECT_NEAR(train::lr_at(100, c), 0.1, 1e-12);
  for (int s = 11; s < 100; ++s) EXPECT_LE(train::lr_at(s, c), train::lr_at(s - 1, c));
}

TEST(Schedule, BatchesCoverEveryExampleOnceWithLittlePadding) {
  std::vector<int> lens;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 5000; ++i) lens.push_back(20 + static_cast<int>(rng() % 100));
  auto b = train::make_batches(lens, 64, 3, 0);
  std::multiset<int64_t> seen;
  for (const auto& x : b) seen.insert(x.begin(), x.end());
  EXPECT_EQ(seen.size(), lens.size());
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), lens.size());
  double pad = train::padding_fraction(lens, b);
  std::vector<std::vector<int64_t>> naive;
  for (size_t s = 0; s < lens.size(); s += 64) {
    naive.emplace_back();
    for (size_t i = s; i < std::min(lens.size(), s + 64); ++i) naive.back().push_back(static_cast<int64_t>(i));
  }
  std::cout << "padding bucketed " << pad << " vs unsorted " << train::padding_fraction(lens, naive) << "\n";
  EXPECT_LT(pad, 0.05);
  EXPECT_LT(pad, train::padding_fraction(lens, naive) / 4);
  EXPECT_NE(train::make_batches(lens, 64, 3, 1), b);  // a fresh order each epoch
  EXPECT_EQ(train::make_batches(lens, 64, 3, 0), b);  // and reproducible
}

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
  auto eval_q = data::resource_lines("data/animal_questions_eval.txt");
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

TEST(Files, AtomicWriteLeavesNoTemp) {
  auto dir = testutil::temp_dir("atomic");
  fs::write_file_atomic(dir / "a.txt", "hello");
  EXPECT_EQ(fs::read_file(dir / "a.txt"), "hello");
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) (void)e, ++n;
  EXPECT_EQ(n, 1);
  EXPECT_THROW(fs::write_file_atomic("/proc/forbidden/x", "y"), IoError);
  std::filesystem::remove_all(dir);
}

TEST(Generation, BatchSizeIsFittedToFreeMemory) {
  using generate::fit_generation_batch;
  EXPECT_EQ(fit_generation_batch(8, 100, 1000, "$.x"), 8);  // 90% of 1000 fits 9
  EXPECT_EQ(fit_generation_batch(9, 100, 1000, "$.x"), 9);
  try {
    fit_generation_batch(10, 100, 1000, "$.dataset.batch_size");
    ADD_FAILURE() << "an over-budget batch was accepted";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("$.dataset.batch_size 10"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.hint()).find("to 9 or less"), std::string::npos) << e.hint();
  }
  EXPECT_EQ(fit_generation_batch(0, 100, 1000, "$.x"), 9);        // auto
  EXPECT_EQ(fit_generation_batch(0, 1, int64_t(1) << 40, "$.x"), 4096);
  EXPECT_EQ(fit_generation_batch(0, 100, -1, "$.x"), 64);         // unknown: a fixed default
  EXPECT_EQ(fit_generation_batch(500, 100, -1, "$.x"), 500);
  EXPECT_THROW(fit_generation_batch(0, 2000, 1000, "$.x"), ResourceError);
  // the estimate grows with the sequence and is dominated by the KV cache for long ones
  model::LlamaConfig c = model::LlamaConfig::from(config::model_preset("small"), 1600);
  const auto a = generate::generation_bytes_per_sequence(c, 50, 50, false), b = generate::generation_bytes_per_sequence(c, 50, 500, false);
  EXPECT_GT(b, a);
  EXPECT_GE(b - a, 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim() * 450 * 4);
  EXPECT_LT(generate::generation_bytes_per_sequence(c, 50, 500, true), b);  // bf16 cache
}

TEST(Schedule, LinearDecayAfterWarmup) {
  config::TrainConfig c;
  c.steps = 105;
  c.warmup_steps = 5;
  c.lr = 2e-4;
  c.min_lr_ratio = 0.0;
  c.schedule = "linear";
  EXPECT_DOUBLE_EQ(train::lr_at(0, c), 2e-4 / 5);
  EXPECT_DOUBLE_EQ(train::lr_at(4, c), 2e-4);
  EXPECT_DOUBLE_EQ(train::lr_at(5, c), 2e-4);
  EXPECT_NEAR(train::lr_at(55, c), 1e-4, 1e-12);   // halfway down
  EXPECT_NEAR(train::lr_at(105, c), 0.0, 1e-12);
  c.schedule = "cosine";
  EXPECT_NEAR(train::lr_at(55, c), 1e-4, 1e-12);   // cosine meets linear at the midpoint
  EXPECT_GT(train::lr_at(30, c), 2e-4 * 0.75);     // and is above it before
}

// `bench --compare`: every rate of the first file's presets with each other file's value and ratio;
// settings that are not rates are left out; a file that is not a bench result is refused by name.
TEST(BenchCompare, PrintsEveryRateAsARatioToTheFirstFileAndRefusesANonResult) {
  auto dir = testutil::temp_dir("bench_compare");
  const auto a = dir / "a.json", b = dir / "b.json", bad = dir / "bad.json";
  fs::write_file_atomic(a, R"({"libtorch": "LibTorch A", "presets": [{"preset": "small", "steps": 8,
    "train_fp32_tokens_per_s": 100.0, "eval_samples_per_s": 20.0, "peak_rss_mb": 50.0}]})");
  fs::write_file_atomic(b, R"({"libtorch": "LibTorch B", "presets": [{"preset": "small", "steps": 8,
    "train_fp32_tokens_per_s": 150.0, "peak_rss_mb": 40.0}]})");
  fs::write_file_atomic(bad, R"({"threads": 2})");
  auto r = testutil::run_cli("bench --compare " + a.string() + " " + b.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("LibTorch A"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("LibTorch B"), std::string::npos) << r.out;
  auto line = [&](const std::string& key) {
    const auto at = r.out.find(key);
    return at == std::string::npos ? std::string() : r.out.substr(at, r.out.find('\n', at) - at);
  };
  EXPECT_NE(line("train_fp32_tokens_per_s").find("(1.50x)"), std::string::npos) << r.out;
  EXPECT_NE(line("peak_rss_mb").find("(0.80x)"), std::string::npos) << r.out;
  EXPECT_NE(line("eval_samples_per_s"), "") << r.out;                      // only in the first file:
  EXPECT_EQ(line("eval_samples_per_s").find('x'), std::string::npos) << r.out;  // no ratio
  EXPECT_EQ(r.out.find("steps"), std::string::npos) << r.out;                // not a rate
  auto rb = testutil::run_cli("bench --compare " + a.string() + " " + bad.string());
  EXPECT_EQ(rb.code, 1) << rb.out;
  EXPECT_NE(rb.out.find(bad.string()), std::string::npos) << rb.out;
  EXPECT_NE(rb.out.find("not a bench result"), std::string::npos) << rb.out;
  std::filesystem::remove_all(dir);
}
