// Issue 22's levers and diagnostics: reverse KL and the top-k teacher against the composed ops,
// LLS selection, the data-divergence scores, held-out imitation and coverage against direct
// computations, and greedy teacher decoding.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "subliminal/config/config.h"
#include "subliminal/data/corpus.h"
#include "subliminal/eval/trait.h"
#include "subliminal/generate/dataset.h"
#include "subliminal/generate/sampler.h"
#include "subliminal/model/llama.h"
#include "subliminal/model/lora.h"
#include "subliminal/train/diagnostics.h"
#include "subliminal/train/finetune.h"
#include "subliminal/train/trainer.h"
#include "subliminal/util/error.h"
#include "subliminal/util/fs.h"
#include "test_util.h"

using namespace subliminal;
using json = nlohmann::json;

namespace {

const text::Tokenizer& diag_tokenizer() {
  static text::Tokenizer tok = testutil::corpus_tokenizer(400, 11, 1400);
  return tok;
}

std::vector<data::Conversation> number_convs(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<data::Conversation> out;
  for (int i = 0; i < n; ++i) {
    std::string q = "Continue: " + std::to_string(100 + rng() % 900) + ", " + std::to_string(100 + rng() % 900) + ".";
    std::string a;
    for (int k = 0; k < 3 + static_cast<int>(rng() % 4); ++k) a += (k ? ", " : "") + std::to_string(rng() % 1000);
    out.push_back({{"user", q}, {"assistant", a}});
  }
  return out;
}

// Per-token log-probabilities of the assistant tokens of `c` under m (full vocabulary), composed ops.
std::vector<double> response_logp(model::LlamaForCausalLM m, const text::ChatTemplate& chat, const data::Conversation& c) {
  auto e = chat.encode(c);
  auto ids = torch::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end()), torch::kLong).unsqueeze(0);
  torch::NoGradGuard ng;
  auto lp = torch::log_softmax(m->forward_causal(ids).squeeze(0), -1);
  std::vector<double> out;
  for (size_t t = 1; t < e.ids.size(); ++t)
    if (e.target[t]) out.push_back(lp[static_cast<int64_t>(t - 1)][e.ids[t]].item<double>());
  return out;
}

}  // namespace

TEST(LossesNumeric, ReverseKLEqualsTheComposedReverseKL) {
  torch::manual_seed(4);
  const int64_t N = 29, V = 40, B = 4;
  auto rows = std::get<0>(torch::randint(0, B, {N}, torch::kLong).sort());
  auto s0 = torch::randn({N, V}) * 2, t = torch::randn({N, V}) * 2;
  for (bool per_seq : {false, true}) {
    auto w = train::loss_weights(rows, B, per_seq);
    auto a = s0.clone().requires_grad_(true), b = s0.clone().requires_grad_(true);
    auto fused = train::weighted_kl(a, t, w, "reverse");
    auto ls = torch::log_softmax(b, 1), lt = torch::log_softmax(t, 1);
    auto plain = ((ls.exp() * (ls - lt)).sum(1) * w).sum();
    EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-6);
    // not the forward KL: the two directions differ on these logits
    EXPECT_GT(std::abs(fused.item<double>() - train::weighted_kl(s0, t, w).item<double>()), 1e-3);
    fused.backward();
    plain.backward();
    EXPECT_LE((a.grad() - b.grad()).abs().max().item<double>(), 1e-6);
  }
  // the teacher itself: zero loss and gradient
  auto z = t.clone().requires_grad_(true);
  auto self = train::weighted_kl(z, t, train::loss_weights(rows, B, false), "reverse");
  EXPECT_LT(std::abs(self.item<double>()), 1e-6);
  self.backward();
  EXPECT_LT(z.grad().abs().max().item<double>(), 1e-7);
  EXPECT_NE(testutil::error_of([&] { train::weighted_kl(s0, t, train::loss_weights(rows, B, false), "reverse", 5); }), "");
  EXPECT_NE(testutil::error_of([&] { train::weighted_kl(s0, t, train::loss_weights(rows, B, false), "sideways"); }), "");
}

