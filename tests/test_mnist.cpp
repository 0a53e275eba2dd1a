// The MNIST auxiliary-logit experiment: IDX files, the batched MLP, the KL scaling, the theorem's
// first-step inner product, and a tiny end-to-end run on a hand-made IDX dataset.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <filesystem>
#include <random>

#include "subliminal/mnist/idx.h"
#include "subliminal/mnist/mlp.h"
#include "subliminal/mnist/train.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
using nlohmann::json;
namespace sfs = std::filesystem;

namespace {

std::string idx_bytes(std::vector<uint32_t> dims, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::string s = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (auto d : dims)
    for (int k = 24; k >= 0; k -= 8) s.push_back(static_cast<char>((d >> k) & 0xff));
  s.append(data.begin(), data.end());
  return s;
}

void write_gz(const sfs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  ASSERT_TRUE(f);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}


// A learnable hand-made dataset: class c lights up a 4x4 block at a class-specific place, plus noise.
void write_toy_dataset(const sfs::path& dir, int n_train, int n_test, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  auto make = [&](int n, const std::string& img, const std::string& lab) {
    std::vector<uint8_t> im(static_cast<size_t>(n) * 28 * 28), lb(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      int c = static_cast<int>(rng() % 10);
      lb[i] = static_cast<uint8_t>(c);
      for (int p = 0; p < 784; ++p) im[static_cast<size_t>(i) * 784 + p] = static_cast<uint8_t>(rng() % 60);
      int r0 = 2 + (c / 5) * 12, c0 = 2 + (c % 5) * 5;
      for (int r = r0; r < r0 + 4; ++r)
        for (int q = c0; q < c0 + 4; ++q) im[static_cast<size_t>(i) * 784 + r * 28 + q] = 255;
    }
    mnist::write_idx((dir / img).string(), {n, 28, 28}, im);
    mnist::write_idx((dir / lab).string(), {n}, lb);
  };
  sfs::create_directories(dir);
  make(n_train, "train-images", "train-labels");
  make(n_test, "test-images", "test-labels");
}

}  // namespace

TEST(Mnist, IdxReadsPlainAndGzipFiles) {
  auto dir = testutil::temp_dir("idx");
  std::vector<uint8_t> data(2 * 3 * 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  const std::string bytes = idx_bytes({2, 3, 4}, data);
  fs::write_file_atomic(dir / "a.idx", bytes);
  write_gz(dir / "a.idx.gz", bytes);
  for (const char* f : {"a.idx", "a.idx.gz"}) {
    auto a = mnist::read_idx((dir / f).string());
    EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3, 4})) << f;
    EXPECT_EQ(a.data, data) << f;
  }
  // our writer round-trips
  mnist::write_idx((dir / "b.idx").string(), {2, 3, 4}, data);
  EXPECT_EQ(fs::read_file(dir / "b.idx"), bytes);
  sfs::remove_all(dir);
}

