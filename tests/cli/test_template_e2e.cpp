// `subliminal template` against Python's jinja2 on the real chat templates llama.cpp collects
// (scripts/jinja_engine.sh fetches them with the engine), and its usage errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "subliminal/util/fs.h"
#include "test_util.h"

namespace sfs = std::filesystem;

namespace {
sfs::path templates_dir() { return sfs::path(testutil::source_dir()) / ".cache" / "third_party" / "llama.cpp-jinja" / "models" / "templates"; }
bool have_jinja2() { return std::system("python3 -c 'import jinja2' >/dev/null 2>&1") == 0; }
}  // namespace

// Every template x 6 conversations (with and without system, multi-turn, generation prompt, unicode):
// byte-identical to jinja2 configured as transformers configures it, or refused by both; at least 30
// templates render identically (the issue's bar).
TEST(TemplateE2E, RealTemplatesRenderAsJinja2RendersThem) {
  if (!sfs::is_directory(templates_dir())) GTEST_SKIP() << "no " << templates_dir() << " (scripts/jinja_engine.sh)";
  if (!have_jinja2()) GTEST_SKIP() << "python3 has no jinja2 (Debian python3-jinja2, installed by scripts/setup.sh)";
  const auto dir = testutil::temp_dir("templates");
  const auto report = dir / "report.json";
  const std::string cmd = "python3 " + (sfs::path(testutil::source_dir()) / "tests" / "templates" / "compare_templates.py").string() +
                          " --bin " + SUBLIMINAL_BIN + " --templates " + templates_dir().string() + " --reference jinja2 --out " +
                          report.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(sfs::exists(report)) << cmd;
  const auto r = nlohmann::json::parse(subliminal::fs::read_file(report));
  EXPECT_EQ(WEXITSTATUS(rc), 0);
  EXPECT_GE(r["templates"].get<int>(), 30);
  EXPECT_GE(r["templates_matching_with_a_rendering"].get<int>(), 30);
  EXPECT_EQ(r["mismatches"].size(), 0u) << r["mismatches"].dump(1);
}

TEST(TemplateE2E, RendersAFileAndRefusesBadInput) {
  const auto dir = testutil::temp_dir("template_cli");
  subliminal::fs::write_file_atomic(dir / "t.jinja",
                                    "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}{{ eos_token }}{% endfor %}"
                                    "{% if add_generation_prompt %}<assistant>{% endif %}");
  subliminal::fs::write_file_atomic(dir / "m.json", R"([{"role": "user", "content": "  hi  "}])");
  auto r = testutil::run_cli("template --messages " + (dir / "m.json").string() + " --template " + (dir / "t.jinja").string() +
                                 " --bos '<s>' --eos '</s>' --add-generation-prompt",
                             false);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "<s><user>hi</s><assistant>");
  subliminal::fs::write_file_atomic(dir / "bad.json", R"([{"role": "user", "content": "a"}, {"content": "b"}])");
  r = testutil::run_cli("template --messages " + (dir / "bad.json").string() + " --template " + (dir / "t.jinja").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("bad.json"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("$[1].role"), std::string::npos) << r.out;
  r = testutil::run_cli("template --messages " + (dir / "m.json").string());
  EXPECT_EQ(r.code, 2) << r.out;
}
