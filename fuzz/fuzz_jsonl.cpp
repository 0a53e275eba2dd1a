// Fuzzes the chat JSONL reader: broken lines, invalid UTF-8, wrong types, missing fields.
#include "fuzz_common.h"
#include "subliminal/data/chat.h"
#include "subliminal/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& p = write_input(data, size, ".jsonl");
  try {
    auto convs = subliminal::data::read_conversations(p);
    for (const auto& c : convs)
      for (const auto& m : c) (void)m.content.size();
  } catch (const subliminal::Error&) {
  }
  return 0;
}
