// Aggregation over runs: per-trait tables, claims, correlations and the dose-response table.
#include "sweep_fixture.h"
#include "subliminal/report/claims.h"
#include "subliminal/report/comparisons.h"
#include "subliminal/util/inference.h"


// Aggregation pools every run's student seed pairs per trait and arm (the interval and the test are
// those of the pooled values); claims resolve paths with wildcards and fail naming the value.
TEST(Report, AggregatesRunsPerTraitAndChecksClaims) {
  auto dir = testutil::temp_dir("report_agg");
  auto write_run = [&](const std::string& name, const std::string& target, std::vector<double> treat, std::vector<double> ctrl, double base) {
    json arms = json::object();
    for (auto [arm, xs] : {std::pair<const char*, std::vector<double>>{"treatment", treat}, {"control", ctrl}}) {
      json ps = json::array();
      for (size_t i = 0; i < xs.size(); ++i) ps.push_back({{"rate", xs[i]}, {"seed_pair", i + 1}});
      arms[arm] = {{"per_seed", ps}};
    }
    json sm = {{"target", target}, {"arms", arms}, {"seeds", treat.size()}, {"loss", "distill"}, {"params", "lora"},
               {"models", {{"base", {{"target_rate", {{"rate", base}}}}}}},
               {"tests", {{"treatment_vs_control", {{"diff", treat[0] - ctrl[0]}, {"run", name}, {"defined", true}, {"ci95", {0.01, 0.02}},
                                                    {"df", 7.0}, {"p_greater", 0.004}}}}}};
    fs::write_file_atomic(dir / name / "report.json", json({{"stages", {{"summary", sm}}}}).dump());
  };
  write_run("a", "owl", {0.08, 0.09}, {0.04, 0.05}, 0.045);
  write_run("b", "owl", {0.10}, {0.045}, 0.043);
  write_run("c", "wolf", {0.02, 0.03}, {0.025, 0.02}, 0.02);
  sfs::create_directories(dir / "unfinished");
  auto agg = report::aggregate_runs({(dir / "a").string(), (dir / "b").string(), (dir / "c").string(), (dir / "unfinished").string()});
  ASSERT_TRUE(agg["targets"].contains("owl"));
  const json& owl = agg["targets"]["owl"];
  const auto s = stats::summarize({0.08, 0.09, 0.10});
  EXPECT_EQ(owl["arms"]["treatment"]["n"], 3);
  EXPECT_DOUBLE_EQ(owl["arms"]["treatment"]["mean"].get<double>(), s.mean);
  EXPECT_DOUBLE_EQ(owl["arms"]["treatment"]["ci95"][1].get<double>(), s.hi);
  const auto t = stats::welch_t_test({0.08, 0.09, 0.10}, {0.04, 0.05, 0.045});
  EXPECT_DOUBLE_EQ(owl["tests"]["treatment_vs_control"]["p_greater"].get<double>(), t.p_greater);
  EXPECT_EQ(owl["base"]["n"], 2);
  EXPECT_EQ(agg["skipped"].size(), 1u);
  // a target held by one run keeps that run's own (clustered) tests; one held by two runs has none
  EXPECT_EQ(agg["targets"]["wolf"]["run_tests"]["treatment_vs_control"]["run"], "c");
  EXPECT_FALSE(owl.contains("run_tests"));
  const std::string md = report::aggregate_markdown(agg);
  EXPECT_NE(md.find("| treatment_vs_control | -0.5 pts [+1.0, +2.0] | 7.0 | 0.0040 |"), std::string::npos) << md;
  EXPECT_NE(report::aggregate_csv(agg).find("owl,treatment,3,"), std::string::npos);
  EXPECT_NE(report::aggregate_figure_svg(agg).find(">wolf</text>"), std::string::npos);
  // claims
  json expect = {{"claims",
                  {{{"name", "owl transfers"}, {"path", "targets.owl.tests.treatment_vs_control.p_greater"}, {"op", "<"}, {"value", 0.05}},
                   {{"name", "every animal: treatment above control"}, {"path", "targets.*.arms.treatment.mean"}, {"op", ">"},
                    {"path2", "targets.*.arms.control.mean"}},
                   {{"name", "wolf control within base"}, {"path", "targets.wolf.arms.control.mean"}, {"op", "within"}, {"value", {0.0, 0.05}}},
                   {{"name", "missing"}, {"path", "targets.eagle.arms.treatment.mean"}, {"op", ">"}, {"value", 0}}}}};
  auto res = report::check_claims(agg, expect, "expect.json");
  ASSERT_EQ(res.size(), 4u);
  EXPECT_TRUE(res[0].ok) << res[0].detail;
  EXPECT_TRUE(res[1].ok) << res[1].detail;  // wolf 0.025 > 0.0225
  EXPECT_NE(res[1].detail.find("owl:"), std::string::npos) << res[1].detail;
  EXPECT_TRUE(res[2].ok) << res[2].detail;
  EXPECT_FALSE(res[3].ok);
  EXPECT_NE(res[3].detail.find("not found"), std::string::npos);
  expect["claims"][1]["op"] = "<";
  EXPECT_FALSE(report::check_claims(agg, expect, "expect.json")[1].ok);
  expect["claims"][0]["op"] = "≈";
  EXPECT_THROW(report::check_claims(agg, expect, "expect.json"), ConfigError);
  // MNIST runs pool per setting: the run name without its seed parts; every model of every run counts
  auto write_mnist = [&](const std::string& name, std::vector<double> aux) {
    json sm;
    sm["arms"]["student_aux"]["accuracy"]["per_model"] = aux;
    sm["teacher"]["teacher_accuracy"]["per_model"] = std::vector<double>{0.9, 0.92};
    sm["teacher"]["reference_accuracy"]["per_model"] = std::vector<double>{0.1, 0.11};
    json rep;
    rep["stages"]["summary"] = sm;
    fs::write_file_atomic(dir / name / "report.json", rep.dump());
  };
  write_mnist("lr-0.001_seed-1", {0.3, 0.4});
  write_mnist("lr-0.001_seed-2", {0.5});
  auto mn = report::aggregate_runs({(dir / "lr-0.001_seed-1").string(), (dir / "lr-0.001_seed-2").string()});
  ASSERT_TRUE(mn["mnist"].contains("lr-0.001")) << mn["mnist"].dump();
  EXPECT_EQ(mn["mnist"]["lr-0.001"]["arms"]["student_aux"]["n"], 3);
  EXPECT_NEAR(mn["mnist"]["lr-0.001"]["arms"]["student_aux"]["mean"].get<double>(), 0.4, 1e-12);
  EXPECT_EQ(mn["mnist"]["lr-0.001"]["arms"]["teacher"]["n"], 4);
  EXPECT_NE(report::aggregate_mnist_figure_svg(mn).find(">lr-0.001</text>"), std::string::npos);
  sfs::remove_all(dir);
}

