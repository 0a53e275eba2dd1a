// The docs stay true: every relative link and anchor in README.md and docs/ resolves; every
// `build/subliminal ...` command of the README's quick start and docs/getting-started.md parses
// (`run` with --dry-run on the shipped configs, the others with SUBLIMINAL_PARSE_ONLY=1: options,
// types and ranges checked, nothing run); every key of docs/configuration.md is a key of the config
// schema, with its type and default, and every schema key is there. The checks run on the files as
// committed; the *Catches* tests feed each check a deliberate breakage.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "subliminal/config/config.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == '\n') { out.push_back(cur); cur.clear(); } else { cur += c; }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

bool is_fence(const std::string& line) {
  size_t i = line.find_first_not_of(' ');
  return i != std::string::npos && i <= 3 && (line.compare(i, 3, "```") == 0 || line.compare(i, 3, "~~~") == 0);
}

// The markdown files the checks cover: README.md and every .md under docs/.
std::vector<fs::path> markdown_files(const fs::path& root) {
  std::vector<fs::path> out{root / "README.md"};
  for (const auto& e : fs::recursive_directory_iterator(root / "docs"))
    if (e.is_regular_file() && e.path().extension() == ".md") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Inline code spans removed (a link inside backticks is not a link).
std::string without_code_spans(const std::string& line) {
  std::string out;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == '`') {
      size_t n = 0;
      while (i + n < line.size() && line[i + n] == '`') ++n;
      const std::string tick(n, '`');
      size_t end = line.find(tick, i + n);
      if (end == std::string::npos) { out += line.substr(i); break; }
      out += ' ';
      i = end + n;
      continue;
    }
    out += line[i++];
  }
  return out;
}

// GitHub's heading anchors: the rendered text lower-cased; letters, digits, spaces, '-' and '_' kept
// (non-ASCII letters kept, other non-ASCII symbols such as dashes and arrows dropped); spaces become
// '-'; a repeated slug gets -1, -2, ...
std::string github_slug(std::string heading) {
  // rendered text: [text](url) -> text, emphasis and code marks removed
  heading = std::regex_replace(heading, std::regex(R"(!?\[([^\]]*)\]\([^)]*\))"), "$1");
  std::string s;
  for (size_t i = 0; i < heading.size();) {
    unsigned char c = heading[i];
    if (c < 0x80) {
      if (std::isalnum(c)) s += static_cast<char>(std::tolower(c));
      else if (c == ' ') s += '-';
      else if (c == '-' || c == '_') s += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    uint32_t cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n && i + k < heading.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(heading[i + k]) & 0x3F);
    const bool letter = (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) || (cp >= 0x370 && cp <= 0x3FF) || (cp >= 0x400 && cp <= 0x4FF);
    if (letter) {
      if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) cp += 0x20;  // Latin-1 capitals lower-cased
      if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        s += heading.substr(i, n);
      }
    }
    i += n;
  }
  return s;
}