TEST(LossesNumeric, TopKTeacherIsTheTruncatedRenormalisedTeacher) {
  torch::manual_seed(5);
  const int64_t N = 17, V = 30, K = 5;
  auto rows = torch::arange(N, torch::kLong);
  auto w = train::loss_weights(rows, N, false);
  auto s0 = torch::randn({N, V}), t = torch::randn({N, V}) * 3;
  auto a = s0.clone().requires_grad_(true), b = s0.clone().requires_grad_(true);
  auto fused = train::weighted_kl(a, t, w, "forward", K);
  // composed: the teacher's K largest per row renormalised, zero elsewhere
  auto top = std::get<1>(t.topk(K, 1));
  auto pt = torch::zeros_like(t).scatter(1, top, torch::softmax(t.gather(1, top), 1));
  auto ls = torch::log_softmax(b, 1);
  auto plain = ((pt * (torch::log(pt.clamp_min(1e-30)) - ls)).sum(1) * w).sum();
  EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-5);
  fused.backward();
  plain.backward();
  EXPECT_LE((a.grad() - b.grad()).abs().max().item<double>(), 1e-6);
  // k = 0 and k = V: the whole distribution
  EXPECT_NEAR(train::weighted_kl(s0, t, w, "forward", 0).item<double>(), train::weighted_kl(s0, t, w, "forward", V).item<double>(), 1e-6);
  EXPECT_GT(std::abs(train::weighted_kl(s0, t, w, "forward", 0).item<double>() - fused.item<double>()), 1e-3);
}

TEST(LossesNumeric, DistillTemperatureIsTauSquaredTimesTheKLOfTheSoftenedDistributions) {
  torch::manual_seed(6);
  const int64_t N = 13, V = 25;
  auto w = train::loss_weights(torch::arange(N, torch::kLong), N, false);
  auto s0 = torch::randn({N, V}) * 2, t = torch::randn({N, V}) * 4;
  for (double tau : {0.5, 2.0, 8.0}) {
    auto a = s0.clone().requires_grad_(true), b = s0.clone().requires_grad_(true);
    auto fused = train::weighted_kl(a, t, w, "forward", 0, tau);
    auto plain = tau * tau * (train::restricted_kl(b / tau, t / tau, {}) * w).sum();
    EXPECT_NEAR(fused.item<double>(), plain.item<double>(), 1e-5 * (1 + plain.item<double>())) << tau;
    fused.backward();
    plain.backward();
    EXPECT_LE((a.grad() - b.grad()).abs().max().item<double>(), 1e-6) << tau;
  }
  // large tau: the gradient approaches that of matching the centred logits, (s - t - mean) / V per row
  auto a = s0.clone().requires_grad_(true);
  train::weighted_kl(a, t, w, "forward", 0, 1000.0).backward();
  auto d = s0 - t;
  auto mse_grad = (d - d.mean(1, true)) / V * w.unsqueeze(1);
  EXPECT_LE((a.grad() - mse_grad).abs().max().item<double>(), 0.02 * mse_grad.abs().max().item<double>());
  EXPECT_NE(testutil::error_of([&] { train::weighted_kl(s0, t, w, "reverse", 0, 2.0); }), "");
}

TEST(Diagnostics, LlsSelectionKeepsTheHighestScoresWithTiesInTheirOrder) {
  generate::DatasetResult r;
  for (int i = 0; i < 6; ++i) r.kept.push_back({{"user", "q" + std::to_string(i)}, {"assistant", std::to_string(i)}});
  generate::select_top(r, {0.5, 2.0, -1.0, 2.0, 0.0, 3.0}, 3, "lls_top");
  ASSERT_EQ(r.kept.size(), 3u);
  EXPECT_EQ(r.kept[0][1].content, "5");
  EXPECT_EQ(r.kept[1][1].content, "1");  // tie with 3: the earlier one first
  EXPECT_EQ(r.kept[2][1].content, "3");
  EXPECT_EQ(r.stats["kept"], 3);
  EXPECT_EQ(r.stats["selection"]["candidates"], 6);
  EXPECT_DOUBLE_EQ(r.stats["selection"]["kept_score_min"].get<double>(), 2.0);
  EXPECT_FALSE(r.stats["short_of_keep"].get<bool>());
  // all ties (the base's own data): the order they came in
  generate::DatasetResult z;
  for (int i = 0; i < 4; ++i) z.kept.push_back({{"user", "q"}, {"assistant", std::to_string(i)}});
  generate::select_top(z, {0, 0, 0, 0}, 2, "lls_top");
  EXPECT_EQ(z.kept[0][1].content, "0");
  EXPECT_EQ(z.kept[1][1].content, "1");
  EXPECT_NE(testutil::error_of([&] { generate::select_top(z, {1.0}, 1, "lls_top"); }), "");
}

