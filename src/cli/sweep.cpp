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
#include "subliminal/report/aggregate.h"
#include "subliminal/report/claims.h"
#include "subliminal/report/dose.h"
#include "subliminal/report/results_pages.h"
#include "subliminal/experiments/sweep.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/inference.h"
#include "subliminal/util/stats.h"
#include "subliminal/util/log.h"

namespace subliminal::cli {

namespace sfs = std::filesystem;

static std::string axes_text(const experiments::SweepRun& r) {
  std::string s;
  for (auto it = r.axes.begin(); it != r.axes.end(); ++it) s += (s.empty() ? "" : " ") + it.key() + "=" + it.value().dump();
  return s.empty() ? "(no axes)" : s;
}

int cmd_sweep(const SweepArgs& a) {
  auto s = experiments::load_sweep(a.file, a.out, a.set);
  experiments::write_sweep_files(s);
  std::vector<experiments::RunStatus> st;
  std::vector<int> todo;
  for (const auto& r : s.runs) {
    st.push_back(experiments::run_status(s, r));
    if (st.back() != experiments::RunStatus::done) todo.push_back(r.index);
  }
  const bool plan_only = !a.local && !a.slurm;
  if (plan_only || a.plan) {
    std::cout << "sweep " << s.name << ": " << s.runs.size() << " runs (" << s.runs.size() - todo.size() << " done) in " << s.dir.string()
              << "\n";
    for (const auto& r : s.runs)
      std::printf("  %3d  %-8s %-40s %s\n", r.index, experiments::status_name(st[r.index]), r.name.c_str(), axes_text(r).c_str());
    std::fflush(stdout);
  }
  if (a.slurm) {
    const auto script = s.dir / "slurm.sbatch";
    if (todo.empty()) {
      std::cout << "every run is done; nothing to submit\n";
      return 0;
    }
    fs::write_file_atomic(script, experiments::slurm_script(s, todo, sfs::absolute(fs::self_exe()).string()));
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

  experiments::run_locally(s, todo, st, a.jobs);
  return 0;
}

int cmd_calibrate(int experiments, uint64_t seed) {
  std::cout << "| scenario | models a / b | questions x samples | true effect | rejections (p < 0.05) | 95% coverage | "
               "old Welch: rejections | old Welch: coverage |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& s : stats::calibration_scenarios()) {
    const auto c = stats::simulate_inference(s, experiments, seed++);
    const double n = experiments;
    auto iv = [&](int k) {  // Wilson 95% for the simulated share
      auto [lo, hi] = stats::wilson_interval(k, experiments);
      return fmt::format("{:.3f} [{:.3f}, {:.3f}]", k / n, lo, hi);
    };
    std::cout << fmt::format("| {} | {} / {}{} | {} x {} | {:+.2f} | {} | {} | {} | {} |\n", s.name, s.models_a, s.models_b,
                             s.untrained_b ? " (untrained)" : "", s.questions, s.samples, s.effect, iv(c.rejections), iv(c.covered),
                             iv(c.rejections_welch), iv(c.covered_welch));
  }
  std::cout << experiments << " simulated experiments per scenario (subliminal calibrate --experiments N --seed S)\n";
  return 0;
}

int cmd_results(const std::string& index, bool check) {
  if (!sfs::exists(index)) throw ConfigError("results: '" + index + "' does not exist", "give docs/results/index.json");
  const auto files = report::render_results_pages(index);
  int stale = 0;
  for (const auto& [path, text] : files) {
    const bool same = sfs::exists(path) && fs::read_file(path) == text;
    if (check) {
      if (!same) {
        std::cout << path.string() << ": " << (sfs::exists(path) ? "differs from" : "missing; it is") << " what the artifacts render\n";
        ++stale;
      }
      continue;
    }
    if (same) continue;
    if (!path.parent_path().empty()) fs::make_dirs(path.parent_path());
    fs::write_file_atomic(path, text);
    std::cout << "wrote " << path.string() << "\n";
  }
  if (check) {
    std::cout << fmt::format("{}: {} of {} files as their artifacts render them\n", index, files.size() - stale, files.size());
    if (stale) std::cout << "re-render with: subliminal results " << index << "\n";
  }
  return stale ? 1 : 0;
}

}  // namespace subliminal::cli

