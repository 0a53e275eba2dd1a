// The run directory and the stage protocol. A stage reads artifacts of earlier stages and writes
// into `<run>/<name>.partial/`, which is renamed to `<run>/<name>/` with a `stage.json` (input hash,
// output checksums, timings, results) only when complete. A re-run skips stages whose input hash
// matches; an interrupted stage continues from its checkpoints with --resume.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "subliminal/config/config.h"

namespace subliminal::train {
class Collective;
}

namespace subliminal::run {

namespace sfs = std::filesystem;
using json = nlohmann::json;

struct RunContext {
  config::RunConfig cfg;
  sfs::path dir;
  bool resume = false;
  int threads = 1;       // ATen threads of this process
  int jobs = 1;          // stages at once (worker processes); 1: every stage in this process
  int stage_threads = 1; // ATen threads of each worker
  std::string worker_exe;  // the subliminal binary that runs a worker ("" : /proc/self/exe)
  std::string command_line;
  std::map<std::string, json> records;  // stage.json of every finished stage, by name
  // A claim file to register before the first stage runs (report/claims.h): {"source", "text",
  // "claims", "git"}; null: none. Registrations of earlier invocations stay in the manifest.
  json claims;
  // Data parallel across processes (srun / torchrun): training stages run on every rank, each on
  // its share of every batch; everything else, and every write, on rank 0. nullptr: one process.
  train::Collective* comm = nullptr;
  int rank() const;
  int world() const;
  // Inside a replicate's stage (experiments' ReplicaStage): the names its stages use for each other
  // ("base", "teacher", ...) mapped to the run's ("r2/base", ...), and its metrics files' prefix.
  std::function<std::string(const std::string&)> alias;
  std::string metrics_prefix;
  std::string stage_name(const std::string& name) const { return alias ? alias(name) : name; }
  sfs::path stage_dir(const std::string& name) const { return dir / stage_name(name); }
  sfs::path metrics_path(const std::string& stage) const { return dir / "metrics" / (metrics_prefix + stage + ".jsonl"); }
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string name() const = 0;
  // The stages whose outputs this one reads (they run first; with jobs > 1 the others may run
  // at the same time). Every stage digest in inputs() must be listed (a test checks it).
  virtual std::vector<std::string> deps() const = 0;
  // What the stage's result depends on: its config slice and upstream output digests.
  virtual json inputs(const RunContext& ctx) const = 0;
  // Does the work inside `work` (resuming from what is there when `resuming`); returns results
  // that go into stage.json and the run report.
  virtual json run(RunContext& ctx, const sfs::path& work, bool resuming) = 0;
  // Files under `work` that are scratch (checkpoints): removed once the stage is complete.
  virtual std::vector<std::string> scratch() const { return {"checkpoints"}; }
  // Trains (a base, a teacher, a student): with ctx.comm every rank runs it, rank 0 in its own
  // process; the others' run() returns right after training and writes nothing.
  virtual bool data_parallel(const RunContext&) const { return false; }
};

// Digest of a finished stage's outputs (sha256 over its output checksums).
std::string output_digest(const json& stage_record);
// The output digest of upstream `stage` as recorded in ctx ("?" while it is not done): what a
// stage's inputs() cites for each stage it reads.
std::string digest(const RunContext& ctx, const std::string& stage);
std::string input_hash(const std::string& name, const json& inputs);

enum class StageAction { skip, run, resume };
struct PlanEntry {
  std::string name;
  StageAction action;
  std::string hash;
  std::string note;
};

// The problems of a finished stage's files against its stage.json: a missing output, an output whose
// sha256 differs from the recorded one, and (extra_files) a file that is not a recorded output.
// Empty: intact.
std::vector<std::string> check_stage_outputs(const sfs::path& stage_dir, const json& record, bool extra_files);

struct StageCheck {
  std::string name;
  std::string status;  // "ok", "not done", "interrupted" (a partial directory), "stale" (inputs changed), "corrupt"
  std::vector<std::string> problems;
};

// Makes the stages of a config (experiments::make_stages): how a worker process finds its stage.
using StageFactory = std::function<std::vector<std::unique_ptr<Stage>>(const config::RunConfig&)>;

class Runner {
 public:
  Runner(RunContext ctx, std::vector<std::unique_ptr<Stage>> stages);
  // Prints what would run; touches nothing.
  std::vector<PlanEntry> plan();
  // `subliminal verify`: every stage of the config, in order: done, its outputs' checksums, and its
  // input hash recomputed from the upstream records (a chain that still holds). Touches nothing.
  std::vector<StageCheck> verify();
  // Runs every stage (jobs > 1: up to `jobs` at once, each in a worker process); writes
  // config.resolved.json, manifest.json, run.log, report.json/.md.
  json run();
  const RunContext& context() const { return ctx_; }

  // A worker's job (`subliminal __stage`): runs stage `name` of the run in `dir` (its
  // config.resolved.json) in this process. `expected_hash` guards against a changed config.
  static void run_worker(const StageFactory& make_stages, const sfs::path& dir, const std::string& name,
                         const std::string& expected_hash, int threads, bool resume);

 private:
  PlanEntry plan_one(Stage& s);
  void register_claims(const json& previous_manifest);
  // Before a stage runs: the recorded outputs of every stage it reads still have their checksums.
  void check_inputs(Stage& s);
  // Sets the stage's partial directory up (moves stale work aside); true when it resumes.
  bool prepare(Stage& s, const PlanEntry& e);
  // Runs the stage in this process inside <name>.partial, then renames it; returns stage.json.
  json execute(Stage& s, const PlanEntry& e, bool resuming);
  void record_done(Stage& s, const PlanEntry& e, const json& rec, json& results);
  void record_skipped(Stage& s, const PlanEntry& e, json& results);
  void run_in_process(json& results);
  void run_parallel(json& results);
  // Ranks > 0 of a data-parallel run: run the training stages rank 0 announces, then stop.
  void run_follower();
  void announce(const json& msg);
  void write_manifest(const std::string& status);
  RunContext ctx_;
  std::vector<std::unique_ptr<Stage>> stages_;
  json manifest_;
  int announced_ = 0;
};

}  // namespace subliminal::run