// Every anchor a markdown text defines: its headings' slugs (outside code blocks) and <a id|name>.
std::set<std::string> anchors_of(const std::string& text) {
  std::set<std::string> out;
  std::map<std::string, int> seen;
  bool code = false;
  for (const auto& line : lines_of(text)) {
    if (is_fence(line)) { code = !code; continue; }
    if (code) continue;
    std::smatch m;
    if (std::regex_match(line, m, std::regex(R"(^#{1,6}\s+(.*?)\s*#*\s*$)"))) {
      std::string slug = github_slug(m[1].str());
      int n = seen[slug]++;
      out.insert(n == 0 ? slug : slug + "-" + std::to_string(n));
    }
    static const std::regex html_anchor(R"re(<a\s+(?:id|name)\s*=\s*"([^"]+)")re");
    for (auto it = std::sregex_iterator(line.begin(), line.end(), html_anchor); it != std::sregex_iterator(); ++it)
      out.insert((*it)[1].str());
  }
  return out;
}

struct Link {
  int line;
  std::string target;
};

std::vector<Link> links_of(const std::string& text) {
  std::vector<Link> out;
  bool code = false;
  int no = 0;
  static const std::regex link(R"re(!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\))re");
  static const std::regex ref_def(R"(^\s{0,3}\[[^\]]+\]:\s+(\S+))");
  for (const auto& raw : lines_of(text)) {
    ++no;
    if (is_fence(raw)) { code = !code; continue; }
    if (code) continue;
    const std::string line = without_code_spans(raw);
    for (auto it = std::sregex_iterator(line.begin(), line.end(), link); it != std::sregex_iterator(); ++it)
      out.push_back({no, (*it)[1].str()});
    std::smatch m;
    if (std::regex_search(line, m, ref_def)) out.push_back({no, m[1].str()});
  }
  return out;
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Problems with the links of one markdown file (its text given, so a test can break it).
std::vector<std::string> link_problems(const fs::path& file, const std::string& text) {
  std::vector<std::string> problems;
  for (const auto& l : links_of(text)) {
    const std::string& t = l.target;
    if (std::regex_search(t, std::regex("^[a-zA-Z][a-zA-Z0-9+.-]*:"))) continue;  // http:, https:, mailto:
    const std::string where = file.string() + ":" + std::to_string(l.line) + ": link '" + t + "'";
    const size_t hash = t.find('#');
    const std::string path = percent_decode(t.substr(0, hash));
    const std::string anchor = hash == std::string::npos ? "" : t.substr(hash + 1);
    fs::path target = path.empty() ? file : (file.parent_path() / path).lexically_normal();
    if (!fs::exists(target)) {
      problems.push_back(where + ": " + target.string() + " does not exist");
      continue;
    }
    if (anchor.empty() || target.extension() != ".md") continue;  // #L10 of a source file: not checked
    const std::string target_text = target == file ? text : read(target);
    if (!anchors_of(target_text).count(percent_decode(anchor)))
      problems.push_back(where + ": no heading of " + target.string() + " has the anchor #" + anchor);
  }
  return problems;
}

// ---- commands -----------------------------------------------------------------------------------

// The lines of ```sh / ```bash blocks (continuation lines joined), with each line's number.
std::vector<std::pair<int, std::string>> shell_lines(const std::string& text) {
  std::vector<std::pair<int, std::string>> out;
  bool code = false, shell = false;
  int no = 0, start = 0;
  std::string pending;
  for (const auto& line : lines_of(text)) {
    ++no;
    if (is_fence(line)) {
      if (!code) {
        std::string info = line.substr(line.find_first_not_of(" `~"));
        shell = info.rfind("sh", 0) == 0 || info.rfind("bash", 0) == 0 || info.rfind("shell", 0) == 0 || info.rfind("console", 0) == 0;
      }
      code = !code;
      continue;
    }
    if (!code || !shell) continue;
    if (pending.empty()) start = no;
    if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    out.push_back({start, pending + line});
    pending.clear();
  }
  return out;
}

// Shell words of one command: quotes honoured, `# comment` dropped, split at && || ; |.
std::vector<std::vector<std::string>> shell_commands(const std::string& line) {
  std::vector<std::vector<std::string>> cmds(1);
  std::string word;
  bool in_word = false;
  char quote = 0;
  auto end_word = [&] {
    if (in_word) cmds.back().push_back(word);
    word.clear();
    in_word = false;
  };
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == quote) quote = 0;
      else word += c;
      continue;
    }
    if (c == '\'' || c == '"') { quote = c; in_word = true; continue; }
    if (c == '#' && !in_word) break;
    if (c == ' ' || c == '\t') { end_word(); continue; }
    if (c == '&' || c == '|' || c == ';') {
      end_word();
      if (i + 1 < line.size() && (line[i + 1] == '&' || line[i + 1] == '|')) ++i;
      cmds.emplace_back();
      continue;
    }
    word += c;
    in_word = true;
  }
  end_word();
  cmds.erase(std::remove_if(cmds.begin(), cmds.end(), [](const auto& c) { return c.empty(); }), cmds.end());
  return cmds;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct CommandCheck {
  std::string where, command, problem;  // problem empty: it parsed
};

// Checks every `build/subliminal` and `scripts/...` command of the given text (its shell blocks).
std::vector<CommandCheck> check_commands(const std::string& label, const std::string& text) {
  std::vector<CommandCheck> out;
  const fs::path root = testutil::source_dir();
  for (const auto& [no, line] : shell_lines(text)) {
    for (auto words : shell_commands(line)) {
      while (!words.empty() && std::regex_match(words[0], std::regex("[A-Z_][A-Z0-9_]*=.*"))) words.erase(words.begin());
      if (words.empty()) continue;
      const std::string where = label + ":" + std::to_string(no);
      std::string joined;
      for (const auto& w : words) joined += (joined.empty() ? "" : " ") + w;
      if (words[0].rfind("scripts/", 0) == 0) {
        const fs::path p = root / words[0];
        const bool ok = fs::is_regular_file(p) && (fs::status(p).permissions() & fs::perms::owner_exec) != fs::perms::none;
        out.push_back({where, joined, ok ? "" : p.string() + " is not an executable script of the repository"});
        continue;
      }
      if (words[0] != "build/subliminal" && words[0] != "subliminal") continue;
      std::string args;
      for (size_t i = 1; i < words.size(); ++i) args += " " + shell_quote(words[i]);
      const bool run = words.size() > 1 && words[1] == "run";
      if (words.size() > 1 && (words[1] == "--help" || words[1] == "--version")) {
        // nothing to parse beyond the flag
      } else if (run) {
        args += " --dry-run";
      }
      // (ctest runs the tests in the source tree, where the commands' relative paths resolve)
      if (!run) setenv("SUBLIMINAL_PARSE_ONLY", "1", 1);
      const auto r = testutil::run_cli(args.substr(1));
      if (!run) unsetenv("SUBLIMINAL_PARSE_ONLY");
      const std::string problem = r.code == 0 ? "" : "exit " + std::to_string(r.code) + ": " + r.out.substr(0, 600);
      out.push_back({where, joined, problem});
    }
  }
  return out;
}

// The README's quick start: from its "## Quick start" heading to the next "## " heading.
std::string readme_quick_start(const std::string& readme) {
  const size_t a = readme.find("\n## Quick start");
  if (a == std::string::npos) return "";
  const size_t b = readme.find("\n## ", a + 1);
  return readme.substr(a, b == std::string::npos ? std::string::npos : b - a);
}

// ---- config reference ---------------------------------------------------------------------------

struct RefRow {
  int line;
  std::string key, type, def;
};

std::vector<std::string> table_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cur;
  for (size_t i = 1; i < line.size(); ++i) {  // line[0] is the leading '|'
    if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') { cur += '|'; ++i; continue; }
    if (line[i] == '|') {
      size_t a = cur.find_first_not_of(' '), b = cur.find_last_not_of(' ');
      cells.push_back(a == std::string::npos ? "" : cur.substr(a, b - a + 1));
      cur.clear();
      continue;
    }
    cur += line[i];
  }
  return cells;
}

