// Sweep expansion, status and Slurm scripts (see sweep.h).
#include "subliminal/experiments/sweep.h"

#include <thread>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "subliminal/config/config.h"
#include "subliminal/util/resources.h"
#include "subliminal/experiments/stages.h"
#include "subliminal/run/pool.h"
#include "subliminal/run/runner.h"
#include "subliminal/util/log.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"

namespace subliminal::experiments {

using namespace run;

namespace sfs = std::filesystem;
using ojson = nlohmann::ordered_json;
using json = nlohmann::json;

namespace {

std::string value_label(const ojson& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-')) c = '-';
  return s.empty() ? "empty" : s;
}

std::string last_segment(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

}  // namespace

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::done: return "done";
    case RunStatus::partial: return "partial";
    default: return "pending";
  }
}

Sweep load_sweep(const std::string& file, const std::string& dir, const std::vector<std::string>& set) {
  if (!sfs::exists(file)) throw ConfigError("sweep file '" + file + "' does not exist");
  ojson sw;
  try {
    sw = ojson::parse(fs::read_file(file));
  } catch (const ojson::exception& e) {
    throw ConfigError(file + ": not valid JSON (" + e.what() + ")");
  }
  if (!sw.is_object()) throw ConfigError(file + ": expected a JSON object");
  static const std::set<std::string> known = {"name", "base", "set", "grid", "zip", "slurm", "_comment"};
  for (auto it = sw.begin(); it != sw.end(); ++it)
    if (!known.count(it.key()) && it.key().rfind("//", 0) != 0)
      throw ConfigError(file + ": unknown key \"" + it.key() + "\"", "known: name, base, set, grid, zip, slurm");
  Sweep s;
  s.file = file;
  if (sw.contains("name") && !sw["name"].is_string()) throw ConfigError(file + ": $.name: expected a string, got " + sw["name"].dump());
  s.name = sw.value("name", sfs::path(file).stem().string());
  if (!config::plain_name(s.name))
    throw ConfigError(file + ": $.name: expected a plain folder name (not empty, '.' or '..'; no '/', '\\' or control characters), got " +
                      ojson(s.name).dump());
  s.dir = dir.empty() ? sfs::path("sweeps") / s.name : sfs::path(dir);

  // The base config: built in, or relative to the sweep file, else to the working directory.
  s.base = sw.value("base", std::string("default"));
  json base;
  if (s.base == "default") {
    base = config::parse_json_text(resources::resource("configs/default.json"), "<built-in configs/default.json>");
  } else {
    sfs::path bp = s.base;
    if (bp.is_relative() && sfs::exists(sfs::path(file).parent_path() / bp)) bp = sfs::path(file).parent_path() / bp;
    if (!sfs::exists(bp)) throw ConfigError(file + ": $.base: config '" + s.base + "' does not exist (relative to the sweep file or the working directory)");
    s.base = bp.lexically_normal().string();
    base = config::parse_json_text(fs::read_file(bp), s.base);
  }
  auto apply = [](json& j, const std::string& key, const ojson& v) { config::apply_override(j, key + "=" + v.dump()); };
  if (sw.contains("set")) {
    if (!sw["set"].is_object()) throw ConfigError(file + ": $.set: expected an object of config path -> value");
    for (auto it = sw["set"].begin(); it != sw["set"].end(); ++it) apply(base, it.key(), it.value());
  }

  // Axes: the zip (one axis of equal-length lists) and the grid (one axis per key), in file order.
  std::vector<ojson> flat(1, ojson::object());  // the points so far, each {key: value, ...}
  auto check_list = [&](const char* section, const std::string& key, const ojson& v) {
    if (!v.is_array() || v.empty())
      throw ConfigError(file + ": $." + section + "[\"" + key + "\"]: expected a non-empty list of values");
  };
  std::vector<std::string> keys;
  if (sw.contains("zip")) {
    if (!sw["zip"].is_object()) throw ConfigError(file + ": $.zip: expected an object of config path -> list");
    size_t n = 0;
    std::vector<ojson> zipped;
    for (auto it = sw["zip"].begin(); it != sw["zip"].end(); ++it) {
      check_list("zip", it.key(), it.value());
      if (n && it.value().size() != n)
        throw ConfigError(file + ": $.zip[\"" + it.key() + "\"] has " + std::to_string(it.value().size()) + " values, the lists before it " +
                          std::to_string(n), "zipped lists must have equal lengths");
      n = it.value().size();
      keys.push_back(it.key());
    }
    for (size_t i = 0; i < n; ++i) {
      ojson p = ojson::object();
      for (auto it = sw["zip"].begin(); it != sw["zip"].end(); ++it) p[it.key()] = it.value()[i];
      zipped.push_back(p);
    }
    flat = zipped;
  }
  if (sw.contains("grid")) {
    if (!sw["grid"].is_object()) throw ConfigError(file + ": $.grid: expected an object of config path -> list");
    for (auto it = sw["grid"].begin(); it != sw["grid"].end(); ++it) {
      check_list("grid", it.key(), it.value());
      if (std::find(keys.begin(), keys.end(), it.key()) != keys.end())
        throw ConfigError(file + ": $.grid[\"" + it.key() + "\"] is also in $.zip");
      keys.push_back(it.key());
      std::vector<ojson> next;
      for (const auto& p : flat)
        for (const auto& v : it.value()) {
          ojson q = p;
          q[it.key()] = v;
          next.push_back(q);
        }
      flat.swap(next);
    }
  }

  // Names: "<label>-<value>" per axis, label = the key's last segment unless two axes share it.
  std::map<std::string, int> seg_count;
  for (const auto& k : keys) ++seg_count[last_segment(k)];
  std::set<std::string> used;
  for (size_t i = 0; i < flat.size(); ++i) {
    SweepRun r;
    r.index = static_cast<int>(i);
    r.axes = flat[i];
    std::string name;
    for (auto it = r.axes.begin(); it != r.axes.end(); ++it) {
      const std::string label = seg_count[last_segment(it.key())] > 1 ? it.key() : last_segment(it.key());
      name += (name.empty() ? "" : "_") + label + "-" + value_label(it.value());
    }
    if (name.empty()) name = "run";
    if (used.count(name)) name += "_" + std::to_string(i);
    used.insert(name);
    r.name = name;
    json j = base;
    for (auto it = r.axes.begin(); it != r.axes.end(); ++it) apply(j, it.key(), it.value());
    for (const auto& o : set) config::apply_override(j, o);
    j["name"] = s.name + "." + r.name;
    const auto cfg = config::parse_config(j, file + " (run " + r.name + ")");
    r.config = config::to_json(cfg);
    s.runs.push_back(std::move(r));
  }

  if (sw.contains("slurm")) {
    const ojson& sl = sw["slurm"];
    if (!sl.is_object()) throw ConfigError(file + ": $.slurm: expected an object");
    static const std::set<std::string> sk = {"partition", "account", "time", "mem", "qos", "constraint", "gpus", "cpus", "tasks", "max_parallel", "extra"};
    for (auto it = sl.begin(); it != sl.end(); ++it)
      if (!sk.count(it.key()))
        throw ConfigError(file + ": $.slurm: unknown key \"" + it.key() + "\"",
                          "known: partition, account, time, mem, qos, constraint, gpus, cpus, tasks, max_parallel, extra");
    try {
      s.slurm.partition = sl.value("partition", "");
      s.slurm.account = sl.value("account", "");
      s.slurm.time = sl.value("time", s.slurm.time);
      s.slurm.mem = sl.value("mem", "");
      s.slurm.qos = sl.value("qos", "");
      s.slurm.constraint = sl.value("constraint", "");
      s.slurm.gpus = sl.value("gpus", 0);
      s.slurm.cpus = sl.value("cpus", 0);
      s.slurm.tasks = sl.value("tasks", 1);
      s.slurm.max_parallel = sl.value("max_parallel", 0);
      s.slurm.extra = sl.value("extra", std::vector<std::string>{});
    } catch (const ojson::exception& e) {
      throw ConfigError(file + ": $.slurm: " + e.what(), "strings for partition/account/time/mem/qos/constraint, integers for gpus/cpus/tasks/max_parallel");
    }
    if (s.slurm.gpus < 0 || s.slurm.cpus < 0 || s.slurm.max_parallel < 0) throw ConfigError(file + ": $.slurm: gpus, cpus and max_parallel must be >= 0");
    if (s.slurm.tasks < 1) throw ConfigError(file + ": $.slurm.tasks: expected >= 1 processes per run, got " + std::to_string(s.slurm.tasks));
  }
  return s;
}

