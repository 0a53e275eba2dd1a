// The paper's MLP demonstration (experiment "mnist_aux"): N batched MLPs with 10 class logits and
// `aux` auxiliary logits; teachers learn digits; students copy only the teachers' auxiliary logits
// on noise, from the teachers' own inits (student_*) or from other inits (cross_*).
#include <torch/torch.h>

#include <cstdlib>

#include "subliminal/util/stats.h"
#include "subliminal/mnist/idx.h"
#include "subliminal/mnist/mlp.h"
#include "subliminal/mnist/train.h"
#include "subliminal/model/runtime.h"
#include "subliminal/model/safetensors.h"
#include "subliminal/report/report.h"
#include "subliminal/experiments/stages.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "subliminal/util/log.h"

namespace subliminal::experiments {

using namespace run;

namespace {

constexpr int64_t kClasses = 10;

std::string datasets_root() {
  if (const char* e = std::getenv("SUBLIMINAL_DATASETS")) return e;
  return std::string(SUBLIMINAL_SOURCE_DIR) + "/.cache/datasets";
}

// The first of `names` that exists in `dir` (plain or .gz), else the first name (the error names it).
std::string find_in(const std::string& dir, const std::string& name) {
  for (const std::string& cand : {name, name + ".gz"}) {
    auto p = sfs::path(dir) / cand;
    if (sfs::exists(p)) return p.string();
  }
  return (sfs::path(dir) / name).string();
}

struct DataPaths {
  std::string train_images, train_labels, test_images, test_labels;
};
DataPaths data_paths(const config::MnistConfig& m) {
  DataPaths p;
  std::string dir;
  if (m.dataset == "mnist_sample") dir = datasets_root() + "/mnist_sample";
  if (m.dataset == "fashion_mnist") dir = "/usr/share/datasets/fashion-mnist";
  if (!dir.empty()) {
    p.train_images = find_in(dir, "train-images-idx3-ubyte");
    p.train_labels = find_in(dir, "train-labels-idx1-ubyte");
    p.test_images = find_in(dir, "t10k-images-idx3-ubyte");
    p.test_labels = find_in(dir, "t10k-labels-idx1-ubyte");
  }
  if (!m.train_images.empty()) p.train_images = m.train_images;
  if (!m.train_labels.empty()) p.train_labels = m.train_labels;
  if (!m.test_images.empty()) p.test_images = m.test_images;
  if (!m.test_labels.empty()) p.test_labels = m.test_labels;
  return p;
}

// A dataset file's SHA-256, computed once per process (every stage's inputs cite the dataset, and
// plans are computed more than once); keyed by path, size and modification time.
std::string file_sha256(const std::string& path) {
  if (!sfs::exists(path)) return "missing";
  static std::map<std::string, std::string> memo;
  const std::string key = path + "|" + std::to_string(sfs::file_size(path)) + "|" +
                          std::to_string(sfs::last_write_time(path).time_since_epoch().count());
  auto it = memo.find(key);
  if (it == memo.end()) it = memo.emplace(key, fs::sha256_file(path)).first;
  return it->second;
}

json data_inputs(const config::MnistConfig& m) {
  auto p = data_paths(m);
  json j = json::object();
  for (const auto& [k, path] : std::vector<std::pair<std::string, std::string>>{
           {"train_images", p.train_images}, {"train_labels", p.train_labels}, {"test_images", p.test_images}, {"test_labels", p.test_labels}})
    j[k] = {{"path", path}, {"sha256", file_sha256(path)}};
  return j;
}

struct Data {
  mnist::Split train, test;
};
Data load_data(const config::MnistConfig& m) {
  auto p = data_paths(m);
  Data d{mnist::load_split(p.train_images, p.train_labels, kClasses), mnist::load_split(p.test_images, p.test_labels, kClasses)};
  if (m.train_limit > 0 && m.train_limit < d.train.images.size(0)) {
    d.train.images = d.train.images.narrow(0, 0, m.train_limit).contiguous();
    d.train.labels = d.train.labels.narrow(0, 0, m.train_limit).contiguous();
  }
  return d;
}

std::vector<int64_t> layer_sizes(const config::MnistConfig& m, int64_t in) {
  std::vector<int64_t> s = {in};
  for (int h : m.hidden) s.push_back(h);
  s.push_back(kClasses + m.aux);
  return s;
}

void save_mlp(const sfs::path& path, const mnist::BatchedMlp& m) {
  model::NamedTensors t;
  for (auto& [k, v] : m.named()) t.emplace_back(k, v);
  model::write_safetensors(path.string(), t, {{"format", "pt"}});
}
mnist::BatchedMlp load_mlp(const sfs::path& path, int layers) {
  auto f = model::read_safetensors(path.string());
  std::map<std::string, torch::Tensor> t;
  for (auto& [k, v] : f.tensors) t[k] = v.clone();
  return mnist::BatchedMlp::from_named(t, layers);
}

json per_model_summary(const std::vector<double>& xs) {
  auto s = stats::summarize(xs);
  return {{"mean", s.mean}, {"sd", s.sd}, {"ci95", {s.lo, s.hi}}, {"n", s.n}, {"per_model", xs}};
}

std::vector<double> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}
// Row-wise cosine of [N, P] tensors.
std::vector<double> cosines(const torch::Tensor& a, const torch::Tensor& b) {
  auto a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  return to_vec((a64 * b64).sum(1) / (a64.norm(2, 1) * b64.norm(2, 1)).clamp_min(1e-300));
}

mnist::MlpTrainOptions train_options(const config::MnistConfig& m, int epochs, uint64_t seed, const std::string& tag,
                                     const std::string& metrics_path) {
  mnist::MlpTrainOptions o;
  o.epochs = epochs;
  o.batch_size = m.batch_size;
  o.lr = m.lr;
  o.optimizer = m.optimizer;
  o.weight_decay = m.weight_decay;
  o.seed = seed;
  o.tag = tag;
  o.metrics_path = metrics_path;
  return o;
}

json teacher_inputs(const RunContext& ctx) {
  const auto& m = ctx.cfg.mnist;
  return {{"data", data_inputs(m)}, {"train_limit", m.train_limit}, {"models", m.models}, {"hidden", m.hidden}, {"aux", m.aux},
          {"epochs", m.epochs}, {"lr", m.lr}, {"batch_size", m.batch_size}, {"optimizer", m.optimizer},
          {"weight_decay", m.weight_decay}, {"seed", ctx.cfg.seed}};
}

class MnistTeacherStage : public Stage {
 public:
  std::string name() const override { return "mnist/teacher"; }
  std::vector<std::string> deps() const override { return {}; }
  json inputs(const RunContext& ctx) const override { return teacher_inputs(ctx); }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    const auto& m = ctx.cfg.mnist;
    auto d = load_data(m);
    const int64_t in = d.train.images.size(1);
    log::info("mnist", "{}: {} training and {} test images of {}x{}; {} models {}", m.dataset, d.train.images.size(0),
              d.test.images.size(0), d.train.rows, d.train.cols, m.models, fmt::join(layer_sizes(m, in), "-"));
    auto reference = mnist::init_mlp(m.models, layer_sizes(m, in), config::derive_seed(ctx.cfg.seed, "mnist-init"));
    auto teacher = reference.clone();
    auto o = train_options(m, m.epochs, config::derive_seed(ctx.cfg.seed, "mnist-teacher-order"), name(),
                           ctx.metrics_path("mnist_teacher").string());
    auto tl = mnist::train_classifier(teacher, d.train.images, d.train.labels, kClasses, o);
    save_mlp(work / "reference.safetensors", reference);
    save_mlp(work / "teacher.safetensors", teacher);
    auto ref_acc = mnist::accuracy(reference, d.test.images, d.test.labels, kClasses);
    auto t_acc = mnist::accuracy(teacher, d.test.images, d.test.labels, kClasses);
    json res = {{"dataset", m.dataset},
                {"train_images", d.train.images.size(0)},
                {"test_images", d.test.images.size(0)},
                {"layer_sizes", layer_sizes(m, in)},
                {"reference_accuracy", per_model_summary(ref_acc)},
                {"teacher_accuracy", per_model_summary(t_acc)},
                {"train", {{"steps", tl.steps}, {"first_loss", tl.first_loss}, {"final_loss", tl.final_loss}, {"seconds", tl.seconds}}}};
    log::info("mnist", "reference accuracy {:.3f}, teacher {:.3f} (mean over {} models)", res["reference_accuracy"]["mean"].get<double>(),
              res["teacher_accuracy"]["mean"].get<double>(), m.models);
    fs::write_file_atomic(work / "teacher.json", fs::without_timings(res).dump(2) + "\n");
    return res;
  }
  std::vector<std::string> scratch() const override { return {}; }
};

