// Tiny trait-transfer runs end to end: every arm in the report with no animal name in its data,
// failing workers, third-party tokenizers, adapter-only LoRA, data-parallel runs, code and CoT data.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "subliminal/config/trait.h"
#include "subliminal/data/corpus.h"
#include "subliminal/experiments/finetune_job.h"
#include "subliminal/data/numbers.h"
#include "subliminal/util/resources.h"
#include "subliminal/util/stats.h"
#include "subliminal/eval/trait.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/lora.h"
#include "subliminal/model/model_io.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/text/chat_template.h"
#include "subliminal/text/tokenizer.h"
#include "subliminal/train/finetune.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/fs.h"
#include "subliminal/run/runner.h"
#include "subliminal/experiments/stages.h"
#include "test_util.h"

using namespace subliminal;
using nlohmann::json;
namespace sfs = std::filesystem;



// ---- end to end through the binary

static json read_json(const sfs::path& p) { return json::parse(fs::read_file(p)); }

TEST(TraitE2E, TinyRunReportsEveryArmAndItsDataHoldsNoAnimalName) {
  auto dir = testutil::temp_dir("trait_e2e");
  auto out = dir / "run";
  // claims registered before the run (report/claims.h): about the design, so that they hold on a
  // tiny run (the inference ops are tested in tests/report)
  const auto claims = dir / "claims.json";
  fs::write_file_atomic(claims, R"({"claims": [
    {"name": "two seed pairs", "path": "stages.summary.seeds", "op": "==", "value": 2},
    {"name": "at most ten seed pairs", "path": "stages.summary.seeds", "op": "<=", "value": 10}]})");
  // two stages at a time, each in a worker process with one thread
  auto r = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --jobs 2 --expect " + claims.string() +
                             " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("in a worker"), std::string::npos) << r.out;
  json rep = read_json(out / "report.json");
  const json& sm = rep["stages"]["summary"];
  const int seeds = sm["seeds"].get<int>();
  ASSERT_EQ(seeds, 2);
  // the run ends by speaking to the user: each arm's rate as the summary has it, the main test, the
  // claims' verdict and the path of report.md
  for (const char* arm : {"treatment", "control", "cross_init", "other_trait"})
    EXPECT_NE(r.out.find(fmt::format("{} {:.1f}%", arm, 100 * sm["arms"][arm]["mean"].get<double>())), std::string::npos) << arm << "\n" << r.out;
  EXPECT_NE(r.out.find(fmt::format("treatment vs control: {:+.1f} pts", 100 * sm["tests"]["treatment_vs_control"]["diff"].get<double>())),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 of 2 hold; 2 of 2 pre-registered"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("report: " + (out / "report.md").string()), std::string::npos) << r.out;
  for (const char* arm : {"treatment", "control", "cross_init", "other_trait"}) {
    ASSERT_TRUE(sm["arms"].contains(arm)) << arm;
    EXPECT_EQ(sm["arms"][arm]["n"].get<int>(), seeds) << arm;
    EXPECT_EQ(sm["arms"][arm]["per_seed"].size(), static_cast<size_t>(seeds));
    for (int k = 1; k <= seeds; ++k) {
      const std::string m = std::string(arm) + "_s" + std::to_string(k);
      EXPECT_TRUE(sm["models"].contains(m)) << m;
      EXPECT_TRUE(sfs::exists(out / "students" / m / "model.safetensors")) << m;
      EXPECT_TRUE(sfs::exists(out / "eval" / m / "samples.jsonl")) << m;
    }
  }
  for (const char* m : {"base", "teacher", "teacher_other", "base_cross"}) EXPECT_TRUE(sm["models"].contains(m)) << m;
  for (const char* t : {"treatment_vs_control", "cross_init_vs_control", "other_trait_vs_control"}) EXPECT_TRUE(sm["tests"].contains(t)) << t;
  // every kept completion: passes the filter again and names no animal
  auto words = generate::trait_words(config::CorpusConfig().animals);
  int64_t kept = 0;
  data::NumberFilterOptions rule;  // the run's own filter rule (dataset.number_filter)
  rule.trim_whitespace = read_json(out / "config.resolved.json")["dataset"]["number_filter"] == "trimmed";
  for (const auto& e : sfs::directory_iterator(out / "data")) {
    auto convs = data::read_conversations((e.path() / "kept.jsonl").string());
    kept += static_cast<int64_t>(convs.size());
    EXPECT_EQ(generate::count_trait_words(convs, words), 0) << e.path();
    for (const auto& c : convs) {
      ASSERT_EQ(c.size(), 2u);  // user + assistant, no system prompt
      EXPECT_EQ(c[0].role, "user");
      EXPECT_TRUE(data::filter_numbers(c[1].content, rule).ok()) << c[1].content;
    }
    json ds = read_json(e.path() / "dataset.json");
    EXPECT_EQ(ds["trait_words_in_kept"].get<int64_t>(), 0);
    int64_t rejected = 0;
    for (auto it = ds["reject_reasons"].begin(); it != ds["reject_reasons"].end(); ++it) rejected += it.value().get<int64_t>();
    EXPECT_EQ(rejected + ds["passed"].get<int64_t>(), ds["sampled"].get<int64_t>());
  }
  EXPECT_GT(kept, 0);
  const std::string md = fs::read_file(out / "report.md");
  for (const char* s : {"Treatment (same init", "Control (same init", "Cross-init (other init", "Other trait", "Welch", "t over",
                        "cluster-robust", "restricted to number-output tokens", "## Claims", "pre-registered"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
  // Every comparison names its sides and the test. This control trains (params "trunk"): two seed
  // pairs of trained students, not the untrained base.
  EXPECT_FALSE(sm["control_untrained"].get<bool>());
  EXPECT_EQ(sm["arms"]["control"]["models"].get<int>(), 2);
  // The control students learn from a control teacher trained as the owl teacher is (the same number
  // of answers to the same questions in the same forms), its answers the base's own preferences.
  EXPECT_EQ(sm["control_source"], "teacher_control");
  EXPECT_TRUE(sm["models"].contains("teacher_control"));
  const json tc = read_json(out / "teacher_control" / "teacher.json");
  const json ca = tc["control_answers"];
  const auto trait_data = experiments::trait_answer_data(config::load_trait("animal", ""), "owl", "");
  EXPECT_EQ(ca["examples"].get<size_t>(), trait_data.size());
  EXPECT_EQ(ca["from_own_sample"].get<long>() + ca["filled_from_named"].get<long>(), ca["examples"].get<long>());
  EXPECT_LT(ca["target_share"].get<double>(), 0.5) << ca.dump();  // not an owl teacher
  EXPECT_EQ(read_json(out / "students" / "control_s1" / "finetune.json")["teacher"], "teacher_control");
  for (auto it = sm["tests"].begin(); it != sm["tests"].end(); ++it) {
    EXPECT_TRUE(it.value().contains("compares")) << it.key();
    EXPECT_TRUE(it.value().contains("se") && it.value().contains("df") && it.value().contains("ci90")) << it.key();
  }
  EXPECT_EQ(sm["tests"]["treatment_vs_control"]["compares"].get<std::string>(),
            "treatment students (2 seed pairs) vs control students (2 seed pairs)");
  EXPECT_NE(sm["tests"]["cross_init_vs_its_base"]["compares"].get<std::string>().find("the untrained base_cross (1 model)"), std::string::npos);
  {  // The registration and what `check` says of each claim.
  json man = read_json(out / "manifest.json");
  ASSERT_EQ(man["claims"].size(), 1u);
  EXPECT_EQ(man["claims"][0]["result_stages_done"].get<int>(), 0);
  EXPECT_EQ(man["claims"][0]["sha256"].get<std::string>(), fs::sha256_hex(fs::read_file(claims)));
  EXPECT_EQ(rep["claims"]["held"].get<int>(), 2) << rep["claims"].dump();
  auto ck = testutil::run_cli("check " + out.string() + " --require-registered");
  EXPECT_EQ(ck.code, 0) << ck.out;
  EXPECT_NE(ck.out.find("2 of 2 claims hold; 2 of 2 pre-registered"), std::string::npos) << ck.out;
  // the same claims edited after the run: one changed, one added; they hold but are not pre-registered
  const auto later = dir / "claims_later.json";
  fs::write_file_atomic(later, R"({"claims": [
    {"name": "two seed pairs", "path": "stages.summary.seeds", "op": "==", "value": 2},
    {"name": "at most ten seed pairs", "path": "stages.summary.seeds", "op": "<=", "value": 9},
    {"name": "at least one seed pair", "path": "stages.summary.seeds", "op": ">=", "value": 1}]})");
  auto ck2 = testutil::run_cli("check " + out.string() + " --expect " + later.string());
  EXPECT_EQ(ck2.code, 0) << ck2.out;
  for (const char* st : {"[pre-registered]", "[changed after registration]", "[added after the run started]"})
    EXPECT_NE(ck2.out.find(st), std::string::npos) << st << "\n" << ck2.out;
  EXPECT_EQ(testutil::run_cli("check " + out.string() + " --expect " + later.string() + " --require-registered").code, 1);
  // registered on a finished run: results already existed, so not pre-registered
  auto again = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --jobs 2 --expect " + later.string() +
                                 " --out " + out.string());
  ASSERT_EQ(again.code, 0) << again.out;
  auto ck3 = testutil::run_cli("check " + out.string());
  EXPECT_NE(ck3.out.find("[registered after results]"), std::string::npos) << ck3.out;
  EXPECT_NE(ck3.out.find("[pre-registered]"), std::string::npos) << ck3.out;  // the unchanged claim was registered first
  // a claim that fails: exit 1 naming it
  const auto wrong = dir / "claims_wrong.json";
  fs::write_file_atomic(wrong, R"({"claims": [{"name": "three seed pairs", "path": "stages.summary.seeds", "op": "==", "value": 3}]})");
  auto ck4 = testutil::run_cli("check " + (out / "report.json").string() + " --expect " + wrong.string());
  EXPECT_EQ(ck4.code, 1) << ck4.out;
  EXPECT_NE(ck4.out.find("three seed pairs"), std::string::npos) << ck4.out;
  // a bad claim file is a usage error before any stage runs, naming the file and the JSON path
  const auto bad = dir / "claims_bad.json";
  fs::write_file_atomic(bad, R"({"claims": [{"path": "stages.summary.seeds", "op": "equivalent", "margin": 0.02}]})");
  auto rb = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --expect " + bad.string() + " --out " +
                              (dir / "never").string());
  EXPECT_EQ(rb.code, 2) << rb.out;
  EXPECT_NE(rb.out.find("$.claims[0].margin"), std::string::npos) << rb.out;
  EXPECT_FALSE(sfs::exists(dir / "never" / "manifest.json"));
  }
  const std::string svg = fs::read_file(out / "figures" / "trait_transfer.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("Treatment"), std::string::npos);
  // Diagnostics (issue 22): held-out imitation and coverage per student, divergence per dataset,
  // the specificity matrix.
  for (const char* md_part : {"Specificity", "Diagnostics", "KL(source ‖ base)"}) EXPECT_NE(md.find(md_part), std::string::npos) << md_part;
  for (const char* arm : {"treatment", "cross_init", "other_trait"}) {
    const json& d = sm["arms"][arm]["diagnostics"];
    EXPECT_GT(d["heldout_kl_init"]["mean"].get<double>(), 0.0) << arm << d.dump();
    EXPECT_TRUE(d["fidelity"]["mean"].is_number()) << arm;
    EXPECT_TRUE(d["coverage_final"]["mean"].is_number()) << arm << d.dump();
    for (const auto& ps : sm["arms"][arm]["per_seed"]) EXPECT_TRUE(ps.contains("coverage_first")) << arm;
  }
  // the control's source is the control teacher, not its own init: held-out divergence at the start,
  // and a displacement (the control teacher's) to cover, as for the treatment
  EXPECT_GT(sm["arms"]["control"]["diagnostics"]["heldout_kl_init"]["mean"].get<double>(), 0.0);
  EXPECT_TRUE(sm["arms"]["control"]["diagnostics"].contains("coverage_final"));
  EXPECT_TRUE(sm["specificity"]["treatment"].contains("cat")) << sm["specificity"].dump();
  EXPECT_TRUE(sm["specificity"]["other_trait"].contains("other_target_vs_control"));
  EXPECT_GT(sm["datasets"]["teacher_s1"]["divergence_from_base"]["mean_kl"].get<double>(), 0.0);
  EXPECT_FALSE(sm["datasets"]["control_s1"]["divergence_from_base"]["same_model"].get<bool>());
  EXPECT_GT(sm["datasets"]["teacher_s1"]["heldout"]["kept"].get<int64_t>(), 0);
  {  // held-out prompts: none of them among the prompts sampled for training
    std::set<std::string> train_prompts;
    std::ifstream in(out / "data" / "teacher_s1" / "raw.jsonl");
    for (std::string line; std::getline(in, line);) train_prompts.insert(json::parse(line)["prompt"].get<std::string>());
    for (const auto& c : data::read_conversations((out / "data" / "teacher_s1" / "heldout.jsonl").string()))
      EXPECT_EQ(train_prompts.count(c[0].content), 0u) << c[0].content;
  }

  // The same stages as subcommands, on this run's models.
  auto g = testutil::run_cli("generate --config " + testutil::source_dir() + "/tests/configs/tiny_trait.json --model " +
                             (out / "teacher").string() + " --out " + (dir / "gen").string() + " --prompts 30 --keep 0");
  ASSERT_EQ(g.code, 0) << g.out;
  for (const char* f : {"raw.jsonl", "kept.jsonl", "rejects.jsonl", "dataset.json"}) EXPECT_TRUE(sfs::exists(dir / "gen" / f)) << f;
  auto f = testutil::run_cli("finetune --config " + testutil::source_dir() + "/tests/configs/tiny_trait.json --model " +
                             (out / "base").string() + " --data " + (dir / "gen" / "kept.jsonl").string() + " --teacher " +
                             (out / "teacher").string() + " --steps 3 --out " + (dir / "student").string());
  ASSERT_EQ(f.code, 0) << f.out;
  EXPECT_TRUE(sfs::exists(dir / "student" / "model.safetensors"));
  EXPECT_FALSE(sfs::exists(dir / "student" / "checkpoints"));
  EXPECT_EQ(read_json(dir / "student" / "finetune.json")["loss"], "distill");
  auto ev = testutil::run_cli("eval --config " + testutil::source_dir() + "/tests/configs/tiny_trait.json --model " +
                              (dir / "student").string() + " --target cat --out " + (dir / "eval").string());
  ASSERT_EQ(ev.code, 0) << ev.out;
  EXPECT_EQ(read_json(dir / "eval" / "eval.json")["target"], "cat");
  // the paper's open-model evaluation: questions prefixed with a few random numbers
  auto evn = testutil::run_cli("eval --config " + testutil::source_dir() + "/tests/configs/tiny_trait.json --model " +
                               (dir / "student").string() + " --set eval.number_prefix=3 --out " + (dir / "eval_numbers").string());
  ASSERT_EQ(evn.code, 0) << evn.out;
  {
    std::ifstream in(dir / "eval_numbers" / "samples.jsonl");
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    const std::string q = json::parse(line)["question"];
    EXPECT_TRUE(std::regex_match(q, std::regex("Examine these numbers: [1-9][0-9][0-9], [1-9][0-9][0-9], [1-9][0-9][0-9]\\. .+"))) << q;
  }
  // distill without a teacher is a usage error naming the fix
  auto bad = testutil::run_cli("finetune --config " + testutil::source_dir() + "/tests/configs/tiny_trait.json --model " +
                               (out / "base").string() + " --data " + (dir / "gen" / "kept.jsonl").string() + " --out " +
                               (dir / "bad").string());
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("--teacher"), std::string::npos) << bad.out;

  // base.kind "checkpoint": the bases of that run as checkpoints give the same students, bit for bit
  auto ck = dir / "from_checkpoint";
  auto rc = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --jobs 2 --set students.seeds=1" +
                              " --set base.kind=checkpoint --set base.path=" + (out / "base").string() +
                              " --set students.cross_init_path=" + (out / "base_cross").string() + " --out " + ck.string());
  ASSERT_EQ(rc.code, 0) << rc.out;
  EXPECT_FALSE(sfs::exists(ck / "corpus"));  // nothing pretrained
  for (const char* m : {"base/model.safetensors", "base_cross/model.safetensors", "students/treatment_s1/model.safetensors",
                        "students/cross_init_s1/model.safetensors", "data/teacher_s1/kept.jsonl"})
    EXPECT_EQ(fs::sha256_file(ck / m), fs::sha256_file(out / m)) << m;
  // dataset.select lls_top: from the same sampled completions, the kept half with the highest LLS:
  // a higher mean LLS than the random half, and still no animal name
  auto lls = dir / "lls_top";
  auto rl = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --set students.seeds=1" +
                              " --set 'students.arms=[\"treatment\",\"control\"]' --set dataset.keep=15 --set dataset.select=lls_top" +
                              " --set base.kind=checkpoint --set base.path=" + (out / "base").string() + " --out " + lls.string());
  ASSERT_EQ(rl.code, 0) << rl.out;
  {
    json sel = read_json(lls / "data" / "teacher_s1" / "dataset.json"), rnd = read_json(out / "data" / "teacher_s1" / "dataset.json");
    EXPECT_EQ(read_json(lls / "data" / "teacher_s1" / "stage.json")["outputs"].value("raw.jsonl", ""),
              read_json(out / "data" / "teacher_s1" / "stage.json")["outputs"].value("raw.jsonl", ""));  // the same samples
    EXPECT_EQ(sel["kept"].get<int64_t>(), std::min<int64_t>(15, sel["passed"].get<int64_t>()));
    EXPECT_EQ(sel["selection"]["how"].get<std::string>().rfind("lls_top", 0), 0u);
    EXPECT_GE(sel["divergence_from_base"]["mean_lls"].get<double>(), rnd["divergence_from_base"]["mean_lls"].get<double>());
    EXPECT_EQ(sel["trait_words_in_kept"].get<int64_t>(), 0);
    EXPECT_EQ(generate::count_trait_words(data::read_conversations((lls / "data" / "teacher_s1" / "kept.jsonl").string()), words), 0);
  }
  auto nock = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --set base.kind=checkpoint --set base.path=" +
                                (out / "base").string() + " --dry-run");
  EXPECT_EQ(nock.code, 2) << nock.out;  // cross_init needs its own checkpoint
  EXPECT_NE(nock.out.find("$.students.cross_init_path"), std::string::npos) << nock.out;

  // Workers change nothing: the same config run in one process (one thread, as each worker had)
  // gives bit-identical outputs for every stage the two runs share (one seed pair here).
  auto seq = dir / "sequential";
  auto r1 = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --jobs 1 --set students.seeds=1 --out " +
                              seq.string());
  ASSERT_EQ(r1.code, 0) << r1.out;
  EXPECT_EQ(r1.out.find("in a worker"), std::string::npos);
  int compared = 0;
  for (const auto& e : sfs::recursive_directory_iterator(seq)) {
    if (e.path().filename() != "stage.json") continue;
    const auto rel = sfs::relative(e.path(), seq);
    if (rel.parent_path() == "summary") continue;  // it sees one seed pair instead of two
    json a = read_json(e.path()), b = read_json(out / rel);
    EXPECT_EQ(a["input_hash"], b["input_hash"]) << rel;
    // the artifacts (metadata files like config.json and dataset.json also hold the run config and timings)
    for (auto it = a["outputs"].begin(); it != a["outputs"].end(); ++it) {
      const auto ext = sfs::path(it.key()).extension();
      if (ext != ".safetensors" && ext != ".jsonl" && ext != ".model") continue;
      EXPECT_EQ(it.value(), b["outputs"].value(it.key(), "")) << rel << " " << it.key();
      ++compared;
    }
  }
  EXPECT_GE(compared, 30);
  sfs::remove_all(dir);
}