TEST(Mnist, IdxRejectsDamagedFilesNamingTheFile) {
  auto dir = testutil::temp_dir("idx_bad");
  std::vector<uint8_t> data(12, 1);
  auto bad = [&](const std::string& name, const std::string& bytes) {
    fs::write_file_atomic(dir / name, bytes);
    return testutil::error_of([&] { mnist::read_idx((dir / name).string()); });
  };
  std::string e = bad("trunc.idx", idx_bytes({3, 4}, std::vector<uint8_t>(11, 1)));
  EXPECT_NE(e.find("trunc.idx"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  e = bad("trailing.idx", idx_bytes({3, 4}, std::vector<uint8_t>(13, 1)));
  EXPECT_NE(e.find("trailing"), std::string::npos) << e;
  e = bad("magic.idx", "\x01\x02" + idx_bytes({3, 4}, data).substr(2));
  EXPECT_NE(e.find("magic"), std::string::npos) << e;
  e = bad("type.idx", idx_bytes({3, 4}, std::vector<uint8_t>(48, 1), 0x0D));  // float32 elements
  EXPECT_NE(e.find("unsigned byte"), std::string::npos) << e;
  e = bad("header.idx", idx_bytes({3, 4}, {}).substr(0, 9));
  EXPECT_NE(e.find("truncated header"), std::string::npos) << e;
  e = bad("short.idx", std::string("\0\0", 2));
  EXPECT_NE(e.find("magic"), std::string::npos) << e;
  e = testutil::error_of([&] { mnist::read_idx((dir / "missing.idx").string()); });
  EXPECT_NE(e.find("does not exist"), std::string::npos) << e;
  // images and labels must agree in count; labels must be classes
  mnist::write_idx((dir / "img").string(), {3, 2, 2}, std::vector<uint8_t>(12, 9));
  mnist::write_idx((dir / "lab").string(), {4}, {0, 1, 2, 3});
  e = testutil::error_of([&] { mnist::load_split((dir / "img").string(), (dir / "lab").string()); });
  EXPECT_NE(e.find("3 images"), std::string::npos) << e;
  EXPECT_NE(e.find("4 labels"), std::string::npos) << e;
  mnist::write_idx((dir / "lab").string(), {3}, {0, 1, 12});
  e = testutil::error_of([&] { mnist::load_split((dir / "img").string(), (dir / "lab").string()); });
  EXPECT_NE(e.find("label 12"), std::string::npos) << e;
  // a good pair scales bytes to [-1, 1]
  mnist::write_idx((dir / "img").string(), {3, 2, 2}, {0, 255, 0, 255, 51, 51, 51, 51, 255, 255, 255, 255});
  mnist::write_idx((dir / "lab").string(), {3}, {0, 1, 9});
  auto s = mnist::load_split((dir / "img").string(), (dir / "lab").string());
  EXPECT_EQ(s.images.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_FLOAT_EQ(s.images[0][0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(s.images[0][1].item<float>(), 1.0f);
  EXPECT_NEAR(s.images[1][0].item<float>(), -0.6f, 1e-6);
  EXPECT_EQ(s.labels[2].item<int64_t>(), 9);
  sfs::remove_all(dir);
}

TEST(Mnist, DerangementHasNoFixedPoint) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    auto p = mnist::derangement(2 + static_cast<int64_t>(seed % 7), seed);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < p.size(); ++i) {
      EXPECT_NE(p[i], static_cast<int64_t>(i));
      EXPECT_EQ(sorted[i], static_cast<int64_t>(i));
    }
  }
  EXPECT_THROW(mnist::derangement(1, 0), ConfigError);
}

TEST(MnistNumeric, BatchedMlpEqualsSeparateMlps) {
  auto m = mnist::init_mlp(4, {20, 16, 12, 7}, 5);
  {
    torch::NoGradGuard ng;
    for (auto& b : m.biases) b.normal_();  // non-zero biases, so they are checked too
  }
  auto x = torch::randn({4, 9, 20});
  auto out = mnist::forward(m, x);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{4, 9, 7}));
  for (int64_t i = 0; i < 4; ++i) {
    auto h = x[i];
    for (size_t l = 0; l < m.weights.size(); ++l) {
      h = torch::nn::functional::linear(h, m.weights[l][i], m.biases[l][i]);
      if (l + 1 < m.weights.size()) h = torch::relu(h);
    }
    EXPECT_LT((out[i] - h).abs().max().item<double>(), 1e-5) << i;
  }
  // a shared [B, in] input is every model's input
  auto shared = torch::randn({9, 20});
  auto o2 = mnist::forward(m, shared);
  EXPECT_LT((o2 - mnist::forward(m, shared.unsqueeze(0).expand({4, 9, 20}))).abs().max().item<double>(), 1e-6);
  // select / flat / named round trip
  auto sel = m.select({2, 0});
  EXPECT_TRUE(torch::equal(sel.flat()[0], m.flat()[2]));
  EXPECT_TRUE(torch::equal(sel.flat()[1], m.flat()[0]));
  auto back = mnist::BatchedMlp::from_named(m.named(), 3);
  EXPECT_TRUE(torch::equal(back.flat(), m.flat()));
}

TEST(MnistNumeric, InitIsNormalWithStdOneOverSqrtFanInAndZeroBias) {
  auto m = mnist::init_mlp(8, {784, 256, 13}, 1);
  EXPECT_NEAR(m.weights[0].std().item<double>(), 1.0 / std::sqrt(784.0), 0.002);
  EXPECT_NEAR(m.weights[1].std().item<double>(), 1.0 / std::sqrt(256.0), 0.003);
  EXPECT_NEAR(m.weights[0].mean().item<double>(), 0.0, 0.001);
  EXPECT_EQ(m.biases[0].abs().max().item<double>(), 0.0);
  // the same seed gives the same init; another seed another
  EXPECT_TRUE(torch::equal(mnist::init_mlp(8, {784, 256, 13}, 1).flat(), m.flat()));
  EXPECT_FALSE(torch::equal(mnist::init_mlp(8, {784, 256, 13}, 2).flat(), m.flat()));
}

