// Runner: run directory, stage skipping/resuming, manifest.
#include "subliminal/run/runner.h"

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <ctime>
#include <set>
#include <fstream>
#include <thread>

#include "subliminal/model/llama.h"
#include "subliminal/model/runtime.h"
#include "subliminal/run/pool.h"
#include "subliminal/report/claims.h"
#include "subliminal/report/report.h"
#include "subliminal/train/dist.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"
#include "subliminal/util/signals.h"
#include "subliminal/util/version.h"

namespace subliminal::run {

static constexpr const char* kStageFormat = "subliminal-stage-v1";

using fs::iso_now;

std::string input_hash(const std::string& name, const json& inputs) {
  return fs::sha256_hex(std::string(kStageFormat) + "\n" + name + "\n" + inputs.dump());
}

std::string output_digest(const json& rec) {
  std::string s;
  for (auto it = rec.at("outputs").begin(); it != rec.at("outputs").end(); ++it) s += it.key() + ":" + it.value().get<std::string>() + "\n";
  return fs::sha256_hex(s);
}

std::string digest(const RunContext& ctx, const std::string& stage) {
  const std::string name = ctx.stage_name(stage);
  return ctx.records.count(name) ? output_digest(ctx.records.at(name)) : std::string("?");
}

int RunContext::rank() const { return comm ? comm->rank() : 0; }
int RunContext::world() const { return comm ? comm->world() : 1; }

// A stage's inputs as hashed and recorded: a training stage run data-parallel also records the world
// size (grad_accum x world micro-batches: the sums, and so the weights, may differ from one process).
static json stage_inputs(Stage& s, const RunContext& ctx) {
  json in = s.inputs(ctx);
  if (ctx.world() > 1 && s.data_parallel(ctx)) in["data_parallel_world"] = ctx.world();
  // The grouped attention path changes the last bits of every model's outputs: recorded where it is
  // on (absent at the default, so the hashes of every earlier run stay as they were).
  if (ctx.cfg.attention != "reference") in["attention"] = ctx.cfg.attention;
  return in;
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
  PlanEntry e{s.name(), StageAction::run, input_hash(s.name(), stage_inputs(s, ctx_)), ""};
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

std::vector<std::string> check_stage_outputs(const sfs::path& stage_dir, const json& record, bool extra_files) {
  std::vector<std::string> problems;
  std::set<std::string> listed;
  if (!record.is_object() || !record.contains("outputs") || !record["outputs"].is_object()) {
    problems.push_back((stage_dir / "stage.json").string() + ": unreadable or without an outputs map");
    return problems;
  }
  for (auto it = record["outputs"].begin(); it != record["outputs"].end(); ++it) {
    listed.insert(it.key());
    const auto f = stage_dir / it.key();
    if (!sfs::is_regular_file(f)) {
      problems.push_back(f.string() + ": missing");
      continue;
    }
    const std::string h = fs::sha256_file_cached(f);
    if (!it.value().is_string() || h != it.value().get<std::string>())
      problems.push_back(f.string() + ": sha256 " + h.substr(0, 16) + "... differs from the recorded " +
                         (it.value().is_string() ? it.value().get<std::string>().substr(0, 16) + "..." : std::string("(not a string)")));
  }
  if (!extra_files) return problems;
  std::error_code ec;
  for (auto it = sfs::recursive_directory_iterator(stage_dir, ec); it != sfs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_directory() && sfs::exists(it->path() / "stage.json")) {  // a nested stage (eval/base under eval/...)
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file()) continue;
    const auto rel = sfs::relative(it->path(), stage_dir).string();
    if (rel != "stage.json" && !listed.count(rel)) problems.push_back(it->path().string() + ": not a recorded output");
  }
  return problems;
}

std::vector<StageCheck> Runner::verify() {
  std::vector<StageCheck> out;
  for (auto& sp : stages_) {
    Stage& s = *sp;
    StageCheck c{s.name(), "ok", {}};
    const sfs::path d = ctx_.stage_dir(s.name());
    json rec = read_json_or_null(d / "stage.json");
    if (!rec.is_object()) {
      c.status = sfs::exists(ctx_.dir / (s.name() + ".partial")) ? "interrupted" : "not done";
      ctx_.records[s.name()] = {{"outputs", {{"(not done)", s.name()}}}};
      out.push_back(c);
      continue;
    }
    const std::string want = input_hash(s.name(), stage_inputs(s, ctx_));
    c.problems = check_stage_outputs(d, rec, true);
    if (!c.problems.empty()) c.status = "corrupt";
    else if (rec.value("input_hash", "") != want) {
      c.status = "stale";
      c.problems.push_back((d / "stage.json").string() + ": input hash " + rec.value("input_hash", "?").substr(0, 16) +
                           " is not what the config and the upstream stages give now (" + want.substr(0, 16) + ")");
    }
    ctx_.records[s.name()] = rec;
    out.push_back(c);
  }
  ctx_.records.clear();
  return out;
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

bool Runner::prepare(Stage& s, const PlanEntry& e) {
  sfs::path final_dir = ctx_.stage_dir(s.name());
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
  if (!resuming) fs::write_file_atomic(partial / "partial.json", json({{"input_hash", e.hash}, {"started", iso_now()}}).dump(2));
  return resuming;
}

json Runner::execute(Stage& s, const PlanEntry& e, bool resuming) {
  sfs::path final_dir = ctx_.stage_dir(s.name());
  sfs::path partial = ctx_.dir / (s.name() + ".partial");
  std::error_code ec;
  const double t0 = log::now_seconds();
  json res = s.run(ctx_, partial, resuming);
  const double secs = log::now_seconds() - t0;
  for (const auto& sc : s.scratch()) sfs::remove_all(partial / sc, ec);
  fs::remove_temp_files(partial);  // left by a process killed mid-write before this one resumed
  sfs::remove(partial / "partial.json", ec);
  json outputs = json::object();
  for (const auto& f : sfs::recursive_directory_iterator(partial))
    if (f.is_regular_file()) outputs[sfs::relative(f.path(), partial).string()] = fs::sha256_file(f.path());
  json rec = {{"stage", s.name()},
              {"input_hash", e.hash},
              {"inputs", stage_inputs(s, ctx_)},
              {"outputs", outputs},
              {"seconds", secs},
              {"threads", model::get_threads()},
              {"finished", iso_now()},
              {"resumed", resuming},
              {"results", res}};
  fs::write_file_atomic(partial / "stage.json", rec.dump(2));
  fs::make_dirs(final_dir.parent_path());
  sfs::rename(partial, final_dir);
  fs::fsync_dir(final_dir.parent_path());
  return rec;
}

void Runner::record_done(Stage& s, const PlanEntry& e, const json& rec, json& results) {
  ctx_.records[s.name()] = rec;
  results[s.name()] = rec.value("results", json::object());
  manifest_["stages"][s.name()] = {{"status", "done"}, {"input_hash", e.hash}, {"seconds", rec.value("seconds", 0.0)},
                                   {"threads", rec.value("threads", 0)}, {"finished", rec.value("finished", "")}};
  write_manifest("running");
  log::info("run", "stage {}: done in {:.1f}s", s.name(), rec.value("seconds", 0.0));
}

void Runner::record_skipped(Stage& s, const PlanEntry& e, json& results) {
  json rec = read_json_or_null(ctx_.stage_dir(s.name()) / "stage.json");
  ctx_.records[s.name()] = rec;
  results[s.name()] = rec.value("results", json::object());
  manifest_["stages"][s.name()] = {{"status", "skipped"}, {"input_hash", e.hash}, {"seconds", rec.value("seconds", 0.0)}};
  log::info("run", "stage {}: skipped, {}", s.name(), e.note);
}

void Runner::check_inputs(Stage& s) {
  for (const auto& d : s.deps()) {
    auto it = ctx_.records.find(d);
    if (it == ctx_.records.end()) continue;
    auto problems = check_stage_outputs(ctx_.stage_dir(d), it->second, false);
    if (problems.empty()) continue;
    std::string list;
    for (const auto& p : problems) list += "\n  " + p;
    throw DataError("stage '" + s.name() + "' reads stage '" + d + "', whose files no longer match its stage.json:" + list,
                    "run `subliminal verify " + ctx_.dir.string() + "`; remove " + ctx_.stage_dir(d).string() +
                        " to have it made again");
  }
}

void Runner::run_in_process(json& results) {
  for (auto& sp : stages_) {
    Stage& s = *sp;
    signals::throw_if_stopped("run (before stage " + s.name() + ")", "finished stages are kept");
    PlanEntry e = plan_one(s);
    if (e.action == StageAction::skip) {
      record_skipped(s, e, results);
      continue;
    }
    check_inputs(s);
    const bool resuming = prepare(s, e);
    log::info("run", "stage {}: {} (input hash {})", s.name(), resuming ? "resuming" : "running", e.hash.substr(0, 16));
    manifest_["stages"][s.name()] = {{"status", "running"}, {"input_hash", e.hash}, {"started", iso_now()}};
    write_manifest("running");
    if (ctx_.comm && s.data_parallel(ctx_)) announce({{"stage", s.name()}, {"hash", e.hash}, {"resuming", resuming}});
    json rec;
    try {
      rec = execute(s, e, resuming);
    } catch (const Interrupted&) {
      manifest_["stages"][s.name()]["status"] = "interrupted";
      throw;
    } catch (...) {
      manifest_["stages"][s.name()]["status"] = "failed";
      throw;
    }
    record_done(s, e, rec, results);
  }
}

// Up to `jobs` stages at once, each in a worker process (`subliminal __stage`, stage_threads ATen
// threads): small models use a second core far better as a second job than as a second thread.
// A stage starts when the stages it reads are done, in list order among the ready ones.
void Runner::run_parallel(json& results) {
  const size_t n = stages_.size();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < n; ++i) index[stages_[i]->name()] = i;
  for (auto& sp : stages_)
    for (const auto& d : sp->deps())
      if (!index.count(d) || index[d] >= index[sp->name()])
        throw Error("internal: stage '" + sp->name() + "' depends on '" + d + "', which is not an earlier stage");
  enum { pending, running, done };
  std::vector<int> state(n, pending);
  std::map<size_t, PlanEntry> entries;  // of the running stages, by index
  WorkerPool pool(ctx_.jobs);
  bool forwarded = false;                // the stop request was passed to the workers
  std::vector<std::string> interrupted;  // stages that stopped at a safe point
  std::string exe = ctx_.worker_exe.empty() ? fs::self_exe_for_spawn() : ctx_.worker_exe;
  log::info("run", "{} stages at a time, {} thread{} each (jobs {})", ctx_.jobs, ctx_.stage_threads,
            ctx_.stage_threads == 1 ? "" : "s", ctx_.jobs);
  // SIGUSR1: each worker checkpoints at its next safe point and exits 75 (see util/signals.h)
  auto forward_stop = [&]() {
    if (forwarded) return;
    pool.signal_all(SIGUSR1);
    forwarded = true;
  };
  auto stop_all = [&]() {
    forward_stop();
    pool.wait_all();
  };
  try {
    while (true) {
      // start every ready stage there is room for (skipped stages complete at once)
      bool progressed = true;
      while (progressed) {
        progressed = false;
        for (size_t i = 0; i < n && !pool.full() && !signals::stop_requested(); ++i) {
          if (state[i] != pending) continue;
          Stage& s = *stages_[i];
          bool ready = true;
          for (const auto& d : s.deps()) ready = ready && state[index[d]] == done;
          if (!ready) continue;
          PlanEntry e = plan_one(s);
          if (e.action == StageAction::skip) {
            record_skipped(s, e, results);
            state[i] = done;
            progressed = true;
            continue;
          }
          check_inputs(s);
          const bool resuming = prepare(s, e);
          std::vector<std::string> args = {exe, "__stage", "--dir", ctx_.dir.string(), "--stage", s.name(), "--hash", e.hash,
                                           "--threads", std::to_string(ctx_.stage_threads)};
          if (resuming) args.push_back("--resume");
          log::info("run", "stage {}: {} in a worker (input hash {})", s.name(), resuming ? "resuming" : "running",
                    e.hash.substr(0, 16));
          pid_t pid = pool.start(args, i);
          manifest_["stages"][s.name()] = {{"status", "running"}, {"input_hash", e.hash}, {"started", iso_now()}, {"pid", pid}};
          write_manifest("running");
          entries[i] = e;
          state[i] = running;
          progressed = true;
        }
      }
      if (pool.empty()) break;
      // wait for one worker, passing on a stop request (they may have had it already)
      const WorkerPool::Exit x = pool.wait_one([&]() {
        if (signals::stop_requested()) forward_stop();
      });
      const PlanEntry e = entries[x.tag];
      entries.erase(x.tag);
      Stage& s = *stages_[x.tag];
      const int code = x.code;
      if (code == signals::kInterruptedExit) {  // stopped at a safe point; the others are stopping too
        manifest_["stages"][s.name()]["status"] = "interrupted";
        write_manifest("running");
        interrupted.push_back(s.name());
        forward_stop();
        continue;
      }
      if (code != 0) {
        manifest_["stages"][s.name()]["status"] = "failed";
        stop_all();
        const std::string msg = "stage '" + s.name() + "' failed in its worker process (exit code " + std::to_string(code) +
                                "); its error is printed above and in " + (ctx_.dir / "run.log").string();
        const std::string hint = "fix the cause and run the same command again with --resume: done stages are kept";
        if (code == 2) throw ConfigError(msg, hint);
        throw Error(msg, hint);
      }
      json rec = read_json_or_null(ctx_.stage_dir(s.name()) / "stage.json");
      if (!rec.is_object() || rec.value("input_hash", "") != e.hash)
        throw Error("stage '" + s.name() + "': its worker exited 0 but left no matching " +
                    (ctx_.stage_dir(s.name()) / "stage.json").string());
      state[x.tag] = done;
      record_done(s, e, rec, results);
    }
  } catch (...) {
    stop_all();
    manifest_["status"] = "failed";
    write_manifest("failed");
    throw;
  }
  if (signals::stop_requested() || !interrupted.empty()) {
    std::string list;
    for (const auto& x : interrupted) list += (list.empty() ? "" : ", ") + x;
    throw Interrupted("run stopped by " + (signals::stop_requested() ? signals::stop_signal_name() : std::string("a worker's signal")) +
                          (list.empty() ? "" : "; stages stopped at a checkpoint: " + list) + "; finished stages are kept",
                      "run the same command again with --resume to continue");
  }
  for (size_t i = 0; i < n; ++i)
    if (state[i] != done) throw Error("internal: stage '" + stages_[i]->name() + "' never became ready");
}

void Runner::announce(const json& msg) {
  ctx_.comm->post("subliminal/run/" + std::to_string(announced_++), msg.dump());
}

void Runner::run_follower() {
  log::info("run", "rank {} of {}: runs the training stages rank 0 announces (run directory {})", ctx_.rank(), ctx_.world(),
            ctx_.dir.string());
  for (int seq = 0;; ++seq) {
    const json msg = json::parse(ctx_.comm->wait_for("subliminal/run/" + std::to_string(seq)));
    if (msg.contains("done")) {
      ctx_.comm->barrier();  // rank 0 hosts the store: it leaves after every rank has read "done"
      return;
    }
    if (msg.contains("failed")) throw Error("rank 0 stopped the run: " + msg["failed"].get<std::string>());
    const std::string name = msg.at("stage").get<std::string>();
    Stage* s = nullptr;
    for (auto& sp : stages_)
      if (sp->name() == name) s = sp.get();
    if (!s) throw ConfigError("rank " + std::to_string(ctx_.rank()) + ": rank 0 announced stage '" + name + "', which this rank's config does not have",
                              "start every rank with the same config and --set overrides");
    for (const auto& d : s->deps()) ctx_.records[d] = read_json_or_null(ctx_.stage_dir(d) / "stage.json");
    if (input_hash(name, stage_inputs(*s, ctx_)) != msg.at("hash").get<std::string>())
      throw ConfigError("rank " + std::to_string(ctx_.rank()) + ": stage '" + name + "' has another input hash here than on rank 0",
                        "start every rank with the same config and --set overrides, on a run directory every rank sees (shared filesystem)");
    log::info("run", "rank {}: stage {}: {}", ctx_.rank(), name, msg.at("resuming").get<bool>() ? "resuming" : "running");
    // rank 0 prepared <name>.partial; here the stage reads its checkpoints (when resuming) and writes nothing
    s->run(ctx_, ctx_.dir / (name + ".partial"), msg.at("resuming").get<bool>());
  }
}

void Runner::run_worker(const StageFactory& make_stages, const sfs::path& dir, const std::string& name, const std::string& expected_hash, int threads,
                        bool resume) {
  const sfs::path cfg_path = dir / "config.resolved.json";
  RunContext ctx;
  ctx.cfg = config::load_config(cfg_path.string(), {});
  ctx.dir = dir;
  ctx.resume = resume;
  ctx.threads = model::setup_threads(threads);
  model::set_attention_path(model::attention_path_from(ctx.cfg.attention));
  ctx.stage_threads = ctx.threads;
  log::set_interactive(false);  // progress as log lines: several workers share the terminal
  log::attach_file((dir / "run.log").string());
  Runner r(ctx, make_stages(ctx.cfg));
  try {
    for (auto& sp : r.stages_) {
      if (sp->name() != name) continue;
      // its inputs cite only the stages it reads, which the parent ran first
      for (const auto& d : sp->deps()) r.ctx_.records[d] = read_json_or_null(dir / d / "stage.json");
      PlanEntry e = r.plan_one(*sp);
      if (e.hash != expected_hash)
        throw ConfigError("worker for stage '" + name + "': " + cfg_path.string() + " no longer gives the input hash the run planned",
                          "was the run directory changed by another command? run it again");
      if (e.action != StageAction::skip) r.execute(*sp, e, e.action == StageAction::resume && resume);
      log::detach_file();
      return;
    }
    throw ConfigError("worker: no stage '" + name + "' in the run " + dir.string());
  } catch (const std::exception& ex) {
    log::error(name.c_str(), "{}", ex.what());
    log::detach_file();
    throw;
  }
}

// Claim registrations carry over from earlier invocations; a new claim file (or a changed one) is
// recorded now, before any stage runs, with what the run had already done.
void Runner::register_claims(const json& prev) {
  json regs = prev.is_object() && prev.contains("claims") && prev["claims"].is_array() ? prev["claims"] : json::array();
  if (ctx_.claims.is_object()) {
    // the same file as the latest registration: nothing new; otherwise (a new file, or an earlier one
    // again) a new record, so the latest registration is the file this run was given
    const bool known = !regs.empty() && regs.back().value("sha256", std::string()) == fs::sha256_hex(ctx_.claims["text"].get<std::string>());
    if (!known) {
      std::vector<std::string> done;
      for (const auto& s : stages_)
        if (sfs::exists(ctx_.dir / s->name() / "stage.json")) done.push_back(s->name());
      json rec = report::registration_record(ctx_.claims["source"].get<std::string>(), ctx_.claims["claims"],
                                             ctx_.claims["text"].get<std::string>(), ctx_.claims["git"], done);
      log::info("run", "claims registered: {} (sha256 {}; {} claims; {} of {} stages already done{})", rec["source"].get<std::string>(),
                rec["sha256"].get<std::string>().substr(0, 16), ctx_.claims["claims"]["claims"].size(), done.size(), stages_.size(),
                rec["result_stages_done"].get<int>() > 0 ? ": results already exist, so these claims are not pre-registered" : "");
      regs.push_back(rec);
    } else {
      log::info("run", "claims {} already registered in this run", ctx_.claims["source"].get<std::string>());
    }
  }
  if (!regs.empty()) manifest_["claims"] = regs;
}

json Runner::run() {
  if (ctx_.world() > 1 && ctx_.jobs > 1) throw Error("internal: a data-parallel run takes its stages one at a time (jobs 1)");
  if (ctx_.rank() > 0) {
    run_follower();
    return json::object();
  }
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
               {"libtorch_source", model::torch_source()},
               {"libtorch_dir", model::torch_dir()},
               {"parallel_info", model::parallel_info()},
               {"threads", ctx_.threads},
               {"jobs", ctx_.jobs},
               {"world_size", ctx_.world()},
               {"stage_threads", ctx_.jobs > 1 ? ctx_.stage_threads : ctx_.threads},
               {"device", ctx_.cfg.device},
               {"precision", ctx_.cfg.precision},
               {"attention", ctx_.cfg.attention},
               {"bf16_matmul_hardware", model::cpu_has_bf16_matmul()},
               {"host", host_info()},
               {"command_line", ctx_.command_line},
               {"seed", ctx_.cfg.seed},
               {"config_sha256", fs::sha256_hex(resolved.dump())},
               {"started", iso_now()},
               {"stages", json::object()}};
  json prev = read_json_or_null(ctx_.dir / "manifest.json");
  if (prev.is_object() && prev.contains("stages")) manifest_["previous_stages"] = prev["stages"];
  register_claims(prev);
  write_manifest("running");
  const double t_run = log::now_seconds();
  json results = json::object();
  try {
    if (ctx_.jobs > 1) run_parallel(results);
    else run_in_process(results);
    manifest_["seconds"] = log::now_seconds() - t_run;
    report::write_report(ctx_.dir, ctx_.cfg, results, manifest_);
    write_manifest("complete");
  } catch (const Interrupted& ex) {
    write_manifest("interrupted");
    if (ctx_.comm) announce({{"failed", ex.what()}});
    throw;
  } catch (const std::exception& ex) {
    log::error("run", "{}", ex.what());  // run.log keeps why the run stopped (the console gets it from main)
    try {
      write_manifest("failed");
    } catch (const std::exception&) {  // (the disk may be what failed)
    }
    if (ctx_.comm) announce({{"failed", ex.what()}});
    throw;
  }
  if (ctx_.comm) {
    announce({{"done", true}});
    ctx_.comm->barrier();
  }
  log::info("run", "complete: {}", (ctx_.dir / "report.md").string());
  log::detach_file();
  return results;
}

}  // namespace subliminal::run