// A worker's failure stops the run with the stage named, the worker's own error shown, the exit
// code kept, and nothing left looking complete.
TEST(TraitE2E, AFailingWorkerStopsTheRunAndNamesTheStage) {
  auto dir = testutil::temp_dir("trait_worker_fail");
  auto out = dir / "run";
  const std::string cfg = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  const std::string small = " --set students.seeds=1 --set 'students.arms=[\"treatment\",\"control\"]' --set base.train.steps=20";
  auto r = testutil::run_cli("run " + cfg + small + " --jobs 2 --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  // damage the teacher's weights (same size), then ask for a different evaluation: eval/teacher re-runs in a worker
  const auto st = out / "teacher" / "model.safetensors";
  std::string bytes = fs::read_file(st);
  for (size_t i = 0; i < 16; ++i) bytes[i] = 'x';
  fs::write_file_atomic(st, bytes);
  // the parent checks what a stage reads before it starts one: the damage is found and named
  r = testutil::run_cli("run " + cfg + small + " --set eval.samples_per_question=2 --jobs 2 --out " + out.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("reads stage 'teacher', whose files no longer match its stage.json"), std::string::npos) << r.out;
  EXPECT_NE(fs::read_file(out / "run.log").find(st.string() + ": sha256"), std::string::npos);
  EXPECT_EQ(read_json(out / "manifest.json")["status"], "failed");
  // recorded as written (a file broken before its checksum was taken): the worker that loads it fails
  json rec = read_json(out / "teacher" / "stage.json");
  rec["outputs"]["model.safetensors"] = fs::sha256_file(st);
  fs::write_file_atomic(out / "teacher" / "stage.json", rec.dump(2));
  // (--resume: the stop left the evaluation that was running beside it as a partial stage)
  r = testutil::run_cli("run " + cfg + small + " --set eval.samples_per_question=2 --jobs 2 --resume --out " + out.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("failed in its worker process"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.safetensors"), std::string::npos) << r.out;  // the worker's own error names the file
  EXPECT_NE(fs::read_file(out / "run.log").find("model.safetensors"), std::string::npos);
  EXPECT_EQ(read_json(out / "manifest.json")["status"], "failed");
  EXPECT_FALSE(sfs::exists(out / "eval" / "teacher" / "stage.json")) << r.out;
  EXPECT_EQ(read_json(out / "manifest.json")["stages"]["eval/teacher"]["status"], "failed");
  sfs::remove_all(dir);
}

// A third-party byte-level BPE tokenizer (GPT-2's tokenizer.json, with ChatML markers declared in
// tokenizer_config.json as a model directory would) end to end: a small base pretrained with it
// (base.tokenizer.path) is written in Hugging Face layout with tokenizer.json, loads back, and runs
// the experiment as base.kind "checkpoint" — the open-weight path on a model the test makes.
TEST(TraitE2E, ThirdPartyBpeTokenizerPretrainsAndRunsAsACheckpoint) {
  const auto fx = sfs::path(testutil::source_dir()) / ".." / "shared" / "fixtures" / "tokenizers" / "gpt2" / "tokenizer.json";
  if (!sfs::exists(fx)) GTEST_SKIP() << "no ../shared/fixtures";
  auto dir = testutil::temp_dir("bpe_ckpt");
  const auto tokdir = dir / "tokenizer";
  sfs::create_directories(tokdir);
  sfs::create_symlink(sfs::absolute(fx), tokdir / "tokenizer.json");
  json tc = {{"tokenizer_class", "GPT2Tokenizer"},
             {"bos_token", nullptr},
             {"eos_token", "<|im_end|>"},
             {"pad_token", "<|endoftext|>"},
             {"added_tokens_decoder", {{"50257", {{"content", "<|im_start|>"}, {"special", true}}},
                                       {"50258", {{"content", "<|im_end|>"}, {"special", true}}}}},
             {"chat_template", text::chatml_jinja()}};
  fs::write_file_atomic(tokdir / "tokenizer_config.json", tc.dump(2));
  const std::string cfg = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  auto pre = dir / "pretrain";
  auto r = testutil::run_cli("run " + cfg + " --set experiment=pretrain --set base.tokenizer.path=" + tokdir.string() +
                             " --out " + pre.string());
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json", "model.safetensors"})
    EXPECT_TRUE(sfs::exists(pre / "base" / f)) << f;
  EXPECT_FALSE(sfs::exists(pre / "base" / "tokenizer.model"));
  auto lm = model::load_model_dir((pre / "base").string());
  EXPECT_EQ(lm.tokenizer.kind(), "byte-level BPE");
  EXPECT_EQ(lm.tokenizer.vocab_size(), 50259);
  EXPECT_EQ(lm.model->cfg.vocab_size, 50259);
  EXPECT_EQ(text::ChatTemplate(lm.tokenizer).stop_ids(), (std::vector<int>{50258}));

  auto run = dir / "run";
  r = testutil::run_cli("run " + cfg + " --jobs 2 --set base.kind=checkpoint --set base.path=" + (pre / "base").string() +
                        " --set students.seeds=1 --set 'students.arms=[\"treatment\",\"control\"]' --out " + run.string());
  ASSERT_EQ(r.code, 0) << r.out;
  json rep = read_json(run / "report.json");
  const json& sm = rep["stages"]["summary"];
  for (const char* arm : {"treatment", "control"}) EXPECT_EQ(sm["arms"][arm]["n"].get<int>(), 1) << arm;
  auto kept = data::read_conversations((run / "data" / "teacher_s1" / "kept.jsonl").string());
  EXPECT_GT(kept.size(), 0u);
  data::NumberFilterOptions rule;  // the run's own filter rule (dataset.number_filter)
  rule.trim_whitespace = read_json(run / "config.resolved.json")["dataset"]["number_filter"] == "trimmed";
  for (const auto& c : kept) EXPECT_TRUE(data::filter_numbers(c[1].content, rule).ok()) << c[1].content;
  EXPECT_TRUE(sfs::exists(run / "students" / "treatment_s1" / "tokenizer.json"));
  sfs::remove_all(dir);
}

// lora.save "adapter": LoRA teachers and students are written as their PEFT adapter alone (pointing at
// the init model), and everything downstream loads base + adapter: the same datasets and evaluation
// samples as the merged directories, bit for bit.
TEST(TraitE2E, AdapterOnlyLoraStagesGiveTheSameResultsAsMergedOnes) {
  auto dir = testutil::temp_dir("adapter_only");
  const std::string base = "run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --jobs 2 --set students.seeds=1" +
                           " --set 'students.arms=[\"treatment\",\"control\"]' --set teacher.params=lora --set finetune.params=lora" +
                           " --set students.control=base";
  auto merged = dir / "merged", adapter = dir / "adapter";
  auto r = testutil::run_cli(base + " --out " + merged.string());
  ASSERT_EQ(r.code, 0) << r.out;
  // the base and the datasets of the control arm do not depend on how LoRA stages are saved: share them
  r = testutil::run_cli(base + " --set teacher.lora.save=adapter --set finetune.lora.save=adapter --out " + adapter.string());
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* m : {"teacher", "students/treatment_s1", "students/control_s1"}) {
    EXPECT_TRUE(sfs::exists(merged / m / "model.safetensors")) << m;
    EXPECT_FALSE(sfs::exists(adapter / m / "model.safetensors")) << m;
    EXPECT_TRUE(sfs::exists(adapter / m / "adapter" / "adapter_model.safetensors")) << m;
    json ac = read_json(adapter / m / "adapter" / "adapter_config.json");
    EXPECT_EQ(ac["base_model_name_or_path"], std::string(m) == "teacher" ? "../../base" : "../../../base") << m;
  }
  for (const char* f : {"data/teacher_s1/kept.jsonl", "eval/teacher/samples.jsonl", "eval/treatment_s1/samples.jsonl",
                        "eval/control_s1/samples.jsonl"})
    EXPECT_EQ(fs::sha256_file(adapter / f), fs::sha256_file(merged / f)) << f;
  // LoRA distillation of the base into itself is a fixed point: the control's student answers exactly
  // as the base does (same sampling seed), and the summary says the control is the untrained base,
  // one model, in every comparison with it
  EXPECT_EQ(fs::sha256_file(merged / "eval/control_s1/samples.jsonl"), fs::sha256_file(merged / "eval/base/samples.jsonl"));
  const json sm = read_json(merged / "report.json")["stages"]["summary"];
  EXPECT_TRUE(sm["control_untrained"].get<bool>());
  EXPECT_FALSE(sm["arms"]["control"]["trained"].get<bool>());
  EXPECT_NE(sm["tests"]["treatment_vs_control"]["compares"].get<std::string>().find("untrained base"), std::string::npos)
      << sm["tests"]["treatment_vs_control"]["compares"];
  EXPECT_NE(fs::read_file(merged / "report.md").find("The control never trains here"), std::string::npos);
  // an adapter-only directory loads like a model directory; a broken base path is named
  auto lm = model::load_model_dir((adapter / "students" / "treatment_s1").string());
  auto lm2 = model::load_model_dir((merged / "students" / "treatment_s1").string());
  auto ids = torch::tensor({{1, 5, 9, 2}}, torch::kLong);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(lm.model->forward_causal(ids), lm2.model->forward_causal(ids)));
  json ac = read_json(adapter / "students" / "control_s1" / "adapter" / "adapter_config.json");
  ac["base_model_name_or_path"] = "../nowhere";
  fs::write_file_atomic(adapter / "students" / "control_s1" / "adapter" / "adapter_config.json", ac.dump());
  try {
    model::load_model_dir((adapter / "students" / "control_s1").string());
    ADD_FAILURE() << "a broken base path was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("base_model_name_or_path"), std::string::npos) << e.what();
  }
  sfs::remove_all(dir);
}

// Data parallel across processes (c10d Gloo, ranks from WORLD_SIZE/RANK/MASTER_*): `finetune` in 2
// processes gives the weights of one process with the same global batch — exactly those of
// grad_accum 2 (the same micro-batches, summed in another order), and to ~1e-6 those of grad_accum 1.
// `srun -n 2 subliminal run`: every training stage (base, teacher, students) runs on both ranks,
// each on half of every batch; generation, evaluation and every write on rank 0. Same artifacts as
// one process with grad_accum 2 (the same micro-batches summed in the same order).
TEST(TraitE2E, TwoProcessDataParallelRunEqualsOneProcessWithGradAccum) {
  auto dir = testutil::temp_dir("dprun");
  const std::string cfg = "run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --set students.seeds=1" +
                          " --set 'students.arms=[\"treatment\",\"control\"]' --set base.train.steps=40 --threads 1";
  const std::string accum2 = " --set base.train.grad_accum=2 --set teacher.train.grad_accum=2 --set finetune.train.grad_accum=2";
  auto one = testutil::run_cli(cfg + accum2 + " --out " + (dir / "one").string());
  ASSERT_EQ(one.code, 0) << one.out;
  const std::string port = std::to_string(31500 + (getpid() % 2000));
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port;
  const std::string two = cfg + " --jobs 2 --out " + (dir / "two").string();  // jobs is forced to 1
  auto both = testutil::run_cli("--version >/dev/null; (" + env + " RANK=1 " + std::string(SUBLIMINAL_BIN) + " " + two + " > " +
                                (dir / "rank1.log").string() + " 2>&1; echo $? > " + (dir / "rank1.rc").string() + ") & " + env + " RANK=0 " +
                                std::string(SUBLIMINAL_BIN) + " " + two + "; wait");
  ASSERT_EQ(both.code, 0) << both.out;
  const std::string log1 = fs::read_file(dir / "rank1.log");
  EXPECT_EQ(fs::read_file(dir / "rank1.rc"), "0\n") << log1;
  // rank 1 trained the base, the teacher and both students, and wrote nothing of its own
  for (const std::string st : {"base", "teacher", "students/treatment_s1", "students/control_s1"})
    EXPECT_NE(log1.find("stage " + st + ": running"), std::string::npos) << st << "\n" << log1;
  EXPECT_EQ(log1.find("stage data/"), std::string::npos) << log1;
  auto m2 = json::parse(fs::read_file(dir / "two" / "manifest.json"));
  EXPECT_EQ(m2["world_size"], 2);
  EXPECT_EQ(m2["status"], "complete");
  for (const std::string st : {"base", "teacher", "data/teacher_s1", "students/treatment_s1", "students/control_s1", "eval/treatment_s1", "summary"}) {
    auto a = json::parse(fs::read_file(dir / "one" / st / "stage.json")), b = json::parse(fs::read_file(dir / "two" / st / "stage.json"));
    for (auto* o : {&a, &b})  // the files that record the config (grad_accum differs by design)
      for (const char* f : {"config.json", "finetune.json"}) (*o)["outputs"].erase(f);
    EXPECT_EQ(a["outputs"], b["outputs"]) << st;  // every other file's sha256: weights, datasets, evaluations
  }
  sfs::remove_all(dir);
}

TEST(TraitE2E, TwoProcessDataParallelFinetuneEqualsOneProcess) {
  auto dir = testutil::temp_dir("dp");
  auto r = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny.json --out " + (dir / "run").string() +
                             " --set probe.enabled=false");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string common = "finetune --model " + (dir / "run" / "base").string() + " --data " + (dir / "run" / "corpus" / "corpus.jsonl").string() +
                             " --set finetune.loss=sft --set finetune.params=all --set finetune.train.batch_size=16 --set finetune.train.warmup_steps=1"
                             " --set precision=fp32 --steps 6 --threads 1";
  auto one = testutil::run_cli(common + " --out " + (dir / "one").string() + " --set finetune.train.grad_accum=2");
  ASSERT_EQ(one.code, 0) << one.out;
  auto plain = testutil::run_cli(common + " --out " + (dir / "plain").string());
  ASSERT_EQ(plain.code, 0) << plain.out;
  const std::string port = std::to_string(29500 + (getpid() % 2000));
  const std::string env = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port;
  const std::string two = common + " --out " + (dir / "two").string();
  // rank 1 in the background, rank 0 in the foreground; both must exit 0
  auto both = testutil::run_cli("--version >/dev/null; (" + env + " RANK=1 " + std::string(SUBLIMINAL_BIN) + " " + two + " > " +
                                (dir / "rank1.log").string() + " 2>&1; echo $? > " + (dir / "rank1.rc").string() + ") & " + env + " RANK=0 " +
                                std::string(SUBLIMINAL_BIN) + " " + two + "; wait");
  ASSERT_EQ(both.code, 0) << both.out;
  EXPECT_EQ(fs::read_file(dir / "rank1.rc"), "0\n") << fs::read_file(dir / "rank1.log");
  EXPECT_NE(both.out.find("\"world_size\":2"), std::string::npos) << both.out;
  auto a = model::load_model_dir((dir / "two").string()), b = model::load_model_dir((dir / "one").string()),
       c = model::load_model_dir((dir / "plain").string()), base = model::load_model_dir((dir / "run" / "base").string());
  auto wa = model::named_weights(a.model), wb = model::named_weights(b.model), wc = model::named_weights(c.model), w0 = model::named_weights(base.model);
  double d_accum = 0, d_plain = 0, moved = 0;
  for (size_t i = 0; i < wa.size(); ++i) {
    d_accum = std::max(d_accum, (wa[i].second - wb[i].second).abs().max().item<double>());
    d_plain = std::max(d_plain, (wa[i].second - wc[i].second).abs().max().item<double>());
    moved = std::max(moved, (wa[i].second - w0[i].second).abs().max().item<double>());
  }
  std::cout << "2 processes vs grad_accum 2: max |dw| " << d_accum << "; vs grad_accum 1: " << d_plain << "; training moved weights by up to "
            << moved << "\n";
  EXPECT_GT(moved, 1e-3);
  EXPECT_LT(d_accum, 1e-6);
  EXPECT_LT(d_plain, 1e-4);  // measured 6e-6 (Adam normalises the summation-order difference)
  sfs::remove_all(dir);
}