TEST(Report, CorrelationsArePearsonAndSpearmanWithTiesAndNonFiniteLeftOut) {
  auto c = stats::correlate({1, 2, 3, 4, 5}, {2, 4, 6, 8, 100});
  ASSERT_TRUE(c.defined);
  EXPECT_DOUBLE_EQ(c.spearman, 1.0);  // monotone
  EXPECT_LT(c.pearson, 0.9);          // not linear
  // Exact for small n: of the 5! = 120 orderings only the identity and its reverse reach |rho| = 1
  // (2/120 = 1/60); the t approximation's 0 was wrong.
  EXPECT_TRUE(c.p_spearman_exact);
  EXPECT_NEAR(c.p_spearman, 1.0 / 60.0, 1e-15);
  // rho = 0.9 at n = 5 (one adjacent swap): 4 orderings per side reach 0.9, plus the perfect one:
  // P(|rho| >= 0.9) = 10/120, the one-sided 0.042 of the published critical-value tables (Zar 1972).
  auto s9 = stats::correlate({1, 2, 3, 4, 5}, {1, 2, 3, 5, 4});
  EXPECT_NEAR(s9.spearman, 0.9, 1e-12);
  EXPECT_NEAR(s9.p_spearman, 10.0 / 120.0, 1e-15);
  // past the exact range: |rho| = 1 has p = 2/n!, not 0
  std::vector<double> x12, y12;
  for (int i = 0; i < 12; ++i) x12.push_back(i), y12.push_back(-3.0 * i);
  auto s12 = stats::correlate(x12, y12);
  EXPECT_FALSE(s12.p_spearman_exact);
  EXPECT_NEAR(s12.p_spearman, 2.0 / 479001600.0, 1e-20);
  auto r = stats::correlate({1, 2, 3, 4}, {4, 3, 2, 1});
  EXPECT_NEAR(r.pearson, -1.0, 1e-12);
  // ties: ranks {1.5, 1.5, 3, 4} against {1, 2, 3, 4}: Pearson of the ranks
  auto t = stats::correlate({5, 5, 6, 7}, {1, 2, 3, 4});
  const double rx[] = {1.5, 1.5, 3, 4}, ry[] = {1, 2, 3, 4};
  double mx = 2.5, my = 2.5, sxy = 0, sxx = 0, syy = 0;
  for (int i = 0; i < 4; ++i) sxy += (rx[i] - mx) * (ry[i] - my), sxx += (rx[i] - mx) * (rx[i] - mx), syy += (ry[i] - my) * (ry[i] - my);
  EXPECT_NEAR(t.spearman, sxy / std::sqrt(sxx * syy), 1e-12);
  EXPECT_GT(t.p_spearman, 0.0);
  EXPECT_LT(t.p_spearman, 1.0);
  auto n = stats::correlate({1, 2, NAN, 4}, {1, 2, 3, INFINITY});
  EXPECT_EQ(n.n, 2);
  EXPECT_FALSE(n.defined);
  EXPECT_FALSE(stats::correlate({1, 1, 1}, {1, 2, 3}).defined);  // a constant side
}