sfs::path run_dir(const Sweep& s, const SweepRun& r) { return s.dir / "runs" / r.name; }
sfs::path config_path(const Sweep& s, const SweepRun& r) { return s.dir / "configs" / (r.name + ".json"); }

RunStatus run_status(const Sweep& s, const SweepRun& r) {
  const auto d = run_dir(s, r);
  if (!sfs::exists(d) || sfs::is_empty(d)) return RunStatus::pending;
  RunContext ctx;
  ctx.cfg = config::parse_config(r.config, config_path(s, r).string());
  ctx.dir = d;
  Runner runner(ctx, make_stages(ctx.cfg));
  bool all = true;
  for (const auto& e : runner.plan()) all = all && e.action == StageAction::skip;
  return all && sfs::exists(d / "report.json") ? RunStatus::done : RunStatus::partial;
}

void write_sweep_files(const Sweep& s) {
  std::string lines;
  json manifest = {{"name", s.name}, {"file", s.file}, {"base", s.base}, {"runs", json::array()}};
  for (const auto& r : s.runs) {
    fs::write_file_atomic(config_path(s, r), r.config.dump(2) + "\n");
    lines += r.name + "\n";
    manifest["runs"].push_back({{"index", r.index}, {"name", r.name}, {"axes", json::parse(r.axes.dump())},
                                {"config", config_path(s, r).string()}, {"dir", run_dir(s, r).string()}});
  }
  fs::write_file_atomic(s.dir / "runs.txt", lines);
  fs::write_file_atomic(s.dir / "sweep.json", manifest.dump(2) + "\n");
  fs::make_dirs(s.dir / "logs");
}

