// Fuzzes the Hugging Face tokenizer.json loader (byte-level BPE: vocab, merges, added tokens,
// pre-tokenizer, normalizer), then encodes and decodes with whatever loaded.
#include "fuzz_common.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& p = write_input(data, size, ".json");
  try {
    auto t = subliminal::text::Tokenizer::load(p);
    auto ids = t.encode_special("Hello, world! 123 <|im_end|> caf\xc3\xa9 \xf0\x9f\xa6\x89");
    (void)t.decode(ids);
    for (int id = 0; id < std::min(t.vocab_size(), 64); ++id) (void)t.token_bytes(id);
  } catch (const subliminal::Error&) {
  }
  return 0;
}
