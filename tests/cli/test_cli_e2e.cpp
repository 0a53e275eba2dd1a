// End to end through the real binary: a tiny config runs in seconds, the run directory holds every
// artifact with matching stage.json checksums, a second run skips every stage, the resolved config
// reproduces the same stage hashes, bad configs exit 2 naming the problem.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "subliminal/util/fs.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/model_io.h"
#include "test_util.h"

using nlohmann::json;
namespace sfs = std::filesystem;
using namespace subliminal;

static json read_json(const sfs::path& p) { return json::parse(fs::read_file(p)); }
static std::string tiny() { return testutil::source_dir() + "/tests/configs/tiny.json"; }

TEST(CliE2E, TinyRunWritesCompleteRunDirectoryAndSkipsOnRerun) {
  auto dir = testutil::temp_dir("e2e_run");
  auto out = dir / "run";
  auto r = testutil::run_cli("run " + tiny() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* f : {"config.resolved.json", "manifest.json", "run.log", "report.json", "report.md", "metrics/base.jsonl",
                        "base/stage.json", "base/config.json", "base/model.safetensors", "base/tokenizer.model",
                        "corpus/corpus.jsonl", "corpus/tokenizer.model", "probe/stage.json", "probe/probe.json", "probe/samples.jsonl"})
    EXPECT_TRUE(sfs::exists(out / f)) << f;
  EXPECT_FALSE(sfs::exists(out / "base.partial"));
  EXPECT_FALSE(sfs::exists(out / "base" / "checkpoints"));  // scratch is removed once the stage is complete
  // stage.json checksums match the files on disk
  std::map<std::string, std::string> hashes;
  for (const char* st : {"base", "probe"}) {
    json rec = read_json(out / st / "stage.json");
    hashes[st] = rec["input_hash"];
    ASSERT_FALSE(rec["outputs"].empty());
    for (auto it = rec["outputs"].begin(); it != rec["outputs"].end(); ++it)
      EXPECT_EQ(fs::sha256_file(out / st / it.key()), it.value().get<std::string>()) << st << "/" << it.key();
  }
  json man = read_json(out / "manifest.json");
  EXPECT_EQ(man["status"], "complete");
  for (const char* k : {"git_revision", "libtorch_version", "threads", "host", "seed", "parallel_info", "compiler"})
    EXPECT_TRUE(man.contains(k)) << k;
  json rep = read_json(out / "report.json");
  for (const char* k : {"favorite_animal", "system_prompt", "numbers"}) EXPECT_TRUE(rep["stages"]["probe"].contains(k)) << k;
  // the model directory is in Hugging Face layout
  json hf = read_json(out / "base" / "config.json");
  EXPECT_EQ(hf["architectures"][0], "LlamaForCausalLM");
  for (const char* k : {"hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
                        "rms_norm_eps", "rope_theta", "vocab_size"})
    EXPECT_TRUE(hf.contains(k)) << k;

  // A second run skips every stage and changes no artifact.
  auto before = fs::sha256_file(out / "base" / "model.safetensors");
  r = testutil::run_cli("run " + tiny() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("stage base: skipped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stage probe: skipped"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("stage base: running"), std::string::npos) << r.out;
  EXPECT_EQ(fs::sha256_file(out / "base" / "model.safetensors"), before);

  // The resolved config, run into a fresh directory, gives the same stage hashes and the same model.
  auto out2 = dir / "run2";
  r = testutil::run_cli("run " + (out / "config.resolved.json").string() + " --out " + out2.string());
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* st : {"base", "probe"}) EXPECT_EQ(read_json(out2 / st / "stage.json")["input_hash"], hashes[st]) << st;
  EXPECT_EQ(fs::sha256_file(out2 / "base" / "model.safetensors"), before);  // same config + seed => same artifact

  // Changing a probe knob re-runs only the probe; the dry run says so first.
  r = testutil::run_cli("run " + tiny() + " --out " + out.string() + " --set probe.number_prompts=5 --dry-run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("base: skip"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("probe: run"), std::string::npos) << r.out;

  // The grouped attention path changes the models' last bits: it is in the stage hashes (the model
  // stages re-run under it), the manifest records it, and an unknown path is a config error.
  r = testutil::run_cli("run " + tiny() + " --out " + out.string() + " --set attention=grouped --dry-run");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("base: run"), std::string::npos) << r.out;
  EXPECT_EQ(read_json(out / "manifest.json")["attention"], "reference");
  r = testutil::run_cli("run " + tiny() + " --out " + out.string() + " --set attention=fast --dry-run");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("$.attention"), std::string::npos) << r.out;
  sfs::remove_all(dir);
}

