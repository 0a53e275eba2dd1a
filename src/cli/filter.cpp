// `subliminal filter`: the paper's number filter as a standalone step over JSONL files (chat format or
// {"prompt","completion"}), so released datasets can be filtered the same way as ours.
#include <iostream>
#include <map>

#include "subliminal/cli/commands.h"
#include "subliminal/data/chat.h"
#include "subliminal/data/numbers.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::cli {

using json = nlohmann::json;

int cmd_filter(const FilterArgs& a) {
  if (a.kind != "numbers") throw ConfigError("filter --kind '" + a.kind + "': only \"numbers\" is implemented");
  data::NumberFilterOptions opt;
  opt.banned = a.banned;
  opt.max_count = a.max_count;
  opt.trim_whitespace = a.number_filter == "trimmed";
  std::vector<json> kept, rejects;
  std::map<std::string, long> reasons;
  long total = 0;
  data::read_jsonl(a.in, [&](const json& j, size_t line) {
    auto conv = data::conversation_from_json(j, a.in + ":" + std::to_string(line));
    if (conv.empty() || conv.back().role != "assistant")
      throw DataError(a.in + ":" + std::to_string(line) + ": the last message must be the assistant's completion");
    ++total;
    auto r = data::filter_numbers(conv.back().content, opt);
    ++reasons[data::to_string(r.reason)];
    if (r.ok()) kept.push_back(data::to_json(conv));
    else rejects.push_back({{"line", line}, {"reason", data::to_string(r.reason)}, {"completion", conv.back().content}});
  });
  data::write_jsonl(a.out, kept);
  if (!a.rejects.empty()) data::write_jsonl(a.rejects, rejects);
  json summary = {{"input", a.in}, {"total", total}, {"kept", kept.size()}, {"reasons", reasons},
                  {"pass_rate", total ? static_cast<double>(kept.size()) / total : 0.0}};
  std::cout << summary.dump(2) << "\n";
  return 0;
}

}  // namespace subliminal::cli
