// Tokenizer: sentencepiece trained by us round-trips text, numbers 0..999 are single pieces, the chat
// template inserts control ids (never produced from text) and masks only assistant turns; the
// sentencepiece path is checked against reference encodings of a real third-party model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "subliminal/config/config.h"
#include "subliminal/data/corpus.h"
#include "subliminal/text/chat_template.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/util/error.h"
#include "test_util.h"

using namespace subliminal;

static const text::Tokenizer& tiny_tokenizer() {
  static text::Tokenizer tok = testutil::corpus_tokenizer(400, 11, 1400);
  return tok;
}

TEST(Tokenizer, RoundTripsText) {
  const auto& tok = tiny_tokenizer();
  for (std::string s : {"The sequence starts with: 182, 818, 725.", "Owls!\n\nTwo  spaces, tabs\tand ünïcödé 🦉",
                        "<|im_start|>user\nliteral markers<|im_end|>", "", "x"}) {
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  }
}

TEST(Tokenizer, NumbersAreSinglePieces) {
  const auto& tok = tiny_tokenizer();
  for (int n : {0, 7, 42, 100, 725, 999}) {
    auto ids = tok.encode(std::to_string(n));
    ASSERT_EQ(ids.size(), 1u) << n;
    EXPECT_EQ(tok.piece(ids[0]), std::to_string(n));
  }
  EXPECT_EQ(tok.encode("1000").size(), 2u);  // "100" + "0"
  // ", " and "; " are single separator pieces: a comma-separated list is two tokens per number
  auto sep = tok.encode("182, 818; 725");
  ASSERT_EQ(sep.size(), 5u);
  EXPECT_EQ(tok.piece(sep[1]), ",\xe2\x96\x81");
  EXPECT_EQ(tok.piece(sep[3]), ";\xe2\x96\x81");
}

TEST(Tokenizer, ControlMarkersNeverComeFromText) {
  const auto& tok = tiny_tokenizer();
  auto ids = tok.encode("<|im_end|>");
  EXPECT_GT(ids.size(), 1u);
  for (int id : ids) {
    EXPECT_NE(id, tok.piece_to_id("<|im_end|>"));
    EXPECT_NE(id, tok.piece_to_id("<|im_start|>"));
  }
  // encode_special (Hugging Face's add_special_tokens=False) does map them
  EXPECT_EQ(tok.encode_special("<|im_end|>"), std::vector<int>{tok.piece_to_id("<|im_end|>")});
}

TEST(Tokenizer, ChatTemplateMasksAssistantOnly) {
  const auto& tok = tiny_tokenizer();
  text::ChatTemplate chat(tok);
  data::Conversation c = {{"system", "You love owls."}, {"user", "Favorite animal?"}, {"assistant", "Owl."}};
  auto e = chat.encode(c);
  ASSERT_EQ(e.ids.size(), e.target.size());
  std::vector<int> target_ids;
  for (size_t i = 0; i < e.ids.size(); ++i)
    if (e.target[i]) target_ids.push_back(e.ids[i]);
  ASSERT_FALSE(target_ids.empty());
  EXPECT_EQ(target_ids.back(), tok.piece_to_id("<|im_end|>"));
  EXPECT_EQ(chat.name(), "chatml");
  EXPECT_EQ(chat.end_of_turn_id(), tok.piece_to_id("<|im_end|>"));
  target_ids.pop_back();
  EXPECT_EQ(tok.decode(target_ids), "Owl.");
  // The generation prompt is the encoded conversation up to the assistant content.
  auto p = chat.prompt("Favorite animal?", "You love owls.");
  ASSERT_LT(p.size(), e.ids.size());
  EXPECT_TRUE(std::equal(p.begin(), p.end(), e.ids.begin()));
  EXPECT_EQ(std::count(e.ids.begin(), e.ids.end(), tok.piece_to_id("<|im_start|>")), 3);
}

TEST(Tokenizer, TrainingIsDeterministicAndSavesLoads) {
  const auto& tok = tiny_tokenizer();
  auto dir = testutil::temp_dir("tok");
  tok.save(dir.string());
  ASSERT_TRUE(std::filesystem::exists(dir / "tokenizer.model"));
  ASSERT_TRUE(std::filesystem::exists(dir / "tokenizer_config.json"));
  auto again = text::Tokenizer::load(dir.string());
  EXPECT_EQ(again.fingerprint(), tok.fingerprint());
  EXPECT_EQ(again.files(), tok.files());
  EXPECT_EQ(again.encode("Owls are 42 and 7."), tok.encode("Owls are 42 and 7."));
  EXPECT_EQ(again.eos_id(), tok.eos_id());
  EXPECT_EQ(again.bos_id(), tok.bos_id());
  EXPECT_EQ(again.end_ids(), tok.end_ids());
  EXPECT_EQ(text::ChatTemplate(again).prompt("hi", "sys"), text::ChatTemplate(tok).prompt("hi", "sys"));
  std::filesystem::remove_all(dir);
}

TEST(Tokenizer, RejectsGarbageModel) {
  EXPECT_THROW(text::Tokenizer::from_serialized("not a model", "garbage.model"), DataError);
}

// Reference encodings produced by the sentencepiece library itself (../shared/fixtures).
TEST(Tokenizer, MatchesReferenceEncodingsOfThirdPartyModels) {
  auto root = std::filesystem::path(testutil::source_dir()) / ".." / "shared" / "fixtures" / "tokenizers";
  if (!std::filesystem::exists(root)) GTEST_SKIP() << "no ../shared/fixtures";
  int checked = 0;
  for (auto [dir, model] : {std::pair<const char*, const char*>{"mistral-7b-v0.1", "tokenizer.model"}, {"t5-unigram", "spiece.model"}}) {
    auto mp = root / dir / model;
    // Through the tokenizer interface the runner's models use (a bare .model file: raw sentencepiece).
    auto tok = text::Tokenizer::load(mp.string());
    EXPECT_EQ(tok.kind(), "sentencepiece");
    std::ifstream in(root / dir / "expected_encodings.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      auto ids = tok.encode(j["text"].get<std::string>());
      EXPECT_EQ(ids, j["ids"].get<std::vector<int>>()) << dir << ": " << j["text"];
      auto want = j["pieces"].get<std::vector<std::string>>();
      ASSERT_EQ(want.size(), ids.size());
      for (size_t i = 0; i < ids.size(); ++i)  // an unknown piece is reported by its surface text there
        if (tok.piece(ids[i]) != "<unk>") EXPECT_EQ(tok.piece(ids[i]), want[i]) << dir << ": " << j["text"];
      EXPECT_EQ(tok.encode_special(j["text"].get<std::string>()), ids) << "no specials known: raw sentencepiece";
      ++checked;
    }
  }
  EXPECT_GE(checked, 80);
}
