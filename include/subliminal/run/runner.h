// The run directory and the stage protocol. A stage reads artifacts of earlier stages and writes
// into `<run>/<name>.partial/`, which is renamed to `<run>/<name>/` with a `stage.json` (input hash,
// output checksums, timings, results) only when complete. A re-run skips stages whose input hash
// matches; an interrupted stage continues from its checkpoints with --resume.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "subliminal/config/config.h"

namespace subliminal::run {

namespace sfs = std::filesystem;
using json = nlohmann::json;

struct RunContext {
  config::RunConfig cfg;
  sfs::path dir;
  bool resume = false;
  int threads = 1;
  std::string command_line;
  std::map<std::string, json> records;  // stage.json of every finished stage, by name
  sfs::path stage_dir(const std::string& name) const { return dir / name; }
  sfs::path metrics_path(const std::string& stage) const { return dir / "metrics" / (stage + ".jsonl"); }
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string name() const = 0;
  // What the stage's result depends on: its config slice and upstream output digests.
  virtual json inputs(const RunContext& ctx) const = 0;
  // Does the work inside `work` (resuming from what is there when `resuming`); returns results
  // that go into stage.json and the run report.
  virtual json run(RunContext& ctx, const sfs::path& work, bool resuming) = 0;
  // Files under `work` that are scratch (checkpoints): removed once the stage is complete.
  virtual std::vector<std::string> scratch() const { return {"checkpoints"}; }
};

// Digest of a finished stage's outputs (sha256 over its output checksums).
std::string output_digest(const json& stage_record);
std::string input_hash(const std::string& name, const json& inputs);

enum class StageAction { skip, run, resume };
struct PlanEntry {
  std::string name;
  StageAction action;
  std::string hash;
  std::string note;
};

class Runner {
 public:
  Runner(RunContext ctx, std::vector<std::unique_ptr<Stage>> stages);
  // Prints what would run; touches nothing.
  std::vector<PlanEntry> plan();
  // Runs every stage; writes config.resolved.json, manifest.json, run.log, report.json/.md.
  json run();
  const RunContext& context() const { return ctx_; }

 private:
  PlanEntry plan_one(Stage& s);
  void write_manifest(const std::string& status);
  RunContext ctx_;
  std::vector<std::unique_ptr<Stage>> stages_;
  json manifest_;
};

// The stage list of an experiment kind.
std::vector<std::unique_ptr<Stage>> make_stages(const config::RunConfig& cfg);

}  // namespace subliminal::run