bool is_cross(const std::string& arm) { return arm.rfind("cross", 0) == 0; }
bool aux_only(const std::string& arm) { return arm.size() > 4 && arm.substr(arm.size() - 4) == "_aux"; }

class MnistStudentStage : public Stage {
 public:
  explicit MnistStudentStage(std::string arm) : arm_(std::move(arm)) {}
  std::string name() const override { return "mnist/" + arm_; }
  std::vector<std::string> deps() const override { return {"mnist/teacher"}; }
  json inputs(const RunContext& ctx) const override {
    const auto& m = ctx.cfg.mnist;
    return {{"teacher", digest(ctx, "mnist/teacher")},
            {"arm", arm_}, {"student_epochs", m.student_epochs}, {"lr", m.lr}, {"batch_size", m.batch_size},
            {"optimizer", m.optimizer}, {"weight_decay", m.weight_decay}, {"noise", m.noise}, {"noise_pool", m.noise_pool},
            {"init_noise_std", m.init_noise_std}, {"cross", m.cross}, {"kl_reduction", m.kl_reduction},
            {"train_limit", m.train_limit}, {"data", data_inputs(m)}, {"seed", ctx.cfg.seed}};
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    const auto& m = ctx.cfg.mnist;
    auto d = load_data(m);
    const int layers = static_cast<int>(m.hidden.size()) + 1;
    const auto tdir = ctx.stage_dir("mnist/teacher");
    auto reference = load_mlp(tdir / "reference.safetensors", layers);
    auto teacher = load_mlp(tdir / "teacher.safetensors", layers);
    const int64_t n = reference.models(), in = reference.weights[0].size(2);
    // the student's init
    mnist::BatchedMlp init;
    json init_info;
    if (!is_cross(arm_)) {
      init = reference.clone();
      init_info = {{"init", "the teacher's own init"}};
    } else if (m.cross == "derangement") {
      auto perm = mnist::derangement(n, config::derive_seed(ctx.cfg.seed, "mnist-derangement"));
      init = reference.select(perm);
      init_info = {{"init", "another model's init (derangement)"}, {"permutation", perm}};
    } else {
      init = mnist::init_mlp(n, layer_sizes(m, in), config::derive_seed(ctx.cfg.seed, "mnist-cross-init"));
      init_info = {{"init", "a fresh init"}};
    }
    if (m.init_noise_std > 0) {
      torch::NoGradGuard ng;
      auto gen = at::detail::createCPUGenerator(config::derive_seed(ctx.cfg.seed, "mnist-init-noise", arm_));
      for (auto& p : init.parameters()) p.add_(torch::randn(p.sizes(), gen, p.options()) * m.init_noise_std);
      init_info["init_noise_std"] = m.init_noise_std;
    }
    std::vector<int64_t> cols;
    for (int64_t c = aux_only(arm_) ? kClasses : 0; c < kClasses + m.aux; ++c) cols.push_back(c);

    auto student = init.clone();
    mnist::NoiseSource noise;
    noise.kind = m.noise;
    noise.pool = m.noise_pool;
    noise.steps_per_epoch = (d.train.images.size(0) + m.batch_size - 1) / m.batch_size;
    if (m.noise == "train_images") noise.images = d.train.images;
    // the same noise stream for every arm: arms differ only in init and distilled logits
    auto o = train_options(m, m.student_epochs, config::derive_seed(ctx.cfg.seed, "mnist-noise"), name(),
                           ctx.metrics_path("mnist_" + arm_).string());
    const torch::Tensor init_flat = init.flat();
    torch::Tensor first_step, first_grad;
    auto log = mnist::train_distill(
        student, teacher, cols, m.kl_reduction, noise, in, o,
        [&](int64_t step) {
          if (step == 1) first_step = student.flat() - init_flat;
        },
        &first_grad);
    save_mlp(work / "student.safetensors", student);

    // The theorem's quantities: does the student's update point along the teacher's own update?
    // For model i the teacher's update is teacher_i - reference_i (its init), whatever the student's init.
    const torch::Tensor teacher_delta = teacher.flat() - reference.flat();
    const torch::Tensor total = student.flat() - init_flat;
    auto sub = [&](const torch::Tensor& x, int64_t k) { return x.narrow(0, 0, std::min<int64_t>(k, x.size(0))); };
    const auto tr_x = sub(d.train.images, 10000), tr_y = sub(d.train.labels, 10000);
    json res = init_info;
    res["arm"] = arm_;
    res["distilled_logits"] = aux_only(arm_) ? "auxiliary only" : "all (class + auxiliary)";
    res["columns"] = cols;
    res["accuracy"] = per_model_summary(mnist::accuracy(student, d.test.images, d.test.labels, kClasses));
    res["init_accuracy"] = per_model_summary(mnist::accuracy(init, d.test.images, d.test.labels, kClasses));
    res["cos_first_gradient_step"] = per_model_summary(cosines(-first_grad, teacher_delta));
    res["cos_first_step"] = per_model_summary(cosines(first_step, teacher_delta));
    res["cos_total_update"] = per_model_summary(cosines(total, teacher_delta));
    res["teacher_loss_at_init"] = per_model_summary(mnist::class_loss(init, tr_x, tr_y, kClasses));
    res["teacher_loss_after"] = per_model_summary(mnist::class_loss(student, tr_x, tr_y, kClasses));
    res["train"] = {{"steps", log.steps}, {"first_kl", log.first_loss}, {"final_kl", log.final_loss}, {"seconds", log.seconds}};
    log::info(name().c_str(), "accuracy {:.3f} [{:.3f}, {:.3f}]; cos(first gradient step, teacher update) {:.3f}, cos(total, teacher) {:.3f}",
              res["accuracy"]["mean"].get<double>(), res["accuracy"]["ci95"][0].get<double>(), res["accuracy"]["ci95"][1].get<double>(),
              res["cos_first_gradient_step"]["mean"].get<double>(), res["cos_total_update"]["mean"].get<double>());
    fs::write_file_atomic(work / "student.json", fs::without_timings(res).dump(2) + "\n");
    return res;
  }
  std::vector<std::string> scratch() const override { return {}; }