std::string slurm_script(const Sweep& s, const std::vector<int>& indices, const std::string& binary) {
  const auto abs = [](const sfs::path& p) { return sfs::absolute(p).lexically_normal().string(); };
  std::ostringstream o;
  std::string array;  // "0-3,7,9-10": runs of consecutive ids as ranges
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    array += (array.empty() ? "" : ",") + std::to_string(indices[i]) + (j > i ? "-" + std::to_string(indices[j]) : "");
    i = j + 1;
  }
  if (s.slurm.max_parallel > 0) array += "%" + std::to_string(s.slurm.max_parallel);
  o << "#!/bin/bash\n"
    << "# Written by `subliminal sweep " << s.file << " --slurm`: task i runs line i+1 of runs.txt.\n"
    << "# Re-running --slurm lists only runs that are not done; a requeued (preempted) task resumes its run.\n"
    << "#SBATCH --job-name=" << s.name << "\n"
    << "#SBATCH --array=" << array << "\n"
    << "#SBATCH --output=" << abs(s.dir / "logs") << "/%x_%A_%a.out\n"
    << "#SBATCH --open-mode=append\n"
    << "#SBATCH --requeue\n"
    << "#SBATCH --time=" << s.slurm.time << "\n";
  if (!s.slurm.partition.empty()) o << "#SBATCH --partition=" << s.slurm.partition << "\n";
  if (!s.slurm.account.empty()) o << "#SBATCH --account=" << s.slurm.account << "\n";
  if (!s.slurm.qos.empty()) o << "#SBATCH --qos=" << s.slurm.qos << "\n";
  if (!s.slurm.constraint.empty()) o << "#SBATCH --constraint=" << s.slurm.constraint << "\n";
  if (!s.slurm.mem.empty()) o << "#SBATCH --mem=" << s.slurm.mem << "\n";
  if (s.slurm.tasks > 1) o << "#SBATCH --ntasks=" << s.slurm.tasks << "\n";
  if (s.slurm.cpus > 0) o << "#SBATCH --cpus-per-task=" << s.slurm.cpus << "\n";
  if (s.slurm.gpus > 0) o << "#SBATCH --gpus-per-task=" << s.slurm.gpus << "\n";
  for (const auto& e : s.slurm.extra) o << "#SBATCH " << e << "\n";
  o << "set -euo pipefail\n"
    << "cd " << abs(sfs::current_path()) << "\n"
    << "RUN=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" " << abs(s.dir / "runs.txt") << ")\n";
  if (s.slurm.tasks > 1)  // one data-parallel run: srun starts the ranks (SLURM_PROCID), rank 0's node hosts the rendezvous
    o << "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
      << "export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))\n";
  o << "exec " << (s.slurm.tasks > 1 ? "srun --kill-on-bad-exit=1 " : "") << binary << " run " << abs(s.dir / "configs") << "/$RUN.json --out " << abs(s.dir / "runs") << "/$RUN"
    << " --resume --threads \"${SLURM_CPUS_PER_TASK:-0}\"\n";
  return o.str();
}