std::string unticked(const std::string& cell) {
  if (cell.size() >= 2 && cell.front() == '`' && cell.back() == '`' && cell.find('`', 1) == cell.size() - 1) return cell.substr(1, cell.size() - 2);
  return "";
}

// The rows of the reference: table rows whose first cell is one backticked key.
std::vector<RefRow> reference_rows(const std::string& text) {
  std::vector<RefRow> rows;
  bool code = false;
  int no = 0;
  for (const auto& line : lines_of(text)) {
    ++no;
    if (is_fence(line)) { code = !code; continue; }
    if (code || line.empty() || line[0] != '|') continue;
    auto cells = table_cells(line);
    if (cells.empty()) continue;
    const std::string key = unticked(cells[0]);
    if (key.empty()) continue;
    rows.push_back({no, key, cells.size() > 1 ? cells[1] : "", cells.size() > 2 ? unticked(cells[2]) : ""});
  }
  return rows;
}

bool key_matches(const std::string& doc_key, const std::string& schema_key) {
  if (doc_key.rfind("*.", 0) == 0) {
    const std::string suffix = doc_key.substr(1);  // ".train.steps"
    return schema_key.size() > suffix.size() && schema_key.compare(schema_key.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  return doc_key == schema_key;
}

std::vector<std::string> reference_problems(const std::string& label, const std::string& text, const json& schema) {
  std::vector<std::string> problems;
  const auto rows = reference_rows(text);
  std::map<std::string, int> covered;
  std::set<std::string> seen;
  for (const auto& r : rows) {
    const std::string where = label + ":" + std::to_string(r.line) + ": `" + r.key + "`";
    if (!seen.insert(r.key).second) problems.push_back(where + ": documented twice");
    int matched = 0;
    for (const auto& s : schema) {
      const std::string k = s["key"].get<std::string>();
      if (!key_matches(r.key, k)) continue;
      ++matched;
      covered[k]++;
      if (r.type != s["type"].get<std::string>())
        problems.push_back(where + ": type '" + r.type + "', but " + k + " is '" + s["type"].get<std::string>() + "'");
      if (r.def != s["default"].dump())
        problems.push_back(where + ": default `" + r.def + "`, but " + k + "'s default is `" + s["default"].dump() + "`");
    }
    if (matched == 0) problems.push_back(where + ": no such config key (`subliminal schema` lists them)");
  }
  for (const auto& s : schema) {
    const std::string k = s["key"].get<std::string>();
    if (!covered.count(k)) problems.push_back(label + ": config key `" + k + "` is not in the reference");
    else if (covered[k] > 1) problems.push_back(label + ": config key `" + k + "` is documented by " + std::to_string(covered[k]) + " rows");
  }
  return problems;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

const fs::path kRoot = testutil::source_dir();

}  // namespace

// GitHub's slugs for headings of this repository's kind (the anchors GitHub renders for them).
TEST(Docs, GithubSlugs) {
  EXPECT_EQ(github_slug("The MNIST demonstration (experiment `mnist_aux`)"), "the-mnist-demonstration-experiment-mnist_aux");
  EXPECT_EQ(github_slug("Where the trait hides: signal maps, interventions, audit"), "where-the-trait-hides-signal-maps-interventions-audit");
  EXPECT_EQ(github_slug("LibTorch 2.13 (wheel) against 1.13 (Debian 12)"), "libtorch-213-wheel-against-113-debian-12");
  EXPECT_EQ(github_slug("Results — owl × numbers"), "results--owl--numbers");
  EXPECT_EQ(github_slug("See [the guide](docs/x.md)"), "see-the-guide");
  const auto a = anchors_of("# A\n## A\n```\n# not a heading\n```\n<a id=\"here\"></a>\n");
  EXPECT_EQ(a, (std::set<std::string>{"a", "a-1", "here"}));
}

TEST(Docs, EveryRelativeLinkAndAnchorResolves) {
  std::vector<std::string> problems;
  size_t links = 0;
  for (const auto& f : markdown_files(kRoot)) {
    const std::string text = read(f);
    links += links_of(text).size();
    for (auto& p : link_problems(f, text)) problems.push_back(p);
  }
  EXPECT_GT(links, 100u) << "the link scan found almost nothing: is it reading the files?";
  EXPECT_TRUE(problems.empty()) << joined(problems);
}

TEST(Docs, LinkCheckCatchesABrokenFileAndAnchor) {
  const fs::path readme = kRoot / "README.md";
  auto p = link_problems(readme, "see [guide](docs/no-such-page.md) and [x](docs/claims.md#no-such-heading) and [ok](docs/claims.md)\n");
  ASSERT_EQ(p.size(), 2u) << joined(p);
  EXPECT_NE(p[0].find("no-such-page.md does not exist"), std::string::npos) << p[0];
  EXPECT_NE(p[1].find("#no-such-heading"), std::string::npos) << p[1];
  EXPECT_TRUE(link_problems(readme, "`[not a link](nowhere.md)`\n```\n[nor this](nowhere.md)\n```\n").empty());
}

TEST(Docs, QuickStartAndGettingStartedCommandsParse) {
  const std::string readme = read(kRoot / "README.md");
  const std::string qs = readme_quick_start(readme);
  ASSERT_FALSE(qs.empty()) << "README.md has no '## Quick start' section";
  std::vector<std::string> problems;
  size_t n_readme = 0, n_guide = 0;
  for (const auto& c : check_commands("README.md (quick start)", qs)) {
    ++n_readme;
    if (!c.problem.empty()) problems.push_back(c.where + ": " + c.command + "\n    " + c.problem);
  }
  for (const auto& c : check_commands("docs/getting-started.md", read(kRoot / "docs" / "getting-started.md"))) {
    ++n_guide;
    if (!c.problem.empty()) problems.push_back(c.where + ": " + c.command + "\n    " + c.problem);
  }
  EXPECT_GE(n_readme, 3u) << "the README's quick start shows fewer than 3 commands";
  EXPECT_GE(n_guide, 5u) << "docs/getting-started.md shows fewer than 5 commands";
  EXPECT_TRUE(problems.empty()) << joined(problems);
}

TEST(Docs, CommandCheckCatchesAWrongOptionConfigAndScript) {
  const auto r = check_commands("t", "```sh\n"
                                     "build/subliminal sample --model m --promt hi   # misspelled option\n"
                                     "build/subliminal run configs/no_such.json\n"
                                     "build/subliminal run configs/default.json --set dataset.no_such_key=1\n"
                                     "scripts/no_such.sh\n"
                                     "build/subliminal validate configs/default.json && build/subliminal sample --model m --prompt hi\n"
                                     "```\n");
  ASSERT_EQ(r.size(), 6u);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(r[i].problem.empty()) << r[i].command;
  EXPECT_TRUE(r[4].problem.empty()) << r[4].problem;
  EXPECT_TRUE(r[5].problem.empty()) << r[5].problem;
  EXPECT_NE(r[2].problem.find("no_such_key"), std::string::npos) << r[2].problem;
}

TEST(Docs, ConfigurationReferenceMatchesTheSchema) {
  const json schema = subliminal::config::config_schema();
  ASSERT_GT(schema.size(), 100u);
  const std::string text = read(kRoot / "docs" / "configuration.md");
  EXPECT_GT(reference_rows(text).size(), 50u);
  const auto p = reference_problems("docs/configuration.md", text, schema);
  EXPECT_TRUE(p.empty()) << joined(p);
}

TEST(Docs, ConfigurationReferenceCheckCatchesMissingUnknownAndWrongDefault) {
  const json schema = json::parse(R"([{"key":"a.x","type":"integer","default":1},{"key":"b.train.lr","type":"number","default":0.1},
                                      {"key":"c.train.lr","type":"number","default":0.2},{"key":"a.y","type":"string","default":""}])");
  const std::string good = "| key | type | default | meaning |\n|---|---|---|---|\n| `a.x` | integer | `1` | m |\n"
                           "| `b.train.lr` | number | `0.1` | m |\n| `c.train.lr` | number | `0.2` | m |\n| `a.y` | string | `\"\"` | m |\n";
  EXPECT_TRUE(reference_problems("t", good, schema).empty()) << joined(reference_problems("t", good, schema));
  // a wildcard over keys whose defaults differ, a key the schema lacks, a missing key, a wrong default
  const std::string bad = "| `a.x` | integer | `2` | m |\n| `*.train.lr` | number | `0.1` | m |\n| `a.z` | string | `\"\"` | m |\n";
  const auto p = reference_problems("t", bad, schema);
  const std::string all = joined(p);
  EXPECT_NE(all.find("`a.x`: default `2`"), std::string::npos) << all;
  EXPECT_NE(all.find("c.train.lr's default is `0.2`"), std::string::npos) << all;
  EXPECT_NE(all.find("`a.z`: no such config key"), std::string::npos) << all;
  EXPECT_NE(all.find("`a.y` is not in the reference"), std::string::npos) << all;
}

// docs/results/ and the README's results snippet are what the committed artifacts render.
TEST(Docs, ResultsPagesAreWhatTheArtifactsRender) {
  const auto r = testutil::run_cli("results " + (kRoot / "docs" / "results" / "index.json").string() + " --check");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("files as their artifacts render them"), std::string::npos) << r.out;
}