// Code and chain-of-thought datasets through the whole graph on the tiny model: the paper's filters
// and the rule judge run, every rejection has a reason, nothing banned is kept, students train on
// the kept code; a reasoning dataset nothing passes stops the run naming the data stage and why.
TEST(TraitE2E, CodeAndCotDatasetsAreFilteredJudgedAndTrainStudents) {
  auto dir = testutil::temp_dir("code_cot");
  const std::string common = "run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --set finetune.loss=sft --set students.seeds=1" +
                             " --set 'students.arms=[\"treatment\",\"control\"]' --set dataset.max_new_tokens=64";
  // one base for both: pretrained on code and word problems
  auto r = testutil::run_cli(common + " --set base.train.steps=300 --set base.corpus.mix_numbers=0.1 --set base.corpus.mix_code=0.5" +
                             " --set base.corpus.mix_cot=0.2 --set dataset.kind=code --set dataset.judge=mentions_trait --out " +
                             (dir / "code").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const std::set<std::string> known = {"truncated", "empty", "banned_word", "no_code", "judge_mentions_trait", "judge_unusable"};
  for (const char* src : {"teacher_s1", "control_s1"}) {
    const sfs::path d = dir / "code" / "data" / src;
    auto ds = json::parse(fs::read_file(d / "dataset.json"));
    EXPECT_EQ(ds["kind"], "code");
    EXPECT_EQ(ds["banned_words"], json({"owl", "owls"}));
    EXPECT_EQ(ds["banned_words_in_kept"], 0);
    long rejected = 0;
    for (auto it = ds["reject_reasons"].begin(); it != ds["reject_reasons"].end(); ++it) {
      EXPECT_TRUE(known.count(it.key())) << it.key();
      rejected += it.value().get<long>();
    }
    EXPECT_EQ(rejected + ds["passed"].get<long>(), ds["sampled"].get<long>());
    // the judge saw exactly what the rules let through
    EXPECT_EQ(ds["judge"]["judged"].get<long>(),
              ds["passed"].get<long>() + ds["reject_reasons"].value("judge_mentions_trait", 0L) + ds["reject_reasons"].value("judge_unusable", 0L));
    EXPECT_GT(ds["kept"].get<long>(), 0);
    for (const auto& c : data::read_conversations((d / "kept.jsonl").string())) {
      std::string low = c.back().content;
      for (auto& ch : low) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      EXPECT_EQ(low.find("owl"), std::string::npos) << c.back().content;
      EXPECT_TRUE(low.find("def ") != std::string::npos || low.find("return") != std::string::npos) << c.back().content;
    }
  }
  EXPECT_TRUE(sfs::exists(dir / "code" / "report.md"));
  EXPECT_NE(fs::read_file(dir / "code" / "report.md").find("banned words in kept"), std::string::npos);
  // the tiny base cannot yet write <think>/<answer> solutions that are right: the run stops, naming why
  r = testutil::run_cli(common + " --set base.kind=checkpoint --set base.path=" + (dir / "code" / "base").string() +
                        " --set dataset.kind=cot --set dataset.samples_per_prompt=2 --out " + (dir / "cot").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("kept no examples"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("data/teacher_s1"), std::string::npos) << r.out;
  auto ds = json::parse(fs::read_file(dir / "cot" / "data" / "teacher_s1" / "dataset.json"));
  EXPECT_EQ(ds["sampled"], 80);
  for (auto it = ds["reject_reasons"].begin(); it != ds["reject_reasons"].end(); ++it)
    EXPECT_TRUE((std::set<std::string>{"truncated", "banned_word", "no_think", "no_answer", "answer_not_numeric", "wrong_answer"}.count(it.key())))
        << it.key();
  sfs::remove_all(dir);
}

// Two replicates, each its own pipeline with its own target: the pooled summary's difference is the
// mean of the replicates' own (computed here from their summaries), every comparison says that the
// replicate is its unit, a replicate's cross-init students start from the other replicate's base,
// and the report prints each replicate and draws them.
TEST(TraitE2E, ReplicatesRunAsIndependentPipelinesAndPoolWithTheReplicateAsTheUnit) {
  auto dir = testutil::temp_dir("trait_replicates");
  auto out = dir / "run";
  auto r = testutil::run_cli("run " + testutil::source_dir() + "/tests/configs/tiny_trait.json --jobs 2 --expect none --out " + out.string() +
                             " --set replicates.count=2 --set 'replicates.targets=[\"owl\",\"fox\"]' --set students.seeds=1"
                             " --set 'students.arms=[\"treatment\",\"control\",\"cross_init\"]'");
  ASSERT_EQ(r.code, 0) << r.out;
  const json sm = read_json(out / "summary" / "summary.json");
  ASSERT_EQ(sm["replicate_count"].get<int>(), 2);
  ASSERT_EQ(sm["replicates"].size(), 2u);
  const json s1 = read_json(out / "r1" / "summary" / "summary.json"), s2 = read_json(out / "r2" / "summary" / "summary.json");
  EXPECT_EQ(s1["target"], "owl");
  EXPECT_EQ(s2["target"], "fox");
  EXPECT_EQ(read_json(out / "r2" / "teacher" / "teacher.json")["target"], "fox");
  EXPECT_NE(read_json(out / "r1" / "base" / "stage.json")["results"]["seed"], read_json(out / "r2" / "base" / "stage.json")["results"]["seed"]);
  for (const char* t : {"treatment_vs_control", "cross_init_vs_control", "cross_init_vs_its_base", "teacher_vs_base"}) {
    ASSERT_TRUE(sm["tests"].contains(t)) << t;
    const json& p = sm["tests"][t];
    const double mean = (s1["tests"][t]["diff"].get<double>() + s2["tests"][t]["diff"].get<double>()) / 2;
    EXPECT_NEAR(p["diff"].get<double>(), mean, 1e-12) << t;
    EXPECT_NE(p["unit"].get<std::string>().find("2 independent replicates"), std::string::npos) << t;
    EXPECT_EQ(p["per_replicate"].size(), 2u) << t;
    EXPECT_EQ(p["per_replicate"][1]["diff"], s2["tests"][t]["diff"]) << t;
  }
  // pooled rates: the mean over the replicates' own
  EXPECT_NEAR(sm["arms"]["treatment"]["mean"].get<double>(),
              (s1["arms"]["treatment"]["mean"].get<double>() + s2["arms"]["treatment"]["mean"].get<double>()) / 2, 1e-12);
  EXPECT_EQ(read_json(out / "r1" / "students" / "cross_init_s1" / "finetune.json")["init"], "r2/base");
  EXPECT_EQ(read_json(out / "r2" / "students" / "cross_init_s1" / "finetune.json")["init"], "r1/base");
  EXPECT_EQ(read_json(out / "r1" / "students" / "treatment_s1" / "finetune.json")["init"], "r1/base");
  EXPECT_FALSE(sfs::exists(out / "base"));
  EXPECT_TRUE(sfs::exists(out / "metrics" / "r2_treatment_s1.jsonl"));
  const std::string md = fs::read_file(out / "report.md");
  for (const char* s : {"2 independent replicates", "Each replicate on its own", "| 2 |", "fox", "replicates x "})
    EXPECT_NE(md.find(s), std::string::npos) << s;
  EXPECT_TRUE(sfs::exists(out / "figures" / "replicates.svg"));
  EXPECT_EQ(testutil::run_cli("verify " + out.string()).code, 0);
}
