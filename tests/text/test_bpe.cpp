// Byte-level BPE against reference encodings: Qwen2's vocabulary and merges with the 46 texts and
// ids of Hugging Face's fast tokenizer (../shared/fixtures/tokenizers/vectors/qwen2.*), and
// GPT-2's tokenizer.json. The fixtures are third-party files; the tests skip if the folder is absent.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "subliminal/text/bpe.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
namespace sfs = std::filesystem;

namespace {

std::string fixtures() { return testutil::source_dir() + "/../shared/fixtures/tokenizers"; }

std::vector<std::string> split_inputs(const std::string& all) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t start = 0, p;
  while ((p = all.find(sep, start)) != std::string::npos) {
    out.push_back(all.substr(start, p - start));
    start = p + sep.size();
  }
  return out;
}

std::vector<std::vector<int>> read_outputs(const std::string& all) {
  std::vector<std::vector<int>> out;
  std::istringstream in(all);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int> ids;
    int x;
    while (ls >> x) ids.push_back(x);
    out.push_back(ids);
  }
  return out;
}

}  // namespace

TEST(BpeTokenizer, Qwen2MatchesTheReferenceIdsExactly) {
  if (!sfs::exists(fixtures() + "/qwen2/vocab.json")) GTEST_SKIP() << "no ../shared/fixtures";
  auto tok = text::BpeTokenizer::from_vocab_merges(fixtures() + "/qwen2", "qwen2",
                                                   {{"<|endoftext|>", 151643}, {"<|im_start|>", 151644}, {"<|im_end|>", 151645}});
  auto texts = split_inputs(fs::read_file(fixtures() + "/vectors/qwen2.inp"));
  auto expected = read_outputs(fs::read_file(fixtures() + "/vectors/qwen2.out"));
  ASSERT_EQ(texts.size(), 46u);
  ASSERT_EQ(expected.size(), texts.size());
  int exact = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = tok.encode(texts[i]);
    EXPECT_EQ(ids, expected[i]) << "text " << i << ": [" << texts[i] << "]";
    exact += ids == expected[i];
    EXPECT_EQ(tok.decode(ids), texts[i]) << "round trip " << i;  // NFC-stable texts decode to themselves
  }
  std::cout << exact << " / " << texts.size() << " Qwen2 reference encodings matched exactly\n";
  // added tokens are matched in the text; numbers are split digit by digit (\p{N} alone)
  EXPECT_EQ(tok.encode("<|im_start|>user"), (std::vector<int>{151644, tok.token_id("user")}));
  auto num = tok.encode("182, 818");
  EXPECT_EQ(num.size(), 8u);  // "1" "8" "2" "," " " "8" "1" "8": digits one by one, the space alone
}

TEST(BpeTokenizer, Gpt2TokenizerJsonEncodesAndRoundTrips) {
  if (!sfs::exists(fixtures() + "/gpt2/tokenizer.json")) GTEST_SKIP() << "no ../shared/fixtures";
  auto tok = text::BpeTokenizer::from_tokenizer_json(fixtures() + "/gpt2/tokenizer.json");
  EXPECT_EQ(tok.vocab_size(), 50257);
  // whole words that are single vocabulary entries come out as those entries
  EXPECT_EQ(tok.encode("Hello world"), (std::vector<int>{tok.token_id("Hello"), tok.token_id("\xC4\xA0world")}));
  EXPECT_EQ(tok.encode("<|endoftext|>"), (std::vector<int>{50256}));
  for (const std::string s : {"Hello world", " this is 🦙.cpp", "w048 7tuijk dsdfhu", "нещо на Български", "   spaces\n\n\ttabs",
                              "The sequence starts with: 182, 818, 725.", "ÄÖÜ äöü ß 你好"})
    EXPECT_EQ(tok.decode(tok.encode(s)), s) << s;
  // GPT-2 keeps runs of digits together (\p{N}+), Qwen2 does not
  EXPECT_EQ(tok.encode(" 12345").size() < 5, true);
}

TEST(BpeTokenizer, UnsupportedTokenizerJsonIsRejectedNamingTheField) {
  auto dir = testutil::temp_dir("bpe_bad");
  auto write = [&](const std::string& s) {
    fs::write_file_atomic(dir / "tokenizer.json", s);
    try {
      text::BpeTokenizer::from_tokenizer_json((dir / "tokenizer.json").string());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(write(R"({"model": {"type": "Unigram"}})").find("model.type"), std::string::npos);
  EXPECT_NE(write(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}})")
                .find("pre_tokenizer"),
            std::string::npos);
  EXPECT_NE(write(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "NFKC"},
                      "pre_tokenizer": {"type": "ByteLevel"}})")
                .find("normalizer"),
            std::string::npos);
  EXPECT_NE(write("{not json").find("not valid JSON"), std::string::npos);
  sfs::remove_all(dir);
}

// Llama-3's tokenizer.json sets model.ignore_merges: a pre-token that is itself a vocabulary entry
// is that one token even when the merges would not build it.
TEST(BpeTokenizer, IgnoreMergesTakesWholeVocabularyWords) {
  auto dir = testutil::temp_dir("bpe_ignore_merges");
  auto make = [&](bool ignore) {
    nlohmann::json j = {{"model", {{"type", "BPE"},
                                   {"ignore_merges", ignore},
                                   {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}}},
                                   {"merges", {"a b"}}}},
                        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                        {"normalizer", nullptr},
                        {"added_tokens", nlohmann::json::array()}};
    fs::write_file_atomic(dir / "tokenizer.json", j.dump());
    return text::BpeTokenizer::from_tokenizer_json((dir / "tokenizer.json").string());
  };
  EXPECT_EQ(make(false).encode("abc"), (std::vector<int>{3, 2}));  // merges only: "ab" + "c"
  EXPECT_EQ(make(true).encode("abc"), (std::vector<int>{4}));      // the whole word is in the vocabulary
  EXPECT_EQ(make(true).encode("abcab"), (std::vector<int>{3, 2, 3}));  // "abcab" is not: merges as before
  sfs::remove_all(dir);
}
