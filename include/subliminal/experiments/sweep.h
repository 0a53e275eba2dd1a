// Sweeps: a base config plus axes (a grid and zipped lists over any config path), expanded into one
// resolved config per run with a stable, readable name; run here N at a time or as a Slurm job
// array. A sweep directory holds configs/<run>.json (complete resolved configs), runs/<run>/ (each
// an ordinary run directory), logs/, runs.txt (one run name per line: array task i runs line i+1)
// and sweep.json (the manifest).
//
// Sweep file:
//   {"name": "owl_animals",                  // default: the file's stem
//    "base": "configs/default.json",         // relative to the sweep file, else to the working dir; "default" = built in
//    "set":  {"students.seeds": 1},          // fixed overrides for every run
//    "grid": {"teacher.target": ["owl", "eagle"], "seed": [1, 2, 3]},   // cartesian product, in file order
//    "zip":  {"finetune.train.lr": [1e-3, 3e-3], "finetune.train.steps": [300, 100]},  // equal lengths, one axis
//    "slurm": {"partition": "gpu", "account": "lab", "time": "04:00:00", "gpus": 1, "cpus": 8,
//              "mem": "64G", "max_parallel": 10, "qos": "", "constraint": "", "extra": ["--exclusive"]}}
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace subliminal::experiments {

struct SweepRun {
  int index = 0;
  std::string name;             // "target-owl_seed-1"; unique within the sweep
  nlohmann::ordered_json axes;  // {"teacher.target": "owl", "seed": 1}: this run's axis values
  nlohmann::json config;        // the resolved config (every key)
};

struct SlurmOptions {
  std::string partition, account, time = "04:00:00", mem, qos, constraint;
  int gpus = 0, cpus = 0, max_parallel = 0;
  int tasks = 1;  // > 1: each run is one data-parallel run over `tasks` processes (srun; Gloo/NCCL)
  std::vector<std::string> extra;  // more #SBATCH lines' arguments
};

struct Sweep {
  std::string name, file, base;
  std::filesystem::path dir;
  std::vector<SweepRun> runs;
  SlurmOptions slurm;
};

// Reads and expands a sweep file; every run's config is parsed and validated (an error names the
// sweep file, the run and the config path). `dir` "": sweeps/<name>. `set`: --set overrides applied
// to every run after the sweep's own.
Sweep load_sweep(const std::string& file, const std::string& dir = "", const std::vector<std::string>& set = {});

enum class RunStatus { pending, partial, done };
const char* status_name(RunStatus s);
// done: every stage of the run directory is complete for this config and the report exists;
// partial: some stage is done or interrupted; pending: nothing yet.
RunStatus run_status(const Sweep& s, const SweepRun& r);

std::filesystem::path run_dir(const Sweep& s, const SweepRun& r);
std::filesystem::path config_path(const Sweep& s, const SweepRun& r);
// Writes configs/*.json, runs.txt and sweep.json (atomically; the same content for the same sweep).
void write_sweep_files(const Sweep& s);
// An sbatch job-array script whose task i runs line i+1 of runs.txt with `binary` (--resume: a
// requeued or preempted task continues its run); `indices` are the array task ids (pending runs).
std::string slurm_script(const Sweep& s, const std::vector<int>& indices, const std::string& binary);
// Runs the runs `todo` (indices) here, `jobs` at a time through run::WorkerPool, each a `subliminal
// run --resume` process with cores / jobs threads, its output in <sweep>/logs/<name>.log; `status`
// (every run's, as found before) is for the log. Throws naming the runs that failed, after every run
// has ended.
void run_locally(const Sweep& s, const std::vector<int>& todo, const std::vector<RunStatus>& status, int jobs);

}  // namespace subliminal::experiments