TEST(Report, DoseResponseHasOnePointPerStudentWithItsRunsDiagnostics) {
  auto dir = testutil::temp_dir("report_dose");
  // transfer rises with fidelity in these made-up runs; the cross-init student transfers nothing
  auto write_run = [&](const std::string& name, std::vector<double> treat, std::vector<double> fid, double data_kl, int kept) {
    json ps = json::array();
    for (size_t i = 0; i < treat.size(); ++i)
      ps.push_back({{"rate", treat[i]}, {"seed_pair", i + 1}, {"fidelity", fid[i]}, {"coverage_final", fid[i] / 10}});
    json arms = {{"treatment", {{"per_seed", ps}}},
                 {"control", {{"per_seed", {{{"rate", 0.05}, {"seed_pair", 1}}}}}},
                 {"cross_init", {{"per_seed", {{{"rate", 0.04}, {"seed_pair", 1}, {"fidelity", 0.5}}}}}},
                 {"other_trait", {{"per_seed", {{{"rate", 0.05}, {"seed_pair", 1}, {"fidelity", 0.9}}}},
                                  {"other_target_rate", {{"target", "cat"}, {"per_seed", {0.09}}}}}}};
    json models = {{"base", {{"target_rate", {{"rate", 0.05}}}, {"distribution", {{"owl", 0.05}, {"cat", 0.06}}}}},
                   {"base_cross", {{"target_rate", {{"rate", 0.04}}}}},
                   {"teacher", {{"target_rate", {{"rate", 0.65}}}}},
                   {"teacher_other", {{"target_rate", {{"rate", 0.01}}}, {"distribution", {{"cat", 0.5}}}}}};
    json datasets = {{"teacher_s1", {{"kept", kept}, {"divergence_from_base", {{"mean_kl", data_kl}, {"mean_lls", 2 * data_kl}}}}},
                     {"teacher_s2", {{"kept", kept}, {"divergence_from_base", {{"mean_kl", data_kl}}}}}};
    json sm = {{"target", "owl"}, {"arms", arms}, {"models", models}, {"datasets", datasets}};
    fs::write_file_atomic(dir / name / "report.json", json({{"stages", {{"summary", sm}}}}).dump());
  };
  write_run("r1", {0.10, 0.20}, {0.6, 0.8}, 0.01, 500);
  write_run("r2", {0.30, 0.40}, {0.9, 0.95}, 0.02, 5000);
  auto dr = report::dose_response({(dir / "r1").string(), (dir / "r2").string()});
  // per run: 2 treatment + 1 cross-init + 1 other-trait; control left out
  ASSERT_EQ(dr["points"].size(), 8u) << dr.dump();
  std::map<std::string, int> arms;
  for (const auto& p : dr["points"]) arms[p["arm"].get<std::string>()]++;
  EXPECT_EQ(arms["treatment"], 4);
  EXPECT_EQ(arms["control"], 0);
  for (const auto& p : dr["points"]) {
    if (p["arm"] == "cross_init") {
      EXPECT_FALSE(p["same_init"].get<bool>());
      EXPECT_NEAR(p["transfer"].get<double>(), 0.0, 1e-9);  // against its own base, 4%
    }
    if (p["arm"] == "other_trait") {
      EXPECT_EQ(p["target"], "cat");
      EXPECT_NEAR(p["transfer"].get<double>(), 3.0, 1e-9);       // 9% against the base's 6% cat
      EXPECT_NEAR(p["teacher_lift"].get<double>(), 44.0, 1e-9);  // the cat teacher: 50% against 6%
    }
  }
  const json& same = dr["correlations"]["same_init"]["fidelity"];
  EXPECT_EQ(same["n"], 6);  // 4 treatment + 2 other-trait
  std::vector<double> fx, ty;
  for (const auto& p : dr["points"])
    if (p["same_init"].get<bool>()) fx.push_back(p["fidelity"].get<double>()), ty.push_back(p["transfer"].get<double>());
  EXPECT_DOUBLE_EQ(same["spearman"].get<double>(), stats::correlate(fx, ty).spearman);
  EXPECT_EQ(dr["correlations"]["same_init"]["unique_prompts"]["n"], 4);  // the other teacher's data has no entry here
  EXPECT_TRUE(dr["best_predictor_same_init"].is_string());
  const std::string svg = report::dose_response_svg(dr);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 10, true);
  EXPECT_NE(svg.find("<circle"), std::string::npos);
  EXPECT_NE(report::dose_response_markdown(dr).find("| held-out imitation fidelity | 6 |"), std::string::npos);
  const std::string csv = report::dose_response_csv(dr);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 9);  // header + 8 students
  sfs::remove_all(dir);
}

