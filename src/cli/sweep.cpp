// `subliminal sweep`: plan, run here N at a time, or write/submit a Slurm job array.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include "subliminal/cli/commands.h"
#include "subliminal/run/aggregate.h"
#include "subliminal/run/dose.h"
#include "subliminal/run/sweep.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"

namespace subliminal::cli {

namespace sfs = std::filesystem;

static std::string axes_text(const run::SweepRun& r) {
  std::string s;
  for (auto it = r.axes.begin(); it != r.axes.end(); ++it) s += (s.empty() ? "" : " ") + it.key() + "=" + it.value().dump();
  return s.empty() ? "(no axes)" : s;
}

int cmd_sweep(const SweepArgs& a) {
  auto s = run::load_sweep(a.file, a.out, a.set);
  run::write_sweep_files(s);
  std::vector<run::RunStatus> st;
  std::vector<int> todo;
  for (const auto& r : s.runs) {
    st.push_back(run::run_status(s, r));
    if (st.back() != run::RunStatus::done) todo.push_back(r.index);
  }
  const bool plan_only = !a.local && !a.slurm;
  if (plan_only || a.plan) {
    std::cout << "sweep " << s.name << ": " << s.runs.size() << " runs (" << s.runs.size() - todo.size() << " done) in " << s.dir.string()
              << "\n";
    for (const auto& r : s.runs)
      std::printf("  %3d  %-8s %-40s %s\n", r.index, run::status_name(st[r.index]), r.name.c_str(), axes_text(r).c_str());
    std::fflush(stdout);
  }
  if (a.slurm) {
    const auto script = s.dir / "slurm.sbatch";
    if (todo.empty()) {
      std::cout << "every run is done; nothing to submit\n";
      return 0;
    }
    fs::write_file_atomic(script, run::slurm_script(s, todo, sfs::absolute(fs::self_exe()).string()));
    std::cout << "wrote " << script.string() << " (array of " << todo.size() << " runs)\n";
    if (a.submit) {
      const std::string cmd = "sbatch --parsable " + script.string();
      FILE* p = popen(cmd.c_str(), "r");
      if (!p) throw IoError("cannot run sbatch");
      std::string out;
      char buf[256];
      while (fgets(buf, sizeof buf, p)) out += buf;
      const int rc = pclose(p);
      if (rc != 0)
        throw ConfigError("sbatch failed (exit " + std::to_string(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1) + "): " + out,
                          "is Slurm installed and reachable (sbatch in PATH, slurmctld running)?");
      while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
      std::cout << "submitted job " << out << "\n";
      fs::write_file_atomic(s.dir / "slurm_jobs.txt", (sfs::exists(s.dir / "slurm_jobs.txt") ? fs::read_file(s.dir / "slurm_jobs.txt") : "") + out + "\n");
    }
    return 0;
  }
  if (!a.local) return 0;

  // Local: up to `jobs` runs at once, each a `subliminal run` process with cores/jobs threads.
  const int jobs = std::max(1, a.jobs);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = std::max(1, cores / jobs);
  std::map<int, int> running;  // pid -> run index
  std::map<int, std::chrono::steady_clock::time_point> started;
  size_t next = 0, done = 0;
  std::vector<std::string> failed;
  log::info("sweep", "{}: {} of {} runs to do, {} at a time ({} threads each)", s.name, todo.size(), s.runs.size(), jobs, threads);
  while (next < todo.size() || !running.empty()) {
    while (next < todo.size() && static_cast<int>(running.size()) < jobs) {
      const auto& r = s.runs[todo[next++]];
      const auto logp = s.dir / "logs" / (r.name + ".log");
      const int pid = fs::spawn({fs::self_exe_for_spawn(), "run", run::config_path(s, r).string(), "--out", run::run_dir(s, r).string(), "--resume",
                                 "--threads", std::to_string(threads)},
                                logp.string());
      running[pid] = r.index;
      started[pid] = std::chrono::steady_clock::now();
      log::info("sweep", "start {} ({}; log {})", r.name, run::status_name(st[r.index]), logp.string());
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) break;
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const auto& r = s.runs[it->second];
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started[pid]).count();
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ++done;
    if (code == 0) {
      log::info("sweep", "[{}/{}] done {} in {:.0f}s", done, todo.size(), r.name, secs);
    } else {
      failed.push_back(r.name);
      log::error("sweep", "[{}/{}] FAILED {} (exit {}) after {:.0f}s; see {}", done, todo.size(), r.name, code, secs,
                 (s.dir / "logs" / (r.name + ".log")).string());
    }
    running.erase(it);
  }
  if (!failed.empty()) {
    std::string names;
    for (const auto& n : failed) names += " " + n;
    throw Error(std::to_string(failed.size()) + " of " + std::to_string(todo.size()) + " runs failed:" + names,
                "fix the cause and re-run the same command: finished runs are skipped, interrupted ones resume");
  }
  log::info("sweep", "{}: all {} runs done ({})", s.name, s.runs.size(), s.dir.string());
  return 0;
}

}  // namespace subliminal::cli

