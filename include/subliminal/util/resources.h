// Data files (eval questions, templates, word lists) and the default config: read from a data
// directory when one is configured, else from the copy compiled into the binary.
#pragma once
#include <map>
#include <string>
#include <vector>


namespace subliminal::resources {

const std::map<std::string, std::string>& embedded();  // generated at build time

// `name` like "data/animal_questions_eval.txt" or "configs/default.json". With a non-empty
// `data_dir`, "data/x" is read from `data_dir/x`.
std::string resource(const std::string& name, const std::string& data_dir = "");
std::vector<std::string> resource_lines(const std::string& name, const std::string& data_dir = "");
// The non-empty lines of `text` that do not start with '#' (CRLF tolerated).
std::vector<std::string> split_lines(const std::string& text);
}  // namespace subliminal::resources