// The inference ops of a claim file test the comparison's own estimate: TOST for "equivalent",
// one-sided t for "not_above" / "above". The comparison below is a paired t over questions with
// diff 0.05, se 0.028867513459481 (= 0.05/sqrt(3)) on 5 df; scipy.stats.t gives, for the margin
// [-0.05, 0.15], TOST p = 0.008981442304971988, and for H1 diff < 0.10: t.cdf(-sqrt(3), 5) = 0.0719.
TEST(Claims, InferenceOpsUseTheComparisonsEstimate) {
  const auto c = stats::compare_arms({{0.10, 0.25, 0.40, 0.05, 0.30, 0.20}}, {{0.05, 0.20, 0.30, 0.10, 0.15, 0.20}});
  const json rep = {{"stages", {{"summary", {{"tests", {{"x", report::comparison_json(c, {"a", 1, true, ""}, {"b", 1, false, ""}, "q", nullptr)}}}}}}}};
  auto one = [&](const json& claim) { return report::check_claims(rep, {{"claims", {claim}}}, "c.json").at(0); };
  EXPECT_TRUE(one({{"path", "stages.summary.tests.x"}, {"op", "equivalent"}, {"margin", {-0.05, 0.15}}}).ok);
  EXPECT_FALSE(one({{"path", "stages.summary.tests.x"}, {"op", "equivalent"}, {"margin", {-0.05, 0.15}}, {"alpha", 0.005}}).ok);
  EXPECT_FALSE(one({{"path", "stages.summary.tests.x"}, {"op", "equivalent"}, {"margin", {-0.02, 0.02}}}).ok);
  EXPECT_FALSE(one({{"path", "stages.summary.tests.x"}, {"op", "not_above"}, {"margin", 0.10}}).ok);               // p 0.072
  EXPECT_TRUE(one({{"path", "stages.summary.tests.x"}, {"op", "not_above"}, {"margin", 0.10}, {"alpha", 0.1}}).ok);  // p 0.072 < 0.1
  EXPECT_FALSE(one({{"path", "stages.summary.tests.x"}, {"op", "above"}}).ok);                                      // p(greater) 0.072
  EXPECT_NE(one({{"path", "stages.summary.tests.x"}, {"op", "above"}}).detail.find("p = 0.0719"), std::string::npos);
  // an op that needs an inference on a plain number fails, naming why; bad margins are usage errors
  EXPECT_FALSE(one({{"path", "stages.summary.tests.x.diff"}, {"op", "equivalent"}, {"margin", {-1, 1}}}).ok);
  EXPECT_THROW(one({{"path", "stages.summary.tests.x"}, {"op", "equivalent"}, {"margin", 0.02}}), ConfigError);
  EXPECT_THROW(one({{"path", "stages.summary.tests.x"}, {"op", "equivalent"}, {"margin", {0.02, -0.02}}}), ConfigError);
  EXPECT_THROW(one({{"path", "stages.summary.tests.x"}, {"op", "not_above"}}), ConfigError);
  EXPECT_THROW(one({{"path", "stages.summary.tests.x"}, {"op", "above"}, {"alpha", 0.7}}), ConfigError);
}

