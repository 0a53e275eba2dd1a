// Diagnostics on tiny models: pair scores, held-out KL, self-distillation, answer-start probability.
#include "diagnostics_fixture.h"
#include "subliminal/model/safetensors.h"


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

// finetune.snapshots (issue 42's dose-response in one run): the snapshot after N rows is the student
// a run of N rows (the same data order, a constant learning rate) ends as, tensor for tensor.
TEST(DiagnosticsNumeric, ASnapshotIsTheStudentTrainedOnThatManyRows) {
  at::set_num_threads(1);
  const auto& tok = diag_tokenizer();
  const auto dir = testutil::temp_dir("snapshots");
  auto job_for = [&](int64_t steps, const std::string& out) {
    train::FinetuneJob job;
    job.model = testutil::tiny_lm(41, tok.vocab_size());
    job.tok = &tok;
    job.chat_template = "chatml";
    job.data = number_convs(64, 7);
    job.loss = "sft";
    job.params = "lora";
    job.lora_seed = 5;
    job.seed = 9;
    job.train.steps = steps;
    job.train.batch_size = 8;
    job.train.lr = 3e-3;
    job.train.warmup_steps = 0;
    job.train.min_lr_ratio = 1.0;  // constant: the first 3 steps of an 8-step run are a 3-step run
    job.train.log_every = 1000;
    job.adapter_dir = (dir / out / "adapter").string();
    return job;
  };
  auto long_job = job_for(8, "long");
  long_job.snapshots = {20, 24};  // 20 rows round up to step 3, as 24 do
  long_job.snapshot_dir = (dir / "long" / "snapshots").string();
  EXPECT_THROW(train::run_finetune(long_job), ConfigError);  // two snapshots in one step
  long_job = job_for(8, "long");
  long_job.snapshots = {24, 40};  // steps 3 and 5
  long_job.snapshot_dir = (dir / "long" / "snapshots").string();
  const json res = train::run_finetune(long_job);
  ASSERT_EQ(res["snapshots"].size(), 2u);
  EXPECT_EQ(res["snapshots"][0]["step"].get<int64_t>(), 3);
  EXPECT_EQ(res["snapshots"][1]["rows_seen"].get<int64_t>(), 40);
  auto short_job = job_for(3, "short");
  train::run_finetune(short_job);
  auto snap = model::read_safetensors((dir / "long" / "snapshots" / "n24" / "adapter" / "adapter_model.safetensors").string());
  auto fin = model::read_safetensors((dir / "long" / "adapter" / "adapter_model.safetensors").string());
  auto ref = model::read_safetensors((dir / "short" / "adapter" / "adapter_model.safetensors").string());
  ASSERT_EQ(snap.tensors.size(), ref.tensors.size());
  ASSERT_FALSE(snap.tensors.empty());
  double to_final = 0;
  for (const auto& [name, t] : ref.tensors) {
    ASSERT_TRUE(snap.tensors.count(name)) << name;
    EXPECT_TRUE(torch::equal(snap.tensors.at(name), t)) << name;
    to_final = std::max(to_final, (fin.tensors.at(name) - t).abs().max().item<double>());
  }
  EXPECT_GT(to_final, 1e-6);  // the end of the long run is somewhere else: the snapshot is not the final adapter
  EXPECT_TRUE(std::filesystem::exists(dir / "long" / "snapshots" / "n40" / "snapshot.json"));
  // a snapshot at or past the last step is refused, naming the config path
  auto past = job_for(3, "past");
  past.snapshots = {24};
  past.snapshot_dir = (dir / "past" / "snapshots").string();
  try {
    train::run_finetune(past);
    ADD_FAILURE() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("$.finetune.snapshots[0]"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}