// Local: up to `jobs` runs at once, each a `subliminal run` process with cores/jobs threads.
void run_locally(const Sweep& s, const std::vector<int>& todo, const std::vector<RunStatus>& status, int jobs_asked) {
  const int jobs = std::max(1, jobs_asked);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = std::max(1, cores / jobs);
  run::WorkerPool pool(jobs);
  size_t next = 0, done = 0;
  std::vector<std::string> failed;
  log::info("sweep", "{}: {} of {} runs to do, {} at a time ({} threads each)", s.name, todo.size(), s.runs.size(), jobs, threads);
  while (next < todo.size() || !pool.empty()) {
    while (next < todo.size() && !pool.full()) {
      const auto& r = s.runs[todo[next++]];
      const auto logp = s.dir / "logs" / (r.name + ".log");
      pool.start({fs::self_exe_for_spawn(), "run", config_path(s, r).string(), "--out", run_dir(s, r).string(), "--resume",
                  "--threads", std::to_string(threads)},
                 static_cast<size_t>(r.index), logp.string());
      log::info("sweep", "start {} ({}; log {})", r.name, status_name(status[r.index]), logp.string());
    }
    const run::WorkerPool::Exit x = pool.wait_one();
    const auto& r = s.runs[x.tag];
    ++done;
    if (x.code == 0) {
      log::info("sweep", "[{}/{}] done {} in {:.0f}s", done, todo.size(), r.name, x.seconds);
    } else {
      failed.push_back(r.name);
      log::error("sweep", "[{}/{}] FAILED {} (exit {}) after {:.0f}s; see {}", done, todo.size(), r.name, x.code, x.seconds,
                 (s.dir / "logs" / (r.name + ".log")).string());
    }
  }
  if (!failed.empty()) {
    std::string names;
    for (const auto& n : failed) names += " " + n;
    throw Error(std::to_string(failed.size()) + " of " + std::to_string(todo.size()) + " runs failed:" + names,
                "fix the cause and re-run the same command: finished runs are skipped, interrupted ones resume");
  }
  log::info("sweep", "{}: all {} runs done ({})", s.name, s.runs.size(), s.dir.string());
}

}  // namespace subliminal::experiments