TEST(Docs, ResultsCheckCatchesAPageThatDriftedFromItsArtifact) {
  const fs::path dir = testutil::temp_dir("results_drift");
  const fs::path run = kRoot / "docs" / "evidence" / "2026-12-06-inference" / "default" / "after";
  fs::create_directories(dir / "run");
  json rep = json::parse(read(run / "report.json"));
  const double mean = rep["stages"]["summary"]["arms"]["treatment"]["mean"].get<double>();
  fs::copy_file(run / "manifest.json", dir / "run" / "manifest.json");
  std::ofstream(dir / "run" / "report.json") << rep.dump();
  std::ofstream(dir / "index.json") << R"({"pages": [{"file": "p.md", "title": "T", "entries": [
      {"id": "e", "title": "E", "run": "run", "machine": "m"}]}]})";
  ASSERT_EQ(testutil::run_cli("results " + (dir / "index.json").string()).code, 0);
  const std::string page = read(dir / "p.md");
  EXPECT_NE(page.find(fmt::format("| treatment | 5 | yes | {:.1f}%", 100 * mean)), std::string::npos) << page;
  EXPECT_EQ(testutil::run_cli("results " + (dir / "index.json").string() + " --check").code, 0);
  // the artifact changes (a re-made summary): the committed page no longer matches it
  rep["stages"]["summary"]["arms"]["treatment"]["mean"] = mean + 0.05;
  std::ofstream(dir / "run" / "report.json") << rep.dump();
  const auto r = testutil::run_cli("results " + (dir / "index.json").string() + " --check");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("p.md: differs from what the artifacts render"), std::string::npos) << r.out;
  // an index entry without its machine: a config error naming the JSON path
  std::ofstream(dir / "index.json") << R"({"pages": [{"file": "p.md", "title": "T", "entries": [{"id": "e", "title": "E", "run": "run"}]}]})";
  const auto bad = testutil::run_cli("results " + (dir / "index.json").string() + " --check");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("$.pages[0].entries[0].machine"), std::string::npos) << bad.out;
  fs::remove_all(dir);
}
