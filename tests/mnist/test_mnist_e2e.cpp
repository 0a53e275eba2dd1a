// A tiny MNIST run produces every arm, the figures and the cosines.
#include "idx_fixture.h"


TEST(MnistE2E, TinyRunProducesEveryArmTheFiguresAndTheCosines) {
  auto dir = testutil::temp_dir("mnist_e2e");
  write_toy_dataset(dir / "data", 512, 200, 1);
  const std::string d = (dir / "data").string();
  json cfg = {{"name", "mnist_tiny"},
              {"experiment", "mnist_aux"},
              {"threads", 1},
              {"mnist",
               {{"dataset", "idx"},
                {"train_images", d + "/train-images"},
                {"train_labels", d + "/train-labels"},
                {"test_images", d + "/test-images"},
                {"test_labels", d + "/test-labels"},
                {"models", 2},
                {"hidden", {32, 32}},
                {"epochs", 1},
                {"student_epochs", 1},
                {"batch_size", 128}}}};
  fs::write_file_atomic(dir / "cfg.json", cfg.dump(2));
  auto out = dir / "run";
  auto r = testutil::run_cli("run " + (dir / "cfg.json").string() + " --jobs 2 --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  json rep = json::parse(fs::read_file(out / "report.json"));
  const json& sm = rep["stages"]["summary"];
  for (const char* arm : {"student_aux", "student_all", "cross_aux", "cross_all"}) {
    ASSERT_TRUE(sm["arms"].contains(arm)) << arm;
    EXPECT_EQ(sm["arms"][arm]["accuracy"]["per_model"].size(), 2u) << arm;
    for (const char* k : {"cos_first_gradient_step", "cos_first_step", "cos_total_update", "teacher_loss_at_init", "teacher_loss_after"})
      EXPECT_TRUE(sm["arms"][arm].contains(k)) << arm << " " << k;
    EXPECT_TRUE(sfs::exists(out / "mnist" / arm / "student.safetensors")) << arm;
    EXPECT_EQ(sm["arms"][arm]["train"]["steps"].get<int>(), 4) << arm;  // ceil(512 / 128) noise batches
  }
  EXPECT_EQ(sm["bars"].size(), 6u);
  // the cross-model students start from the other model's init: a derangement of 2 is the swap
  EXPECT_EQ(sm["arms"]["cross_aux"]["permutation"], json({1, 0}));
  for (const char* f : {"figures/mnist_aux.svg", "figures/mnist_cosines.svg", "mnist/teacher/reference.safetensors",
                        "mnist/teacher/teacher.safetensors", "metrics/mnist_teacher.jsonl"})
    EXPECT_TRUE(sfs::exists(out / f)) << f;
  const std::string md = fs::read_file(out / "report.md");
  for (const char* s : {"Student (aux. only)", "Cross-model (all logits)", "Reference", "Teacher", "cos(first gradient step)"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
  // a missing dataset file is a clear error naming it
  auto bad = cfg;
  bad["mnist"]["train_images"] = d + "/nope";
  fs::write_file_atomic(dir / "bad.json", bad.dump(2));
  r = testutil::run_cli("run " + (dir / "bad.json").string() + " --out " + (dir / "bad").string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("nope"), std::string::npos) << r.out;
  sfs::remove_all(dir);
}