// What `check` says of each claim, from the manifest's registrations alone.
TEST(Claims, StatusesFollowTheRegistrations) {
  const json a = {{"name", "a"}, {"path", "p"}, {"op", ">"}, {"value", 1}};
  const json b = {{"name", "b"}, {"path", "p"}, {"op", ">"}, {"value", 2}};
  const json b2 = {{"name", "b"}, {"path", "p"}, {"op", ">"}, {"value", 0}};  // b, weakened
  const json c = {{"name", "c"}, {"path", "p"}, {"op", "<"}, {"value", 9}};
  const json d = {{"name", "d"}, {"path", "p"}, {"op", "<"}, {"value", 8}};
  json man = {{"claims", {report::registration_record("f.json", {{"claims", {a, b}}}, "x", {{"tracked", false}}, {}),
                          report::registration_record("f.json", {{"claims", {a, b, d}}}, "y", {{"tracked", false}}, {"base", "eval/base"})}}};
  const json now = {{"claims", {a, b2, c, d}}};
  const auto st = report::claim_statuses(now, man);
  ASSERT_EQ(st.size(), 4u);
  EXPECT_EQ(st[0].status, "pre-registered");
  EXPECT_TRUE(st[0].pre_registered);
  EXPECT_EQ(st[1].status, "changed after registration");
  EXPECT_EQ(st[2].status, "added after the run started");
  EXPECT_EQ(st[3].status, "registered after results");  // registered when eval/base was done
  EXPECT_FALSE(st[3].pre_registered);
  EXPECT_EQ(report::claim_statuses(now, json::object())[0].status, "not registered");
  json declared = now;
  declared["post_hoc"] = "written after the run";
  EXPECT_TRUE(report::claim_statuses(declared, man)[0].post_hoc);
  EXPECT_THROW(report::parse_claim_file("{\"claims\": 3}", "f.json"), ConfigError);
  EXPECT_THROW(report::parse_claim_file("{\"claims\": [], \"post_hoc\": true}", "f.json"), ConfigError);
}

// A run whose control is the untrained base contributes that one model once, not once per seed pair
// (five copies of one number are not five observations).
TEST(Report, AnUntrainedControlCountsOncePerRun) {
  auto dir = testutil::temp_dir("report_untrained");
  json arms = {{"treatment", {{"per_seed", {{{"rate", 0.3}}, {{"rate", 0.4}}, {{"rate", 0.5}}}}}},
               {"control", {{"trained", false}, {"per_seed", {{{"rate", 0.05}}, {{"rate", 0.05}}, {{"rate", 0.05}}}}}}};
  json sm = {{"target", "owl"}, {"arms", arms}, {"seeds", 3}, {"control_untrained", true}, {"models", json::object()}};
  fs::write_file_atomic(dir / "a" / "report.json", json({{"stages", {{"summary", sm}}}}).dump());
  const json agg = report::aggregate_runs({(dir / "a").string()});
  EXPECT_EQ(agg["targets"]["owl"]["arms"]["control"]["n"].get<int>(), 1);
  EXPECT_EQ(agg["targets"]["owl"]["arms"]["treatment"]["n"].get<int>(), 3);
  EXPECT_EQ(agg["targets"]["owl"]["untrained_control_runs"].get<int>(), 1);
  EXPECT_FALSE(agg["targets"]["owl"]["tests"]["treatment_vs_control"]["defined"].get<bool>());  // one control value: no Welch test
  sfs::remove_all(dir);
}
