// Sweep files: grid/zip expansion, names, and errors naming the file and axis.
#include "sweep_fixture.h"


TEST(Sweep, GridAndZipExpandInFileOrderWithStableReadableNames) {
  auto dir = testutil::temp_dir("sweep_expand");
  const std::string tiny = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  auto f = write_sweep(dir, R"({"name": "s", "base": ")" + tiny + R"(", "set": {"students.seeds": 1},
    "zip": {"finetune.train.lr": [0.001, 0.003], "finetune.train.steps": [6, 2]},
    "grid": {"teacher.target": ["owl", "eagle", "dolphin"], "seed": [1, 2], "teacher.lora.r": [4], "finetune.lora.r": [8]}})");
  auto s = experiments::load_sweep(f.string(), (dir / "out").string());
  ASSERT_EQ(s.runs.size(), 2u * 3 * 2);
  // zip first (file order), then the grid; shared last segments ("r") keep the full key
  EXPECT_EQ(s.runs[0].name, "lr-0.001_steps-6_target-owl_seed-1_teacher.lora.r-4_finetune.lora.r-8");
  EXPECT_EQ(s.runs[1].name, "lr-0.001_steps-6_target-owl_seed-2_teacher.lora.r-4_finetune.lora.r-8");
  EXPECT_EQ(s.runs.back().name, "lr-0.003_steps-2_target-dolphin_seed-2_teacher.lora.r-4_finetune.lora.r-8");
  std::set<std::string> names;
  for (const auto& r : s.runs) {
    names.insert(r.name);
    EXPECT_EQ(r.config["name"], "s." + r.name);
    EXPECT_EQ(r.config["students"]["seeds"], 1);  // "set" reaches every run
  }
  EXPECT_EQ(names.size(), s.runs.size());
  // the values went into the resolved configs (zip pairs stay paired)
  EXPECT_EQ(s.runs.back().config["finetune"]["train"]["lr"], 0.003);
  EXPECT_EQ(s.runs.back().config["finetune"]["train"]["steps"], 2);
  EXPECT_EQ(s.runs.back().config["teacher"]["target"], "dolphin");
  EXPECT_EQ(s.runs.back().config["seed"], 2);
  // the same file gives the same names and configs
  auto again = experiments::load_sweep(f.string(), (dir / "out").string());
  for (size_t i = 0; i < s.runs.size(); ++i) {
    EXPECT_EQ(again.runs[i].name, s.runs[i].name);
    EXPECT_EQ(again.runs[i].config, s.runs[i].config);
  }
  experiments::write_sweep_files(s);
  EXPECT_EQ(fs::read_file(dir / "out" / "runs.txt").substr(0, s.runs[0].name.size() + 1), s.runs[0].name + "\n");
  EXPECT_EQ(json::parse(fs::read_file(dir / "out" / "configs" / (s.runs[3].name + ".json"))), s.runs[3].config);
  for (const auto& r : s.runs) EXPECT_EQ(experiments::run_status(s, r), experiments::RunStatus::pending);
  // the Slurm script: array over the given indices, throttle, resources, the runs file
  s.slurm.max_parallel = 3;
  s.slurm.gpus = 1;
  s.slurm.partition = "gpu";
  auto script = experiments::slurm_script(s, {0, 5, 7}, "/opt/subliminal");
  EXPECT_NE(script.find("#SBATCH --array=0,5,7%3\n"), std::string::npos) << script;
  EXPECT_NE(experiments::slurm_script(s, {0, 1, 2, 3, 7, 9, 10}, "/x").find("#SBATCH --array=0-3,7,9-10%3\n"), std::string::npos);
  EXPECT_NE(script.find("#SBATCH --gpus-per-task=1\n"), std::string::npos);
  EXPECT_NE(script.find("#SBATCH --partition=gpu\n"), std::string::npos);
  EXPECT_NE(script.find("#SBATCH --requeue\n"), std::string::npos);
  EXPECT_NE(script.find("exec /opt/subliminal run "), std::string::npos);
  EXPECT_NE(script.find(" --resume "), std::string::npos);
  EXPECT_EQ(script.find("srun"), std::string::npos);
  // tasks > 1: each run is one data-parallel run over that many srun processes
  s.slurm.tasks = 2;
  auto dp = experiments::slurm_script(s, {0}, "/opt/subliminal");
  EXPECT_NE(dp.find("#SBATCH --ntasks=2\n"), std::string::npos) << dp;
  EXPECT_NE(dp.find("export MASTER_ADDR="), std::string::npos) << dp;
  EXPECT_NE(dp.find("exec srun --kill-on-bad-exit=1 /opt/subliminal run "), std::string::npos) << dp;
  sfs::remove_all(dir);
}

TEST(Sweep, BadSweepsNameTheFileAndTheAxis) {
  auto dir = testutil::temp_dir("sweep_bad");
  const std::string tiny = testutil::source_dir() + "/tests/configs/tiny_trait.json";
  auto base = R"("base": ")" + tiny + R"(", )";
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("grid": {"teacher.target": []}})")).find("$.grid[\"teacher.target\"]"), std::string::npos);
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("zip": {"seed": [1, 2], "teacher.target": ["owl"]}})")).find("$.zip[\"teacher.target\"] has 1 values"),
            std::string::npos);
  // an unknown config key in an axis: the config parser names the path and the run
  auto e = error_of(write_sweep(dir, "{" + base + R"("grid": {"teacher.targt": ["owl"]}})"));
  EXPECT_NE(e.find("targt"), std::string::npos) << e;
  EXPECT_NE(e.find("sweep.json"), std::string::npos) << e;
  // a bad value: the run's config fails validation naming the path
  e = error_of(write_sweep(dir, "{" + base + R"("grid": {"teacher.target": ["owl", "unicorn"]}})"));
  EXPECT_NE(e.find("$.teacher.target"), std::string::npos) << e;
  EXPECT_NE(e.find("target-unicorn"), std::string::npos) << e;
  EXPECT_NE(error_of(write_sweep(dir, R"({"base": "nowhere.json"})")).find("$.base"), std::string::npos);
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("grdi": {}})")).find("unknown key \"grdi\""), std::string::npos);
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("slurm": {"gpu": 1}})")).find("$.slurm"), std::string::npos);
  EXPECT_NE(error_of(write_sweep(dir, "{" + base + R"("slurm": {"tasks": 0}})")).find("$.slurm.tasks"), std::string::npos);
  sfs::remove_all(dir);
}