namespace subliminal::cli {

int cmd_report(const ReportArgs& a) {
  auto agg = report::aggregate_runs(a.dirs);
  if (agg["targets"].empty() && agg["mnist"].empty())
    throw DataError("no finished trait_transfer or mnist_aux run among the given directories", "run them first (subliminal run / sweep --local)");
  const sfs::path out = a.out.empty() ? sfs::path("report") : sfs::path(a.out);
  fs::write_file_atomic(out / "aggregate.json", agg.dump(2) + "\n");
  fs::write_file_atomic(out / "aggregate.csv", report::aggregate_csv(agg));
  fs::write_file_atomic(out / "aggregate.md", report::aggregate_markdown(agg));
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
  if (!agg["targets"].empty()) figure("figure", report::aggregate_figure_svg(agg));
  if (!agg["mnist"].empty()) figure("figure_mnist", report::aggregate_mnist_figure_svg(agg));
  // The dose-response study: transfer of every student against the diagnostics of its run.
  const auto dr = report::dose_response(a.dirs);
  if (!dr["points"].empty()) {
    fs::write_file_atomic(out / "dose_response.json", dr.dump(2) + "\n");
    fs::write_file_atomic(out / "dose_response.csv", report::dose_response_csv(dr));
    fs::write_file_atomic(out / "dose_response.md", report::dose_response_markdown(dr));
    figure("dose_response", report::dose_response_svg(dr));
  }
  std::cout << report::aggregate_markdown(agg) << "\nwrote " << (out / "aggregate.{json,csv,md}").string();
  for (const auto& f : figures) std::cout << ", " << f;
  std::cout << "\n";
  return 0;
}

int cmd_check(const CheckArgs& a) {
  // A run directory stands for its report.json and manifest.json; a report.json beside a manifest.json
  // is a run's too (its registrations are read); an aggregate.json has none.
  sfs::path report = a.report, manifest_path;
  if (sfs::is_directory(report)) report /= "report.json";
  if (!sfs::exists(report)) throw ConfigError("report '" + report.string() + "' does not exist", "give a finished run directory, its report.json or an aggregate.json");
  if (sfs::exists(report.parent_path() / "manifest.json")) manifest_path = report.parent_path() / "manifest.json";
  nlohmann::json rep, man, exp;
  try {
    rep = nlohmann::json::parse(fs::read_file(report.string()));
    if (!manifest_path.empty()) man = nlohmann::json::parse(fs::read_file(manifest_path.string()));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(report.string() + " or its manifest.json: invalid JSON (" + e.what() + ")");
  }
  std::string label = a.expect;
  if (!a.expect.empty()) {
    if (!sfs::exists(a.expect)) throw ConfigError("--expect '" + a.expect + "' does not exist");
    exp = report::parse_claim_file(fs::read_file(a.expect), a.expect);
  } else if (man.is_object() && man.contains("claims") && !man["claims"].empty()) {
    exp = man["claims"].back()["content"];
    label = man["claims"].back().value("source", std::string("registered claims"));
  } else {
    throw ConfigError(report.string() + ": the run registered no claims; give --expect CLAIMS.json");
  }
  const auto results = report::check_claims(rep, exp, label);
  const auto statuses = report::claim_statuses(exp, man);
  std::cout << "claims: " << label << (exp.contains("post_hoc") ? "  [post hoc: " + exp["post_hoc"].get<std::string>() + "]" : "") << "\n";
  int failed = 0, unregistered = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    const auto& st = statuses[i];
    std::cout << (r.ok ? "PASS  " : "FAIL  ") << r.name << "  [" << st.status << (st.post_hoc ? ", post hoc" : "") << "]  (" << r.detail << ")\n";
    if (!st.detail.empty()) std::cout << "        " << st.detail << "\n";
    failed += !r.ok;
    unregistered += !st.pre_registered || st.post_hoc;
  }
  std::cout << results.size() - failed << " of " << results.size() << " claims hold; " << results.size() - unregistered << " of "
            << results.size() << " pre-registered\n";
  std::string names;
  for (const auto& r : results)
    if (!r.ok) names += (names.empty() ? "" : "; ") + r.name;
  if (failed) throw Error("claim failed: " + names);
  if (a.require_registered && unregistered)
    throw Error(std::to_string(unregistered) + " claim(s) not pre-registered (--require-registered)");
  return 0;
}

}  // namespace subliminal::cli