namespace subliminal::cli {

int cmd_report(const ReportArgs& a) {
  auto agg = run::aggregate_runs(a.dirs);
  if (agg["targets"].empty() && agg["mnist"].empty())
    throw DataError("no finished trait_transfer or mnist_aux run among the given directories", "run them first (subliminal run / sweep --local)");
  const sfs::path out = a.out.empty() ? sfs::path("report") : sfs::path(a.out);
  fs::write_file_atomic(out / "aggregate.json", agg.dump(2) + "\n");
  fs::write_file_atomic(out / "aggregate.csv", run::aggregate_csv(agg));
  fs::write_file_atomic(out / "aggregate.md", run::aggregate_markdown(agg));
  std::vector<std::string> figures;
  auto figure = [&](const std::string& stem, const std::string& svg) {
    fs::write_file_atomic(out / (stem + ".svg"), svg);
    figures.push_back((out / (stem + ".svg")).string());
    if (std::system("command -v rsvg-convert >/dev/null 2>&1") != 0) return;  // PNG needs Debian librsvg2-bin
    const auto tmp = out / (stem + ".png.tmp");
    const std::string cmd = "rsvg-convert -f png -o '" + tmp.string() + "' '" + (out / (stem + ".svg")).string() + "'";
    if (std::system(cmd.c_str()) != 0) throw IoError("rsvg-convert failed on " + (out / (stem + ".svg")).string());
    sfs::rename(tmp, out / (stem + ".png"));
    figures.push_back((out / (stem + ".png")).string());
  };
  if (!agg["targets"].empty()) figure("figure", run::aggregate_figure_svg(agg));
  if (!agg["mnist"].empty()) figure("figure_mnist", run::aggregate_mnist_figure_svg(agg));
  // The dose-response study: transfer of every student against the diagnostics of its run.
  const auto dr = run::dose_response(a.dirs);
  if (!dr["points"].empty()) {
    fs::write_file_atomic(out / "dose_response.json", dr.dump(2) + "\n");
    fs::write_file_atomic(out / "dose_response.csv", run::dose_response_csv(dr));
    fs::write_file_atomic(out / "dose_response.md", run::dose_response_markdown(dr));
    figure("dose_response", run::dose_response_svg(dr));
  }
  std::cout << run::aggregate_markdown(agg) << "\nwrote " << (out / "aggregate.{json,csv,md}").string();
  for (const auto& f : figures) std::cout << ", " << f;
  std::cout << "\n";
  return 0;
}

int cmd_check(const CheckArgs& a) {
  if (!sfs::exists(a.report)) throw ConfigError("report '" + a.report + "' does not exist");
  if (!sfs::exists(a.expect)) throw ConfigError("--expect '" + a.expect + "' does not exist");
  nlohmann::json rep, exp;
  try {
    rep = nlohmann::json::parse(fs::read_file(a.report));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(a.report + ": invalid JSON (" + e.what() + ")");
  }
  try {
    exp = nlohmann::json::parse(fs::read_file(a.expect));
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(a.expect + ": invalid JSON (" + e.what() + ")");
  }
  auto results = run::check_claims(rep, exp, a.expect);
  int failed = 0;
  for (const auto& r : results) {
    std::cout << (r.ok ? "PASS  " : "FAIL  ") << r.name << "  (" << r.detail << ")\n";
    failed += !r.ok;
  }
  std::cout << results.size() - failed << " of " << results.size() << " claims hold\n";
  if (failed) {
    std::string names;
    for (const auto& r : results)
      if (!r.ok) names += (names.empty() ? "" : "; ") + r.name;
    throw Error("claim failed: " + names);
  }
  return 0;
}

}  // namespace subliminal::cli
