// Resource lookup: data directory first, embedded copy otherwise.
#include "subliminal/util/resources.h"

#include <filesystem>

#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::resources {

std::string resource(const std::string& name, const std::string& data_dir) {
  if (!data_dir.empty() && name.rfind("data/", 0) == 0) {
    std::filesystem::path p = std::filesystem::path(data_dir) / name.substr(5);
    if (std::filesystem::exists(p)) return fs::read_file(p);
    throw IoError("data file '" + p.string() + "' does not exist", "set data_dir to \"\" to use the built-in data");
  }
  const auto& m = embedded();
  auto it = m.find(name);
  if (it == m.end()) throw IoError("no built-in resource named '" + name + "'");
  return it->second;
}

std::vector<std::string> resource_lines(const std::string& name, const std::string& data_dir) {
  return split_lines(resource(name, data_dir));
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t e = s.find('\n', start);
    if (e == std::string::npos) e = s.size();
    std::string line = s.substr(start, e - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] != '#') out.push_back(line);
    start = e + 1;
  }
  return out;
}

}  // namespace subliminal::resources