 private:
  std::string arm_;
};

class MnistSummaryStage : public Stage {
 public:
  explicit MnistSummaryStage(std::vector<std::string> arms) : arms_(std::move(arms)) {}
  std::string name() const override { return "summary"; }
  std::vector<std::string> deps() const override {
    std::vector<std::string> d = {"mnist/teacher"};
    for (const auto& a : arms_) d.push_back("mnist/" + a);
    return d;
  }
  json inputs(const RunContext& ctx) const override {
    json d = json::object();
    for (const auto& s : deps()) d[s] = digest(ctx, s);
    return {{"stages", d}};
  }
  json run(RunContext& ctx, const sfs::path& work, bool) override {
    auto t = json::parse(fs::read_file(ctx.stage_dir("mnist/teacher") / "teacher.json"));
    json bars = json::array();
    bars.push_back({{"key", "reference"}, {"label", "Reference"}, {"accuracy", t["reference_accuracy"]}});
    bars.push_back({{"key", "teacher"}, {"label", "Teacher"}, {"accuracy", t["teacher_accuracy"]}});
    json arms = json::object();
    for (const auto& a : arms_) {
      auto s = json::parse(fs::read_file(ctx.stage_dir("mnist/" + a) / "student.json"));
      arms[a] = s;
      bars.push_back({{"key", a}, {"label", arm_title(a)}, {"accuracy", s["accuracy"]}});
    }
    json out = {{"dataset", t["dataset"]}, {"models", ctx.cfg.mnist.models}, {"train_images", t["train_images"]},
                {"test_images", t["test_images"]}, {"layer_sizes", t["layer_sizes"]}, {"teacher", t}, {"arms", arms}, {"bars", bars}};
    fs::write_file_atomic(work / "summary.json", out.dump(2) + "\n");
    fs::write_file_atomic(work / "figure.svg", report::render_mnist_figure(out));
    fs::write_file_atomic(work / "cosines.svg", report::render_mnist_cosine_figure(out));
    return out;
  }
  std::vector<std::string> scratch() const override { return {}; }
  static std::string arm_title(const std::string& a) {
    if (a == "student_aux") return "Student (aux. only)";
    if (a == "student_all") return "Student (all logits)";
    if (a == "cross_aux") return "Cross-model (aux. only)";
    return "Cross-model (all logits)";
  }

 private:
  std::vector<std::string> arms_;
};

}  // namespace

std::vector<std::unique_ptr<Stage>> make_mnist_stages(const config::RunConfig& cfg) {
  std::vector<std::unique_ptr<Stage>> s;
  s.push_back(std::make_unique<MnistTeacherStage>());
  for (const auto& a : cfg.mnist.arms) s.push_back(std::make_unique<MnistStudentStage>(a));
  s.push_back(std::make_unique<MnistSummaryStage>(cfg.mnist.arms));
  return s;
}

}  // namespace subliminal::experiments