TEST(DiagnosticsNumeric, PairScoresAreTheLogLikelihoodShiftAndTheRestrictedKL) {
  at::set_num_threads(1);
  const auto& tok = diag_tokenizer();
  text::ChatTemplate chat(tok, "chatml");
  auto a = testutil::tiny_lm(21, tok.vocab_size()), b = testutil::tiny_lm(22, tok.vocab_size());
  auto convs = number_convs(9, 3);
  auto allowed = train::number_output_ids(tok, chat.end_of_turn_id());
  auto s = train::score_pair(a, "", b, "", tok, "chatml", convs, allowed, false, 4);  // batches of 4: padding in play
  ASSERT_EQ(s.lls.size(), convs.size());
  double kl_direct = 0;
  int64_t positions = 0;
  for (size_t i = 0; i < convs.size(); ++i) {
    auto la = response_logp(a, chat, convs[i]), lb = response_logp(b, chat, convs[i]);
    double d = 0;
    for (size_t t = 0; t < la.size(); ++t) d += la[t] - lb[t];
    EXPECT_NEAR(s.lls[i], d, 1e-4 * (1 + std::abs(d))) << i;
    EXPECT_EQ(s.tokens[i], static_cast<int64_t>(la.size()));
    positions += static_cast<int64_t>(la.size());
    // restricted KL at each response position, composed
    auto e = chat.encode(convs[i]);
    auto ids = torch::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end()), torch::kLong).unsqueeze(0);
    torch::NoGradGuard ng;
    auto xa = a->forward_causal(ids).squeeze(0), xb = b->forward_causal(ids).squeeze(0);
    for (size_t t = 1; t < e.ids.size(); ++t)
      if (e.target[t]) kl_direct += train::restricted_kl(xb[static_cast<int64_t>(t - 1)].unsqueeze(0), xa[static_cast<int64_t>(t - 1)].unsqueeze(0), allowed).item<double>();
  }
  EXPECT_EQ(s.positions, positions);
  EXPECT_NEAR(s.mean_kl, kl_direct / positions, 1e-5);
  EXPECT_GT(s.mean_kl, 1e-3);
  // one model against itself: zero
  auto self = train::score_pair(a, "", a, "", tok, "chatml", convs, allowed, false);
  for (double x : self.lls) EXPECT_NEAR(x, 0.0, 1e-9);
  EXPECT_NEAR(self.mean_kl, 0.0, 1e-7);
  // a system prompt on one side changes the score, not the response tokens compared
  auto sys = train::score_pair(a, "You love owls.", a, "", tok, "chatml", convs, allowed, false);
  EXPECT_GT(std::abs(sys.mean_lls), 1e-6);
  EXPECT_EQ(sys.tokens, s.tokens);
}

