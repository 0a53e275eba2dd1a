// Inference for the trait experiments' crossed design (no torch). Every evaluated model answers the
// same Q questions, m samples each, from one shared sampling seed; an arm is S models (one per seed
// pair; the untrained base is an arm of one model). The answers are clustered by question and by
// model, and the arms share questions and the sampling stream, so neither the Wilson interval of all
// S·Q·m answers (they are not independent) nor a Welch test of the S seed rates (it ignores which
// questions were drawn, and a one-model arm's own sampling error) is valid.
//
// The estimator: the difference of the arms' grand means, with the two-way cluster-robust variance
// of Cameron, Gelbach & Miller (2011, "Robust inference with multiway clustering") for the crossed
// factors model and question:
//   V = sum_a var_s(r_as)/S_a  +  var_q(d_q)/Q  -  sum_a MS_res,a/(S_a Q)
// r_as: model s's rate over the questions; d_q: the arms' difference on question q (paired: the
// question's own difficulty cancels); MS_res,a: the model x question interaction mean square (counted
// in both other terms, so subtracted once). Each term is an unbiased moment of the mixed model
// p_asq = mu_a + u_as + v_q + w_aq + e_asq; a one-model arm has no seed term (its sampling error is in
// d_q). Reference distribution: Student-t with Satterthwaite's degrees of freedom over the terms.
// Calibrated by simulation (simulate_inference; tests/util/test_inference_numeric.cpp): false-positive
// rate and interval coverage with question clustering, seed effects and common random numbers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace subliminal::stats {

// One evaluated model's rate on each question (k_q / m), the questions in one fixed order.
using QuestionRates = std::vector<double>;

// An arm's mean rate over its models and the questions, with a 95% interval of the mean over the
// population of questions (and of seed pairs when the arm has more than one model), cut to [0, 1].
struct RateEstimate {
  int models = 0, questions = 0;
  double mean = 0, se = 0, df = 0;
  double lo = 0, hi = 0;
  bool defined = false;  // false with fewer than 2 questions
};
RateEstimate estimate_rate(const std::vector<QuestionRates>& arm);

struct Comparison {
  int models_a = 0, models_b = 0, questions = 0;
  double diff = 0;             // mean(a) - mean(b)
  double se = 0, df = 0, t = 0;
  double lo = 0, hi = 0;       // 95% two-sided interval of diff
  double lo90 = 0, hi90 = 0;   // 90% two-sided interval: the TOST's at alpha 0.05
  double p_two_sided = 1, p_greater = 1;  // H1: diff != 0; H1: diff > 0
  double v_seed = 0, v_question = 0, v_interaction = 0;  // the variance terms (V = seed + question - interaction)
  bool defined = false;        // false when the arms' question counts differ, Q < 2, or V = 0
};
// Arm a against arm b, paired by question (the same questions in the same order in every model).
Comparison compare_arms(const std::vector<QuestionRates>& a, const std::vector<QuestionRates>& b);

// Independent replicates (each its own base, teachers, data and students; inference.h's design
// inside each), the replicate the unit: a[r], b[r] are replicate r's two sides, each the mean over
// its models of their per-question rates, every replicate on the same questions. The estimate is the
// mean over replicates and questions of d_rq = a_rq - b_rq (paired by replicate and by question), its
// variance the two-way cluster-robust one over replicates and questions (the same moments as above,
// with replicates in place of models):
//   V = var_r(d_r.)/R + var_q(d_.q)/Q - MS_res/(R Q),
// floored at either one-way term, t with Satterthwaite's df (about R - 1 when replicates disagree).
// Undefined with fewer than 2 replicates or 2 questions.
Comparison compare_replicates(const std::vector<QuestionRates>& a, const std::vector<QuestionRates>& b);

// Two one-sided tests (Schuirmann 1987) of H1: lo < diff < hi. p = the larger one-sided p; the
// difference is shown equivalent at alpha when p < alpha (the 1-2alpha interval inside the margin).
double p_equivalent(const Comparison& c, double lo, double hi);
// One-sided test of H1: diff < margin (non-superiority: "not above by more than margin").
double p_below(const Comparison& c, double margin);
// One-sided test of H1: diff > margin.
double p_above(const Comparison& c, double margin);

// The calibration study. A scenario's data come from the mixed model above on the probability scale:
// question difficulty U(0.30, 0.40), per-model seed effect N(0, seed_effect), per arm x question
// interaction N(0, interaction), per model x question noise N(0, noise) (all four sd below 0.1 from
// the walls: a rate is clipped to [0, 1] about once in 10^4 draws, so the true difference is
// `effect` to within 1e-5), m Bernoulli samples per question drawn
// from one set of uniforms per experiment for every model (common random numbers, as the evaluation
// does). models_b = 1 with untrained_b: arm b is one fixed model (the base) with no noise of its own.
struct Scenario {
  std::string name;
  int models_a = 5, models_b = 5, questions = 50, samples = 20;
  double effect = 0;
  double seed_effect = 0.03, interaction = 0.045, noise = 0.045;  // standard deviations
  bool untrained_b = false;
};
struct Calibration {
  Scenario scenario;
  int experiments = 0;
  int rejections = 0;          // p_two_sided < 0.05
  int covered = 0;             // 95% interval holds the true effect
  int rejections_welch = 0;    // the old test: Welch across the models' rates (a one-model arm: its rate alone)
  int covered_welch = 0;
};
Calibration simulate_inference(const Scenario& s, int experiments, uint64_t seed);
// The scenarios the numeric test and `subliminal calibrate` run: the default's design (5 seed pairs,
// 50 questions x 20 samples) with a trained control and with the untrained base, without and with
// an effect, and one with strong question clustering and weak seed effects.
std::vector<Scenario> calibration_scenarios();

}  // namespace subliminal::stats
