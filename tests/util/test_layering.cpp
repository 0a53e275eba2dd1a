// The modules' include arrows go one way (README "Design notes"): every `#include "subliminal/<m>/..."`
// in src/<n>/ or include/subliminal/<n>/ names a module below n in this order (or n itself). A new
// arrow running back up fails here, naming the file and the line. Runs in the source tree (ctest's
// working directory).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace sfs = std::filesystem;

// Bottom to top.
const std::vector<std::string> kLayers = {"util", "text", "config", "data", "model", "judge", "generate", "eval",
                                          "train", "analysis", "mnist", "report", "run", "experiments", "cli"};

int rank_of(const std::string& module) {
  auto it = std::find(kLayers.begin(), kLayers.end(), module);
  return it == kLayers.end() ? -1 : static_cast<int>(it - kLayers.begin());
}

struct Arrow {
  std::string file;
  int line;
  std::string from, to;
};

std::vector<Arrow> arrows() {
  std::vector<Arrow> out;
  const std::regex inc(R"re(^\s*#\s*include\s*"subliminal/([a-z_]+)/)re");
  for (const char* root : {"src", "include/subliminal"}) {
    for (const auto& e : sfs::recursive_directory_iterator(root)) {
      if (!e.is_regular_file()) continue;
      const std::string ext = e.path().extension().string();
      if (ext != ".cpp" && ext != ".h") continue;
      const sfs::path rel = sfs::relative(e.path(), root);
      // src/main.cpp is the command line's top
      const std::string from = rel.has_parent_path() ? rel.begin()->string() : std::string("cli");
      std::ifstream f(e.path());
      std::string l;
      int n = 0;
      std::smatch m;
      while (std::getline(f, l)) {
        ++n;
        if (std::regex_search(l, m, inc)) out.push_back({e.path().string(), n, from, m[1].str()});
      }
    }
  }
  return out;
}

TEST(Layering, EveryModuleIsInTheOrder) {
  ASSERT_TRUE(sfs::is_directory("src")) << "run from the source tree (ctest sets the working directory)";
  for (const auto& e : sfs::directory_iterator("src"))
    if (e.is_directory()) EXPECT_GE(rank_of(e.path().filename().string()), 0) << "src/" << e.path().filename().string() << " is not in kLayers";
}

TEST(Layering, IncludesPointDownOnly) {
  const auto as = arrows();
  ASSERT_GT(as.size(), 100u);  // the scan found the includes
  int across = 0;
  for (const auto& a : as) {
    if (a.from == a.to) continue;
    ++across;
    const int rf = rank_of(a.from), rt = rank_of(a.to);
    EXPECT_GE(rt, 0) << a.file << ":" << a.line << ": includes unknown module " << a.to;
    EXPECT_LT(rt, rf) << a.file << ":" << a.line << ": " << a.from << " includes " << a.to << ", which is above it";
  }
  EXPECT_GT(across, 0);
}

}  // namespace