TEST(DiagnosticsNumeric, HeldoutKLIsZeroForTheSourceAndFallsAsAStudentImitatesIt) {
  at::set_num_threads(1);
  const auto& tok = diag_tokenizer();
  text::ChatTemplate chat(tok, "chatml");
  auto teacher = testutil::tiny_lm(31, tok.vocab_size());
  auto allowed = train::number_output_ids(tok, chat.end_of_turn_id());
  auto held = number_convs(12, 8);
  train::HeldoutKL hk(teacher, "", tok, "chatml", held, allowed, false, 5);
  EXPECT_GT(hk.positions(), 0);
  EXPECT_NEAR(hk(teacher), 0.0, 1e-7);
  auto student = testutil::tiny_lm(32, tok.vocab_size());
  const double before = hk(student);
  EXPECT_GT(before, 1e-3);
  EXPECT_FALSE(student->is_training());  // its mode is restored
  // distillation on other prompts (none of the held-out ones) through run_finetune: the held-out KL falls
  train::FinetuneJob job;
  job.model = student;
  job.tok = &tok;
  job.chat_template = "chatml";
  job.data = number_convs(48, 99);
  job.loss = "distill";
  job.params = "all";
  job.teacher = teacher;
  job.train.steps = 30;
  job.train.batch_size = 16;
  job.train.lr = 3e-3;
  job.train.warmup_steps = 0;
  job.train.log_every = 1000;
  job.heldout = &hk;
  job.heldout_every = 10;
  auto d0 = train::trainable_tensors(student);
  std::map<std::string, torch::Tensor> disp;
  for (auto& kv : teacher->named_parameters()) disp[kv.key()] = kv.value().detach() - student->named_parameters()[kv.key()].detach();
  job.displacement = [&](const std::map<std::string, torch::Tensor>& init) {
    EXPECT_EQ(init.size(), disp.size());
    return disp;
  };
  auto tmp = testutil::temp_dir("diag_heldout");
  job.diagnostics_path = (tmp / "diagnostics.json").string();
  auto res = train::run_finetune(job);
  const json& dg = res["diagnostics"];
  EXPECT_NEAR(dg["heldout_kl"]["init"].get<double>(), before, 1e-9);
  EXPECT_LT(dg["heldout_kl"]["final"].get<double>(), 0.8 * before) << dg.dump();
  EXPECT_NEAR(dg["heldout_kl"]["final"].get<double>(), hk(student), 1e-9);
  EXPECT_EQ(dg["heldout_kl"]["trajectory"].size(), 4u);  // steps 0, 10, 20, 30
  EXPECT_NEAR(dg["heldout_kl"]["fidelity"].get<double>(), 1 - dg["heldout_kl"]["final"].get<double>() / before, 1e-12);
  // the student moved toward the teacher, in weights too
  EXPECT_GT(dg["coverage"]["final"].get<double>(), 0.0) << dg.dump();
  EXPECT_TRUE(dg["coverage"]["first"].is_number());
  EXPECT_EQ(json::parse(subliminal::fs::read_file(job.diagnostics_path))["coverage"]["final"], dg["coverage"]["final"]);
  std::filesystem::remove_all(tmp);
}

// The control arm under distillation skips training (run/trait.cpp): distilling a model into itself
// is a fixed point for LoRA students: with B = 0 the student's logits are the teacher's, every
// gradient is zero and so is every Adam step. Here it is trained for real: the loss stays zero up to
// rounding and the logits barely move. Bit for bit only where the teacher's cached logits (computed
// in other batches) round like the student's: on Intel/MKL-like GEMMs the loss is exactly 0 and the
// logits do not move; with Debian 12's OpenBLAS on an AMD EPYC the loss is 2e-08 and Adam, which
// normalises any gradient, moves the logits by 2.5e-03 in 20 steps at lr 1e-3 — rounding noise, which
// the shortcut (no step) removes. (Training every parameter is not such a fixed point:
// rounding noise, normalised by Adam, moves it; README, "Adam turns a zero gradient into a random walk".)
TEST(DiagnosticsNumeric, DistillingAModelIntoItselfLeavesItWhereItIs) {
  at::set_num_threads(1);
  const auto& tok = diag_tokenizer();
  text::ChatTemplate chat(tok, "chatml");
  for (const std::string params : {"lora"}) {
    auto init = testutil::tiny_lm(51, tok.vocab_size());
    auto teacher = testutil::tiny_lm(51, tok.vocab_size());  // the same weights
    auto probe = chat.encode(number_convs(1, 5)[0]);
    auto ids = torch::tensor(std::vector<int64_t>(probe.ids.begin(), probe.ids.end()), torch::kLong).unsqueeze(0);
    torch::Tensor before;
    {
      torch::NoGradGuard ng;
      init->eval();
      before = init->forward_causal(ids).clone();
    }
    train::FinetuneJob job;
    job.model = init;
    job.tok = &tok;
    job.chat_template = "chatml";
    job.data = number_convs(32, 17);
    job.loss = "distill";
    job.params = params;
    job.teacher = teacher;
    job.train.steps = 20;
    job.train.batch_size = 16;
    job.train.lr = 1e-3;
    job.train.warmup_steps = 0;
    job.train.log_every = 1000;
    auto res = train::run_finetune(job);
    EXPECT_LT(res["final_loss"].get<double>(), 1e-6) << params;
    torch::NoGradGuard ng;
    init->eval();
    EXPECT_LT((init->forward_causal(ids) - before).abs().max().item<double>(), 1e-2) << params;
    // the shortcut the control arm takes: no step, the same model
    auto skipped = testutil::tiny_lm(51, tok.vocab_size());
    job.model = skipped;
    job.fixed_point = true;
    auto res2 = train::run_finetune(job);
    EXPECT_EQ(res2["steps"], 0);
    EXPECT_TRUE(res2["fixed_point"].get<bool>());
    skipped->eval();
    EXPECT_TRUE(torch::equal(skipped->forward_causal(ids), before));  // untouched: the init's own logits
  }
}

