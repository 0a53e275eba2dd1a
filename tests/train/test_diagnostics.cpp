// Diagnostics without a model: LLS selection, coverage, greedy decoding, lever validation.
#include "diagnostics_fixture.h"


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