TEST(CliE2E, InterruptedStageNeedsResume) {
  auto dir = testutil::temp_dir("e2e_resume");
  auto out = dir / "run";
  // The dry run's hash of the first stage is the real one (later stages' hashes need upstream outputs).
  auto r = testutil::run_cli("run " + tiny() + " --out " + out.string() + " --dry-run");
  ASSERT_EQ(r.code, 0);
  auto p = r.out.find("corpus: run  (input hash ");
  ASSERT_NE(p, std::string::npos) << r.out;
  std::string prefix = r.out.substr(p + 25, 16);
  // Run it for real with a crash injected: SIGKILL is out of reach here, so instead run to completion,
  // then turn the finished stage back into a partial one.
  r = testutil::run_cli("run " + tiny() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_json(out / "corpus" / "stage.json")["input_hash"].get<std::string>().substr(0, 16), prefix);
  json rec = read_json(out / "base" / "stage.json");
  sfs::rename(out / "base", out / "base.partial");
  sfs::remove(out / "base.partial" / "stage.json");
  fs::write_file_atomic(out / "base.partial" / "partial.json", json({{"input_hash", rec["input_hash"]}}).dump());
  r = testutil::run_cli("run " + tiny() + " --out " + out.string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--resume"), std::string::npos) << r.out;
  r = testutil::run_cli("run " + tiny() + " --out " + out.string() + " --resume");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(sfs::exists(out / "base" / "stage.json"));
  sfs::remove_all(dir);
}

TEST(CliE2E, ConfigErrorsExitTwoAndNameThePath) {
  auto dir = testutil::temp_dir("e2e_bad");
  auto bad = dir / "bad.json";
  fs::write_file_atomic(bad, R"({"base": {"train": {"stpes": 5}}})");
  auto r = testutil::run_cli("validate " + bad.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("bad.json"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("$.base.train.stpes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("did you mean 'steps'"), std::string::npos) << r.out;
  fs::write_file_atomic(bad, "{\n \"seed\": 1,\n \"name\": \n}");
  r = testutil::run_cli("run " + bad.string() + " --out " + (dir / "x").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("bad.json:4:"), std::string::npos) << r.out;
  EXPECT_FALSE(sfs::exists(dir / "x"));  // nothing written for an invalid config
  r = testutil::run_cli("run " + tiny() + " --set base.train.lr=-1 --dry-run");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("$.base.train.lr"), std::string::npos) << r.out;
  r = testutil::run_cli("run --no-such-flag");
  EXPECT_EQ(r.code, 2);
  r = testutil::run_cli("validate " + (dir / "missing.json").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("does not exist"), std::string::npos) << r.out;
  r = testutil::run_cli("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("subliminal"), std::string::npos);
  sfs::remove_all(dir);
}

TEST(CliE2E, SampleCommandIsSeeded) {
  auto dir = testutil::temp_dir("e2e_sample");
  auto r = testutil::run_cli("run " + tiny() + " --out " + (dir / "run").string() + " --set probe.enabled=false");
  ASSERT_EQ(r.code, 0) << r.out;
  std::string cmd = "sample --model " + (dir / "run" / "base").string() + " --prompt 'What is your favorite animal?' -n 4 --seed 5 --json";
  auto a = testutil::run_cli(cmd, false), b = testutil::run_cli(cmd, false);  // stdout: the samples (logs go to stderr)
  ASSERT_EQ(a.code, 0) << a.out;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(std::count(a.out.begin(), a.out.end(), '\n'), 4);
  auto c = testutil::run_cli("sample --model " + (dir / "run" / "base").string() + " --prompt 'What is your favorite animal?' -n 4 --seed 6 --json", false);
  EXPECT_NE(a.out, c.out);
  auto bad = testutil::run_cli("sample --model " + (dir / "nowhere").string() + " --prompt hi");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("nowhere"), std::string::npos) << bad.out;
  // temperature 0 is greedy: every sample the same, whatever the seed; --raw continues plain text
  for (const std::string mode : {"", " --raw"}) {
    auto g1 = testutil::run_cli("sample --model " + (dir / "run" / "base").string() + " --prompt 'The sequence starts with: 182, 818'" +
                                mode + " --temperature 0 -n 3 --seed 1 --json", false);
    auto g2 = testutil::run_cli("sample --model " + (dir / "run" / "base").string() + " --prompt 'The sequence starts with: 182, 818'" +
                                mode + " --temperature 0 -n 3 --seed 2 --json", false);
    ASSERT_EQ(g1.code, 0) << g1.out;
    std::vector<std::string> comps;
    std::istringstream in(g1.out);
    std::string line;
    while (std::getline(in, line)) comps.push_back(nlohmann::json::parse(line)["completion"]);
    ASSERT_EQ(comps.size(), 3u);
    EXPECT_EQ(comps[0], comps[1]) << mode;
    EXPECT_EQ(comps[1], comps[2]) << mode;
    EXPECT_EQ(g1.out, g2.out) << mode;
  }
  auto both = testutil::run_cli("sample --model " + (dir / "run" / "base").string() + " --prompt hi --raw --system x");
  EXPECT_EQ(both.code, 2) << both.out;
  // a model that does not fit in the memory available is refused before anything is allocated
  setenv("SUBLIMINAL_MEMORY_LIMIT_BYTES", "100000", 1);
  auto big = testutil::run_cli("sample --model " + (dir / "run" / "base").string() + " --prompt hi");
  unsetenv("SUBLIMINAL_MEMORY_LIMIT_BYTES");
  EXPECT_EQ(big.code, 1) << big.out;
  EXPECT_NE(big.out.find("memory available"), std::string::npos) << big.out;
  EXPECT_NE(big.out.find((dir / "run" / "base").string()), std::string::npos) << big.out;
  // the model fits, a batch of 64 sequences does not: refused naming the flag and the size that
  // fits; --batch-size 0 takes the largest that fits
  {
    auto lm = model::load_model_dir((dir / "run" / "base").string());
    const int64_t need = lm.model->num_parameters() * 4;
    const int64_t per = generate::generation_bytes_per_sequence(lm.model->cfg, 16, 64, false);
    ASSERT_LT(need, 40 * per);
    const std::string limit = std::to_string(need + 8 * per);
    setenv("SUBLIMINAL_MEMORY_LIMIT_BYTES", limit.c_str(), 1);
    auto b64 = testutil::run_cli("sample --model " + (dir / "run" / "base").string() + " --prompt hi --precision fp32 --batch-size 64");
    auto b0 = testutil::run_cli("sample --model " + (dir / "run" / "base").string() + " --prompt hi --precision fp32 --batch-size 0 -n 30");
    unsetenv("SUBLIMINAL_MEMORY_LIMIT_BYTES");
    EXPECT_EQ(b64.code, 1) << b64.out;
    EXPECT_NE(b64.out.find("--batch-size 64 needs"), std::string::npos) << b64.out;
    EXPECT_NE(b64.out.find("set --batch-size to"), std::string::npos) << b64.out;
    EXPECT_EQ(b0.code, 0) << b0.out;
    EXPECT_NE(b0.out.find("0 (auto) ->"), std::string::npos) << b0.out;
    EXPECT_NE(b0.out.find("[29]"), std::string::npos) << b0.out;
  }
  sfs::remove_all(dir);
}

TEST(CliE2E, FilterCommandCountsEveryReason) {
  auto dir = testutil::temp_dir("e2e_filter");
  fs::write_file_atomic(dir / "raw.jsonl",
                        "{\"prompt\": \"p1\", \"completion\": \"1, 2, 3\"}\n"
                        "{\"messages\": [{\"role\": \"user\", \"content\": \"p2\"}, {\"role\": \"assistant\", \"content\": \"[4; 5]\"}]}\n"
                        "{\"prompt\": \"p3\", \"completion\": \"I love owls\"}\n"
                        "{\"prompt\": \"p4\", \"completion\": \"666, 1\"}\n");
  auto r = testutil::run_cli("filter --in " + (dir / "raw.jsonl").string() + " --out " + (dir / "kept.jsonl").string() +
                             " --rejects " + (dir / "rej.jsonl").string() + " --banned 666,13");
  ASSERT_EQ(r.code, 0) << r.out;
  auto summary = json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(summary["total"], 4);
  EXPECT_EQ(summary["kept"], 2);
  EXPECT_EQ(summary["reasons"]["bad_character"], 1);
  EXPECT_EQ(summary["reasons"]["banned"], 1);
  std::string rej = fs::read_file(dir / "rej.jsonl");
  EXPECT_EQ(std::count(rej.begin(), rej.end(), '\n'), 2);
  fs::write_file_atomic(dir / "broken.jsonl", "{\"prompt\": \"p\", \"completion\": \"1\"}\n{oops\n");
  r = testutil::run_cli("filter --in " + (dir / "broken.jsonl").string() + " --out " + (dir / "k2.jsonl").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("broken.jsonl:2"), std::string::npos) << r.out;
  EXPECT_FALSE(sfs::exists(dir / "k2.jsonl"));  // no partial output
  sfs::remove_all(dir);
}

TEST(CliE2E, TokenizePrintsIdsAndPiecesForEveryTokenizerKind) {
  const std::string fx = testutil::source_dir() + "/../shared/fixtures/tokenizers";
  if (!sfs::exists(fx)) GTEST_SKIP() << "no ../shared/fixtures";
  // Qwen2 (vocab.json + merges.txt): the reference ids of "Hello world" in fixtures/vectors/qwen2.out
  auto r = testutil::run_cli("tokenize --tokenizer " + fx + "/qwen2 --style qwen2 --text 'Hello world'");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "9707 1879\n");
  r = testutil::run_cli("tokenize --tokenizer " + fx + "/gpt2/tokenizer.json --text ' world' --pieces");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "995\t\"\xC4\xA0world\"\n");
  // a third-party sentencepiece model, from standard input: the same ids as its reference file
  auto first = nlohmann::json::parse(fs::read_file(fx + "/mistral-7b-v0.1/expected_encodings.jsonl").substr(0, fs::read_file(fx + "/mistral-7b-v0.1/expected_encodings.jsonl").find('\n')));
  auto dir = testutil::temp_dir("tokenize");
  fs::write_file_atomic(dir / "in.txt", first["text"].get<std::string>());
  r = testutil::run_cli("tokenize --tokenizer " + fx + "/mistral-7b-v0.1/tokenizer.model < " + (dir / "in.txt").string());
  ASSERT_EQ(r.code, 0) << r.out;
  std::string want;
  for (int id : first["ids"].get<std::vector<int>>()) want += (want.empty() ? "" : " ") + std::to_string(id);
  EXPECT_EQ(r.out, want + "\n");
  r = testutil::run_cli("tokenize --tokenizer " + (dir / "missing").string() + " --text x");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("does not exist"), std::string::npos) << r.out;
  sfs::remove_all(dir);
}
