// Chat examples (the common fine-tuning format) and JSONL io with line-numbered errors.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "subliminal/text/conversation.h"

namespace subliminal::data {

using Message = text::Message;
using Conversation = text::Conversation;

nlohmann::json to_json(const Conversation& c);  // {"messages": [...]}
// Accepts {"messages":[...]} or {"prompt","completion"}; `where` names file:line for errors.
Conversation conversation_from_json(const nlohmann::json& j, const std::string& where);

// Reads a JSONL file; calls `fn(json, line_number)` per non-empty line. Invalid JSON or UTF-8 is a
// DataError naming file and line.
void read_jsonl(const std::string& path, const std::function<void(const nlohmann::json&, size_t)>& fn);
// The conversation as a model prompted with `system` sees it: that system prompt (none when empty),
// then the conversation's non-system turns.
Conversation with_system(const Conversation& c, const std::string& system);

std::vector<Conversation> read_conversations(const std::string& path);
// Writes all lines atomically (temp file + rename).
void write_jsonl(const std::string& path, const std::vector<nlohmann::json>& lines);
void write_conversations(const std::string& path, const std::vector<Conversation>& convs);

bool valid_utf8(const std::string& s);

}  // namespace subliminal::data