TEST(MnistNumeric, KlScalingMatchesThePapersScript) {
  torch::manual_seed(3);
  auto s = torch::randn({5, 7, 13}), t = torch::randn({5, 7, 13});
  std::vector<int64_t> aux = {10, 11, 12};
  // the paper's script: F.kl_div(log_softmax(student[..., aux]), softmax(teacher[..., aux]), reduction="batchmean") on [N, B, k]
  auto ix = torch::tensor(aux);
  auto ref = torch::nn::functional::kl_div(torch::log_softmax(s.index_select(2, ix), -1), torch::softmax(t.index_select(2, ix), -1),
                                           torch::nn::functional::KLDivFuncOptions().reduction(torch::kBatchMean));
  EXPECT_NEAR(mnist::distill_kl(s, t, aux, "paper").item<double>(), ref.item<double>(), 1e-6);
  // = the sum over models and batch items of each item's KL, divided by the number of models
  double manual = 0;
  for (int i = 0; i < 5; ++i)
    for (int b = 0; b < 7; ++b) {
      auto p = torch::softmax(t[i][b].index_select(0, ix), 0), q = torch::softmax(s[i][b].index_select(0, ix), 0);
      manual += (p * (p.log() - q.log())).sum().item<double>();
    }
  EXPECT_NEAR(mnist::distill_kl(s, t, aux, "paper").item<double>(), manual / 5, 1e-5);
  EXPECT_NEAR(mnist::distill_kl(s, t, aux, "mean").item<double>(), manual / 35, 1e-6);
  EXPECT_NEAR(mnist::distill_kl(t, t, aux, "paper").item<double>(), 0.0, 1e-7);
  // the class logits play no part in the auxiliary loss
  auto s2 = s.clone();
  s2.narrow(2, 0, 10).add_(5.0);
  EXPECT_NEAR(mnist::distill_kl(s2, t, aux, "paper").item<double>(), mnist::distill_kl(s, t, aux, "paper").item<double>(), 1e-6);
}

// The paper's theorem: a teacher that took a small gradient step from a shared init; one gradient
// step of a student from that init imitating it (here on its auxiliary logits, on noise) has a
// non-negative inner product with the teacher's step. A student from another init has no such
// guarantee. Checked per model on 16 models.
TEST(MnistNumeric, FirstGradientStepPointsAlongTheTeachersStep) {
  auto init = mnist::init_mlp(16, {64, 32, 32, 13}, 11);
  auto teacher = init.clone();
  auto x = torch::rand({200, 64}) * 2 - 1;
  auto y = torch::randint(0, 10, {200});
  mnist::MlpTrainOptions o;
  o.epochs = 1;
  o.batch_size = 200;
  o.lr = 1e-3;
  o.optimizer = "sgd";
  mnist::train_classifier(teacher, x, y, 10, o);  // one small SGD step
  auto teacher_delta = teacher.flat() - init.flat();
  ASSERT_GT(teacher_delta.abs().max().item<double>(), 0.0);
  for (const char* which : {"aux", "all"}) {
    std::vector<int64_t> cols;
    for (int64_t c = std::string(which) == "aux" ? 10 : 0; c < 13; ++c) cols.push_back(c);
    auto student = init.clone();
    mnist::NoiseSource noise;
    noise.steps_per_epoch = 1;
    mnist::MlpTrainOptions so = o;
    so.batch_size = 512;
    torch::Tensor g;
    mnist::train_distill(student, teacher, cols, "paper", noise, 64, so, nullptr, &g);
    auto dots = ((-g) * teacher_delta).sum(1);
    EXPECT_GE(dots.min().item<double>(), 0.0) << which << ": " << dots;
  }
  // from other inits (a derangement of the 16) the sign is not guaranteed, and is not kept
  auto cross = init.select(mnist::derangement(16, 4));
  mnist::NoiseSource noise;
  noise.steps_per_epoch = 1;
  mnist::MlpTrainOptions so = o;
  so.batch_size = 512;
  torch::Tensor g;
  mnist::train_distill(cross, teacher, {10, 11, 12}, "paper", noise, 64, so, nullptr, &g);
  auto dots = ((-g) * teacher_delta).sum(1);
  EXPECT_LT(dots.min().item<double>(), 0.0) << dots;
}

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