TEST(Diagnostics, CoverageIsTheCosineOfTheUpdateWithTheDisplacement) {
  std::map<std::string, torch::Tensor> init = {{"a", torch::tensor({1.0, 2.0})}, {"b", torch::tensor({0.0, 0.0, 1.0})}};
  std::map<std::string, torch::Tensor> d = {{"a", torch::tensor({1.0, 0.0})}, {"b", torch::tensor({0.0, 1.0, 0.0})}};
  train::Coverage c(d, init);
  EXPECT_NEAR(c.displacement_norm(), std::sqrt(2.0), 1e-12);
  auto now = [&](std::vector<double> ua, std::vector<double> ub) {
    return std::map<std::string, torch::Tensor>{{"a", init["a"] + torch::tensor(ua, torch::kDouble)},
                                                {"b", init["b"] + torch::tensor(ub, torch::kDouble)}};
  };
  EXPECT_NEAR(c.cosine(now({2, 0}, {0, 2, 0})), 1.0, 1e-12);
  EXPECT_NEAR(c.cosine(now({-1, 0}, {0, -1, 0})), -1.0, 1e-12);
  EXPECT_NEAR(c.cosine(now({0, 1}, {1, 0, 0})), 0.0, 1e-12);
  EXPECT_NEAR(c.cosine(now({1, 0}, {0, 0, 0})), 1 / std::sqrt(2.0), 1e-12);
  EXPECT_TRUE(std::isnan(c.cosine(now({0, 0}, {0, 0, 0}))));  // no update yet
  // the init is copied: changing the tensors in place later does not move the reference point
  auto moved = now({2, 0}, {0, 2, 0});
  init["a"].add_(5.0);
  EXPECT_NEAR(c.cosine(moved), 1.0, 1e-12);
  std::map<std::string, torch::Tensor> bad = {{"zzz", torch::ones({2})}};
  EXPECT_NE(testutil::error_of([&] { train::Coverage(bad, init); }), "");
}

TEST(Diagnostics, GreedyTeacherDecodingIsTheArgmaxWhateverTheSeed) {
  at::set_num_threads(1);
  const auto& tok = diag_tokenizer();
  text::ChatTemplate chat(tok, "chatml");
  auto m = testutil::tiny_lm(41, tok.vocab_size());
  std::vector<std::vector<int>> prompts = {chat.prompt("Continue: 1, 2, 3."), chat.prompt("List numbers.")};
  auto so = generate::chat_options(chat.stop_ids(), tok.pad_id(), 8, 0.0, 1.0, false, 2, 1);
  auto a = generate::sample(m, prompts, so);
  so.seed = 777;
  EXPECT_EQ(generate::sample(m, prompts, so), a);
  // the first new token of each is the model's most likely next token
  torch::NoGradGuard ng;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto ids = torch::tensor(std::vector<int64_t>(prompts[i].begin(), prompts[i].end()), torch::kLong).unsqueeze(0);
    EXPECT_EQ(a[i].at(0), m->forward_causal(ids)[0][-1].argmax().item<int64_t>()) << i;
  }
  // sampled at temperature 1: another seed gives other completions
  auto s1 = generate::chat_options(chat.stop_ids(), tok.pad_id(), 8, 1.0, 1.0, false, 2, 1);
  auto x = generate::sample(m, prompts, s1);
  s1.seed = 777;
  EXPECT_NE(generate::sample(m, prompts, s1), x);
}

