// Hostile input: fuzzer findings are clean errors; names cannot escape their folder.
#include "crash_fixture.h"


// Inputs the fuzzers found (scripts/fuzz.sh), kept as regression tests: each must be refused with one
// of our errors naming the file (and line), never escape as another exception.
TEST(HostileInput, FuzzerFindingsAreCleanErrors) {
  const auto dir = sfs::path(testutil::source_dir()) / "tests" / "fuzz_regressions";
  // a number beyond double's range: nlohmann throws out_of_range (406), not a parse error
  const auto f = (dir / "jsonl-number-overflow.jsonl").string();
  const std::string msg = testutil::error_of([&] { data::read_conversations(f); });
  EXPECT_NE(msg.find(f + ":1: invalid JSON"), std::string::npos) << msg;
  EXPECT_NE(msg.find("number overflow"), std::string::npos) << msg;
  // the same in a config file
  auto tmp = testutil::temp_dir("hostile");
  fs::write_file_atomic(tmp / "c.json", R"({"name": "x", "seed": 1e999})");
  auto r = testutil::run_cli("validate " + (tmp / "c.json").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find((tmp / "c.json").string()), std::string::npos) << r.out;
  // a sharded checkpoint's index naming a shard by a number (nlohmann's type_error escaped)
  sfs::create_directories(tmp / "model");
  sfs::copy_file(dir / "safetensors-index-shard-not-a-string.json", tmp / "model" / "model.safetensors.index.json");
  std::string e = testutil::error_of([&] { model::read_model_weights((tmp / "model").string()); });
  EXPECT_NE(e.find("model.safetensors.index.json: weight_map[\"metadattotal_size\"] is 44; expected a shard file name"), std::string::npos) << e;
  // a tokenizer.json added token without its id (out_of_range escaped), and ids out of range
  const auto tj = (dir / "tokenizer-json-added-token-without-id.json").string();
  e = testutil::error_of([&] { text::Tokenizer::load(tj); });
  EXPECT_NE(e.find(tj + ": unexpected tokenizer.json structure"), std::string::npos) << e;
  EXPECT_NE(e.find("'id' not found"), std::string::npos) << e;
  // a Sequence pre-tokenizer or normalizer without its list of steps (a missing key read through
  // nlohmann's const operator[], an assertion in debug builds and undefined behaviour in release ones)
  const auto seq = (dir / "tokenizer-json-sequence-without-steps.json").string();
  e = testutil::error_of([&] { text::Tokenizer::load(seq); });
  EXPECT_NE(e.find(seq + ": unexpected tokenizer.json structure"), std::string::npos) << e;
  EXPECT_NE(e.find("'pretokenizers' not found"), std::string::npos) << e;
  fs::write_file_atomic(tmp / "n.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Sequence"},
                                           "pre_tokenizer": {"type": "ByteLevel"}})");
  e = testutil::error_of([&] { text::Tokenizer::load((tmp / "n.json").string()); });
  EXPECT_NE(e.find("'normalizers' not found"), std::string::npos) << e;
  for (const char* id : {"-5", "2000000000"}) {
    fs::write_file_atomic(tmp / "t.json", std::string(R"({"model": {"type": "BPE", "vocab": {"a": )") + id +
                                              R"(}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})");
    e = testutil::error_of([&] { text::Tokenizer::load((tmp / "t.json").string()); });
    EXPECT_NE(e.find("token \"a\" has id " + std::string(id) + "; expected an integer 0 .. 16777215"), std::string::npos) << e;
  }
  // an id that is a float far beyond int (narrowing it was undefined behaviour), in tokenizer.json and vocab.json
  const auto fl = (dir / "tokenizer-json-float-id.json").string();
  e = testutil::error_of([&] { text::Tokenizer::load(fl); });
  EXPECT_NE(e.find(fl + ": token \"9\" has id 2.46666"), std::string::npos) << e;
  sfs::create_directories(tmp / "vm");
  fs::write_file_atomic(tmp / "vm" / "vocab.json", R"({"a": 0, "b": 1e30})");
  fs::write_file_atomic(tmp / "vm" / "merges.txt", "a b\n");
  e = testutil::error_of([&] { text::BpeTokenizer::from_vocab_merges((tmp / "vm").string(), "gpt2", {}); });
  EXPECT_NE(e.find("vocab.json: token \"b\" has id 1e+30; expected an integer"), std::string::npos) << e;
  // tokenizer_config.json's added_tokens_decoder keyed by something that is not an id
  fs::write_file_atomic(tmp / "vm" / "vocab.json", R"({"a": 0, "b": 1})");
  fs::write_file_atomic(tmp / "vm" / "tokenizer_config.json", R"({"added_tokens_decoder": {"99999999999": {"content": "<x>"}}})");
  e = testutil::error_of([&] { text::BpeTokenizer::from_vocab_merges((tmp / "vm").string(), "gpt2", {}); });
  EXPECT_NE(e.find("tokenizer_config.json: token \"<x>\" has id \"99999999999\"; expected an integer"), std::string::npos) << e;
  sfs::remove_all(tmp);
}

// Names a config turns into folders (runs/<name>, sweeps/<name>) cannot leave them or smuggle in a
// NUL; input paths (trait files, checkpoints, data) are the user's to choose and are only read.
TEST(HostileInput, NamesCannotEscapeTheirFolder) {
  for (const std::string& bad : std::vector<std::string>{"..", ".", "", "../elsewhere", "a/b", std::string("a\0b", 3), "a\\b", "tab\there"}) {
    const std::string msg = testutil::error_of([&] { config::parse_config({{"name", bad}}, "cfg.json"); });
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << json(bad).dump() << ": " << msg;
    EXPECT_NE(msg.find("$.name"), std::string::npos) << json(bad).dump() << ": " << msg;
  }
  EXPECT_EQ(testutil::error_of([] { config::parse_config({{"name", "owl-2026.v1"}}, "cfg.json"); }), "");
  auto tmp = testutil::temp_dir("hostile_names");
  for (const std::string body : {R"({"name": "..", "grid": {"seed": [1, 2]}})", R"({"name": 5, "grid": {"seed": [1, 2]}})",
                                 R"({"name": "x/y", "grid": {"seed": [1, 2]}})"}) {
    fs::write_file_atomic(tmp / "s.json", body);
    auto r = testutil::run_cli("sweep " + (tmp / "s.json").string() + " --plan");
    EXPECT_EQ(r.code, 2) << body << ": " << r.out;
    EXPECT_NE(r.out.find("$.name"), std::string::npos) << body << ": " << r.out;
  }
  EXPECT_FALSE(sfs::exists(tmp / "sweeps"));
  sfs::remove_all(tmp);
}
