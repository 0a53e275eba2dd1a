// Runner: run directory, stage skipping/resuming, manifest.
#include "subliminal/run/runner.h"

#include <chrono>
#include <ctime>
#include <fstream>

#include "subliminal/model/runtime.h"
#include "subliminal/run/report.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"
#include "subliminal/util/version.h"

namespace subliminal::run {

static constexpr const char* kStageFormat = "subliminal-stage-v1";

static std::string iso_now() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string input_hash(const std::string& name, const json& inputs) {
  return fs::sha256_hex(std::string(kStageFormat) + "\n" + name + "\n" + inputs.dump());
}

std::string output_digest(const json& rec) {
  std::string s;
  for (auto it = rec.at("outputs").begin(); it != rec.at("outputs").end(); ++it) s += it.key() + ":" + it.value().get<std::string>() + "\n";
  return fs::sha256_hex(s);
}

static json read_json_or_null(const sfs::path& p) {
  if (!sfs::exists(p)) return nullptr;
  try {
    return json::parse(fs::read_file(p));
  } catch (...) {
    return nullptr;
  }
}

Runner::Runner(RunContext ctx, std::vector<std::unique_ptr<Stage>> stages) : ctx_(std::move(ctx)), stages_(std::move(stages)) {}

PlanEntry Runner::plan_one(Stage& s) {
  PlanEntry e{s.name(), StageAction::run, input_hash(s.name(), s.inputs(ctx_)), ""};
  json rec = read_json_or_null(ctx_.stage_dir(s.name()) / "stage.json");
  if (rec.is_object() && rec.value("input_hash", "") == e.hash) {
    bool all = true;
    for (auto it = rec["outputs"].begin(); it != rec["outputs"].end(); ++it)
      if (!sfs::exists(ctx_.stage_dir(s.name()) / it.key())) all = false;
    if (all) {
      e.action = StageAction::skip;
      e.note = "done (input hash matches)";
      return e;
    }
    e.note = "outputs missing; re-running";
  } else if (rec.is_object()) {
    e.note = "config changed; re-running";
  }
  sfs::path partial = ctx_.dir / (s.name() + ".partial");
  json pj = read_json_or_null(partial / "partial.json");
  if (pj.is_object() && pj.value("input_hash", "") == e.hash) {
    e.action = StageAction::resume;
    e.note = "interrupted earlier; continues from its checkpoints";
  }
  return e;
}

std::vector<PlanEntry> Runner::plan() {
  std::vector<PlanEntry> out;
  for (auto& s : stages_) {
    auto e = plan_one(*s);
    // Later stages see this stage's record as if done, so their hashes are computable.
    json rec = read_json_or_null(ctx_.stage_dir(s->name()) / "stage.json");
    if (e.action == StageAction::skip) ctx_.records[s->name()] = rec;
    else ctx_.records[s->name()] = {{"outputs", {{"(pending)", e.hash}}}};
    out.push_back(e);
  }
  ctx_.records.clear();
  return out;
}

void Runner::write_manifest(const std::string& status) {
  manifest_["status"] = status;
  manifest_["updated"] = iso_now();
  fs::write_file_atomic(ctx_.dir / "manifest.json", manifest_.dump(2));
}

json Runner::run() {
  fs::make_dirs(ctx_.dir);
  fs::make_dirs(ctx_.dir / "metrics");
  log::attach_file((ctx_.dir / "run.log").string());
  log::info("run", "subliminal {} ({}), run directory {}", version(), git_revision(), ctx_.dir.string());
  log::info("run", "command: {}", ctx_.command_line);
  const json resolved = config::to_json(ctx_.cfg);
  fs::write_file_atomic(ctx_.dir / "config.resolved.json", resolved.dump(2) + "\n");
  manifest_ = {{"subliminal_version", version()},
               {"git_revision", git_revision()},
               {"compiler", compiler()},
               {"libtorch_version", model::torch_version()},
               {"parallel_info", model::parallel_info()},
               {"threads", ctx_.threads},
               {"device", ctx_.cfg.device},
               {"precision", ctx_.cfg.precision},
               {"bf16_matmul_hardware", model::cpu_has_bf16_matmul()},
               {"host", host_info()},
               {"command_line", ctx_.command_line},
               {"seed", ctx_.cfg.seed},
               {"config_sha256", fs::sha256_hex(resolved.dump())},
               {"started", iso_now()},
               {"stages", json::object()}};
  json prev = read_json_or_null(ctx_.dir / "manifest.json");
  if (prev.is_object() && prev.contains("stages")) manifest_["previous_stages"] = prev["stages"];
  write_manifest("running");
  const double t_run = log::now_seconds();
  json results = json::object();
  for (auto& sp : stages_) {
    Stage& s = *sp;
    PlanEntry e = plan_one(s);
    sfs::path final_dir = ctx_.stage_dir(s.name());
    if (e.action == StageAction::skip) {
      json rec = read_json_or_null(final_dir / "stage.json");
      ctx_.records[s.name()] = rec;
      results[s.name()] = rec.value("results", json::object());
      manifest_["stages"][s.name()] = {{"status", "skipped"}, {"input_hash", e.hash}, {"seconds", rec.value("seconds", 0.0)}};
      log::info("run", "stage {}: skipped, {}", s.name(), e.note);
      continue;
    }
    sfs::path partial = ctx_.dir / (s.name() + ".partial");
    bool resuming = false;
    std::error_code ec;
    if (sfs::exists(partial)) {
      json pj = read_json_or_null(partial / "partial.json");
      if (pj.is_object() && pj.value("input_hash", "") == e.hash) {
        if (!ctx_.resume)
          throw ConfigError("stage '" + s.name() + "' was interrupted in " + partial.string() + " (same config)",
                            "pass --resume to continue it from its last checkpoint, or delete that folder to start it over");
        resuming = true;
      } else {
        sfs::path stale = ctx_.dir / (s.name() + ".stale-partial");
        sfs::remove_all(stale, ec);
        sfs::rename(partial, stale);
        log::warn("run", "stage {}: moved an interrupted run of a different config to {}", s.name(), stale.string());
      }
    }
    if (sfs::exists(final_dir)) {  // a finished stage of another config: keep it aside, never delete work silently
      json old = read_json_or_null(final_dir / "stage.json");
      std::string tag = old.is_object() ? old.value("input_hash", "unknown").substr(0, 8) : "unknown";
      sfs::path stale = ctx_.dir / (s.name() + ".stale-" + tag);
      sfs::remove_all(stale, ec);
      sfs::rename(final_dir, stale);
      log::warn("run", "stage {}: config changed; previous result moved to {}", s.name(), stale.string());
    }
    fs::make_dirs(partial);
    if (!resuming)
      fs::write_file_atomic(partial / "partial.json", json({{"input_hash", e.hash}, {"started", iso_now()}}).dump(2));
    log::info("run", "stage {}: {} (input hash {})", s.name(), resuming ? "resuming" : "running", e.hash.substr(0, 16));
    manifest_["stages"][s.name()] = {{"status", "running"}, {"input_hash", e.hash}, {"started", iso_now()}};
    write_manifest("running");
    const double t0 = log::now_seconds();
    json res = s.run(ctx_, partial, resuming);
    const double secs = log::now_seconds() - t0;
    for (const auto& sc : s.scratch()) sfs::remove_all(partial / sc, ec);
    sfs::remove(partial / "partial.json", ec);
    json outputs = json::object();
    for (const auto& f : sfs::recursive_directory_iterator(partial))
      if (f.is_regular_file()) outputs[sfs::relative(f.path(), partial).string()] = fs::sha256_file(f.path());
    json rec = {{"stage", s.name()},
                {"input_hash", e.hash},
                {"inputs", s.inputs(ctx_)},
                {"outputs", outputs},
                {"seconds", secs},
                {"finished", iso_now()},
                {"resumed", resuming},
                {"results", res}};
    fs::write_file_atomic(partial / "stage.json", rec.dump(2));
    sfs::rename(partial, final_dir);
    fs::fsync_dir(ctx_.dir);
    ctx_.records[s.name()] = rec;
    results[s.name()] = res;
    manifest_["stages"][s.name()] = {{"status", "done"}, {"input_hash", e.hash}, {"seconds", secs}, {"finished", iso_now()}};
    write_manifest("running");
    log::info("run", "stage {}: done in {:.1f}s", s.name(), secs);
  }
  manifest_["seconds"] = log::now_seconds() - t_run;
  write_report(ctx_, results, manifest_);
  write_manifest("complete");
  log::info("run", "complete: {}", (ctx_.dir / "report.md").string());
  log::detach_file();
  return results;
}

}  // namespace subliminal::run