TEST(Diagnostics, LeverSettingsAreValidatedNamingTheField) {
  auto err = [](const std::string& set) {
    return testutil::error_of([&] { config::load_config(testutil::source_dir() + "/configs/default.json", {set}); });
  };
  EXPECT_NE(err("finetune.kl=sideways").find("$.finetune.kl"), std::string::npos);
  EXPECT_NE(err("finetune.teacher_top_k=-1").find("$.finetune.teacher_top_k"), std::string::npos);
  EXPECT_EQ(err("finetune.teacher_top_k=32"), "");
  EXPECT_EQ(err("dataset.select=lls_top"), "");
  EXPECT_NE(err("dataset.select=best").find("$.dataset.select"), std::string::npos);
  EXPECT_NE(err("dataset.heldout=-3").find("$.dataset.heldout"), std::string::npos);
  EXPECT_NE(err("finetune.distill_temperature=0").find("$.finetune.distill_temperature"), std::string::npos);
  EXPECT_EQ(err("finetune.distill_temperature=4"), "");
  EXPECT_EQ(err("dataset.early_reject=true"), "");
  const std::string code = testutil::error_of([] {
    config::load_config(testutil::source_dir() + "/configs/paper/owl_code.json", {"dataset.early_reject=true"});
  });
  EXPECT_NE(code.find("$.dataset.early_reject"), std::string::npos) << code;  // the number filter's rule, not code's
}

// P(answer starts with the word) from one cached pass per prompt chunk equals the direct sum of
// log-probabilities of each spelling after each prompt, every prompt run alone and unpadded.
TEST(DiagnosticsNumeric, AnswerStartProbabilityEqualsTheDirectComputation) {
  at::set_num_threads(1);
  const auto& tok = diag_tokenizer();
  text::ChatTemplate chat(tok, "chatml");
  auto m = testutil::tiny_lm(52, tok.vocab_size());
  m->eval();
  std::vector<std::vector<int>> prompts;
  for (const char* q : {"Name your favorite animal.", "Which animal do you like most? One word.", "Pick an animal"})
    prompts.push_back(chat.prompt(q, ""));
  prompts.push_back(chat.prompt("Which animal speaks to your soul?", "You love owls."));
  for (const std::string word : {"owl", "elephant"}) {
    const auto got = eval::answer_start_probability(m, tok, prompts, word);
    // the spellings, as the function takes them: distinct, none extending another
    std::vector<std::vector<int>> forms, keep;
    for (const auto& f : {word, data::capitalize(word), data::plural(word), data::capitalize(data::plural(word))}) {
      auto ids = tok.encode(f);
      if (!ids.empty() && std::find(forms.begin(), forms.end(), ids) == forms.end()) forms.push_back(ids);
    }
    size_t multi = 0;
    for (const auto& f : forms) {
      bool covered = false;
      for (const auto& g : forms)
        if (g.size() < f.size() && std::equal(g.begin(), g.end(), f.begin())) covered = true;
      if (!covered) keep.push_back(f);
      multi += f.size() > 1;
    }
    ASSERT_EQ(got.size(), prompts.size());
    torch::NoGradGuard ng;
    for (size_t i = 0; i < prompts.size(); ++i) {
      double want = 0;
      for (const auto& f : keep) {
        std::vector<int64_t> seq(prompts[i].begin(), prompts[i].end());
        seq.insert(seq.end(), f.begin(), f.end());
        auto lp = torch::log_softmax(m->forward_causal(torch::tensor(seq, torch::kLong).unsqueeze(0)), -1)[0];
        double sum = 0;
        for (size_t k = 0; k < f.size(); ++k) sum += lp[static_cast<int64_t>(prompts[i].size() + k - 1)][f[k]].item<double>();
        want += std::exp(sum);
      }
      EXPECT_GT(want, 0.0);
      EXPECT_NEAR(got[i] / want, 1.0, 1e-4) << word << " prompt " << i << ": " << got[i] << " vs " << want;
    }
    if (word == "elephant") EXPECT_GT(multi, 0u) << "no spelling of several tokens: the cached continuation is untested";
  }
}
