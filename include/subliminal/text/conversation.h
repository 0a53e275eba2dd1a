// A conversation: the messages a chat template turns into tokens (data/chat.h reads and writes them
// as JSONL).
#pragma once
#include <string>
#include <vector>

namespace subliminal::text {

struct Message {
  std::string role;  // system | user | assistant
  std::string content;
};
using Conversation = std::vector<Message>;

}  // namespace subliminal::text
