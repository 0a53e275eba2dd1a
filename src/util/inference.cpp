// Inference for the crossed models x questions design: see inference.h.
#include "subliminal/util/inference.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "subliminal/util/stats.h"

namespace subliminal::stats {

namespace {

struct ArmMoments {
  int s = 0, q = 0;
  double grand = 0;
  std::vector<double> model_means, question_means;
  double seed_term = 0, seed_df = 0;                // var_s(r_s) / S, on S - 1 df (0 when S < 2)
  double interaction_term = 0, interaction_df = 0;  // MS_res / (S Q), on (S-1)(Q-1) df
};

ArmMoments moments(const std::vector<QuestionRates>& arm) {
  ArmMoments m;
  m.s = static_cast<int>(arm.size());
  m.q = m.s ? static_cast<int>(arm.front().size()) : 0;
  if (m.s == 0 || m.q == 0) return m;
  m.model_means.assign(static_cast<size_t>(m.s), 0.0);
  m.question_means.assign(static_cast<size_t>(m.q), 0.0);
  for (int i = 0; i < m.s; ++i)
    for (int j = 0; j < m.q; ++j) {
      const double p = arm[static_cast<size_t>(i)][static_cast<size_t>(j)];
      m.model_means[static_cast<size_t>(i)] += p / m.q;
      m.question_means[static_cast<size_t>(j)] += p / m.s;
      m.grand += p / (static_cast<double>(m.s) * m.q);
    }
  if (m.s < 2) return m;
  double ss = 0;
  for (double r : m.model_means) ss += (r - m.grand) * (r - m.grand);
  m.seed_term = ss / (m.s - 1) / m.s;
  m.seed_df = m.s - 1;
  if (m.q >= 2) {
    double res = 0;
    for (int i = 0; i < m.s; ++i)
      for (int j = 0; j < m.q; ++j) {
        const double e = arm[static_cast<size_t>(i)][static_cast<size_t>(j)] - m.model_means[static_cast<size_t>(i)] -
                         m.question_means[static_cast<size_t>(j)] + m.grand;
        res += e * e;
      }
    m.interaction_df = static_cast<double>(m.s - 1) * (m.q - 1);
    m.interaction_term = res / m.interaction_df / (static_cast<double>(m.s) * m.q);
  }
  return m;
}

bool rectangular(const std::vector<QuestionRates>& arm, size_t q) {
  if (arm.empty()) return false;
  for (const auto& r : arm)
    if (r.size() != q) return false;
  return true;
}

double sample_variance(const std::vector<double>& xs) {
  if (xs.size() < 2) return 0;
  double m = 0;
  for (double x : xs) m += x / static_cast<double>(xs.size());
  double ss = 0;
  for (double x : xs) ss += (x - m) * (x - m);
  return ss / static_cast<double>(xs.size() - 1);
}

// Satterthwaite's degrees of freedom of a sum of independent mean-square terms.
double satterthwaite(double v, const std::vector<std::pair<double, double>>& terms) {
  double den = 0;
  for (const auto& [t, df] : terms)
    if (df > 0 && t != 0) den += t * t / df;
  return den > 0 ? v * v / den : 0;
}

// A comparison's test from its variance v (> 0) and the terms behind it: se, Satterthwaite df, t,
// p-values, 95% and 90% intervals.
void finish(Comparison& c, double v, const std::vector<std::pair<double, double>>& terms) {
  c.se = std::sqrt(v);
  c.df = std::max(1.0, satterthwaite(v, terms));
  c.t = c.diff / c.se;
  c.p_greater = 1 - student_t_cdf(c.t, c.df);
  c.p_two_sided = std::min(1.0, 2 * (1 - student_t_cdf(std::fabs(c.t), c.df)));
  const double h95 = student_t_quantile(0.975, c.df) * c.se, h90 = student_t_quantile(0.95, c.df) * c.se;
  c.lo = c.diff - h95;
  c.hi = c.diff + h95;
  c.lo90 = c.diff - h90;
  c.hi90 = c.diff + h90;
  c.defined = true;
}

}  // namespace

RateEstimate estimate_rate(const std::vector<QuestionRates>& arm) {
  RateEstimate r;
  if (arm.empty() || !rectangular(arm, arm.front().size())) return r;
  const ArmMoments m = moments(arm);
  r.models = m.s;
  r.questions = m.q;
  r.mean = r.lo = r.hi = m.grand;
  if (m.q < 2) return r;
  const double vq = sample_variance(m.question_means) / m.q;
  double v = vq + m.seed_term - m.interaction_term;
  std::vector<std::pair<double, double>> terms = {{vq, m.q - 1}};
  if (m.s >= 2) terms.insert(terms.end(), {{m.seed_term, m.seed_df}, {m.interaction_term, m.interaction_df}});
  // Deliberately conservative: never below either one-way variance (CGM's remedy for a negative
  // estimate, applied whenever the subtraction would go below it; calibrated with it)
  v = std::max(v, std::max(vq, m.seed_term));
  if (v <= 0) return r;
  r.se = std::sqrt(v);
  r.df = std::max(1.0, satterthwaite(v, terms));
  const double h = student_t_quantile(0.975, r.df) * r.se;
  r.lo = std::max(0.0, r.mean - h);  // a rate: the interval within [0, 1]
  r.hi = std::min(1.0, r.mean + h);
  r.defined = true;
  return r;
}

Comparison compare_arms(const std::vector<QuestionRates>& a, const std::vector<QuestionRates>& b) {
  Comparison c;
  c.models_a = static_cast<int>(a.size());
  c.models_b = static_cast<int>(b.size());
  if (a.empty() || b.empty()) return c;
  const size_t q = a.front().size();
  c.questions = static_cast<int>(q);
  if (!rectangular(a, q) || !rectangular(b, q)) return c;  // models answered different question lists
  const ArmMoments ma = moments(a), mb = moments(b);
  c.diff = ma.grand - mb.grand;
  c.lo = c.hi = c.lo90 = c.hi90 = c.diff;
  if (q < 2) return c;
  std::vector<double> d(q);
  for (size_t j = 0; j < q; ++j) d[j] = ma.question_means[j] - mb.question_means[j];
  c.v_question = sample_variance(d) / static_cast<double>(q);
  c.v_seed = ma.seed_term + mb.seed_term;
  c.v_interaction = ma.interaction_term + mb.interaction_term;
  double v = c.v_seed + c.v_question - c.v_interaction;
  // Deliberately conservative: never below either one-way variance (CGM's remedy for a negative
  // estimate, applied whenever the subtraction would go below it; the calibration is with it)
  v = std::max(v, std::max(c.v_seed, c.v_question));
  if (v <= 0) return c;
  finish(c, v, {{c.v_question, static_cast<double>(q) - 1},
                {ma.seed_term, ma.seed_df},
                {mb.seed_term, mb.seed_df},
                {ma.interaction_term, ma.interaction_df},
                {mb.interaction_term, mb.interaction_df}});
  return c;
}

Comparison compare_replicates(const std::vector<QuestionRates>& a, const std::vector<QuestionRates>& b) {
  Comparison c;
  c.models_a = static_cast<int>(a.size());
  c.models_b = static_cast<int>(b.size());
  if (a.empty() || a.size() != b.size()) return c;
  const size_t q = a.front().size();
  c.questions = static_cast<int>(q);
  if (!rectangular(a, q) || !rectangular(b, q)) return c;
  // d_rq = a_rq - b_rq: the replicate's own difference on each question (paired by replicate: both
  // sides share its base; and by question)
  std::vector<QuestionRates> d(a.size(), QuestionRates(q));
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t j = 0; j < q; ++j) d[r][j] = a[r][j] - b[r][j];
  const ArmMoments m = moments(d);
  c.diff = m.grand;
  c.lo = c.hi = c.lo90 = c.hi90 = c.diff;
  if (m.s < 2 || q < 2) return c;  // one replicate: no replicate variance to test against
  c.v_seed = m.seed_term;  // here: between replicates
  c.v_question = sample_variance(m.question_means) / static_cast<double>(q);
  c.v_interaction = m.interaction_term;
  double v = c.v_seed + c.v_question - c.v_interaction;
  v = std::max(v, std::max(c.v_seed, c.v_question));  // the same conservative floor as compare_arms
  if (v <= 0) return c;
  finish(c, v, {{c.v_question, static_cast<double>(q) - 1}, {m.seed_term, m.seed_df}, {m.interaction_term, m.interaction_df}});
  return c;
}

double p_above(const Comparison& c, double margin) {
  if (!c.defined) return 1;
  return 1 - student_t_cdf((c.diff - margin) / c.se, c.df);
}
double p_below(const Comparison& c, double margin) {
  if (!c.defined) return 1;
  return student_t_cdf((c.diff - margin) / c.se, c.df);
}
double p_equivalent(const Comparison& c, double lo, double hi) {
  if (!c.defined || !(lo < hi)) return 1;
  return std::max(p_above(c, lo), p_below(c, hi));
}

Calibration simulate_inference(const Scenario& s, int experiments, uint64_t seed) {
  Calibration cal;
  cal.scenario = s;
  cal.experiments = experiments;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto sym = [&](double sd) { return sd > 0 ? sd * normal(rng) : 0.0; };
  const size_t Q = static_cast<size_t>(s.questions), M = static_cast<size_t>(s.samples);
  std::vector<double> base(Q), u(Q * M);
  // One model's per-question rates: m Bernoulli draws per question against the shared uniforms.
  auto evaluate = [&](const std::vector<double>& p) {
    QuestionRates r(Q, 0.0);
    for (size_t q = 0; q < Q; ++q) {
      const double pq = std::clamp(p[q], 0.0, 1.0);
      for (size_t j = 0; j < M; ++j) r[q] += (u[q * M + j] < pq) / static_cast<double>(M);
    }
    return r;
  };
  auto arm = [&](int models, double effect) {
    std::vector<double> w(Q);
    for (auto& x : w) x = sym(s.interaction);
    std::vector<QuestionRates> out;
    for (int i = 0; i < models; ++i) {
      const double ui = sym(s.seed_effect);
      std::vector<double> p(Q);
      for (size_t q = 0; q < Q; ++q) p[q] = base[q] + effect + ui + w[q] + sym(s.noise);
      out.push_back(evaluate(p));
    }
    return out;
  };
  for (int e = 0; e < experiments; ++e) {
    for (auto& b : base) b = 0.30 + 0.10 * unit(rng);
    for (auto& x : u) x = unit(rng);
    const auto a = arm(s.models_a, s.effect);
    const auto b = s.untrained_b ? std::vector<QuestionRates>{evaluate(base)} : arm(s.models_b, 0.0);
    const Comparison c = compare_arms(a, b);
    cal.rejections += c.defined && c.p_two_sided < 0.05;
    cal.covered += c.defined && c.lo <= s.effect && s.effect <= c.hi;
    // The old test: Welch across the models' rates; the untrained base's "seed pairs" were its one
    // rate repeated (a one-sample t-test against it).
    auto rates = [](const std::vector<QuestionRates>& arm) {
      std::vector<double> r;
      for (const auto& m : arm) r.push_back(std::accumulate(m.begin(), m.end(), 0.0) / static_cast<double>(m.size()));
      return r;
    };
    std::vector<double> ra = rates(a), rb = rates(b);
    if (s.untrained_b) rb.assign(static_cast<size_t>(s.models_a), rb.front());
    const TTest w = welch_t_test(ra, rb);
    cal.rejections_welch += w.defined && w.p_two_sided < 0.05;
    cal.covered_welch += w.defined && w.lo <= s.effect && s.effect <= w.hi;
  }
  return cal;
}

std::vector<Scenario> calibration_scenarios() {
  std::vector<Scenario> v;
  Scenario t;
  t.name = "trained control, no effect";
  v.push_back(t);
  t.name = "trained control, effect +0.10";
  t.effect = 0.10;
  v.push_back(t);
  Scenario b;
  b.name = "untrained base as control, no effect";
  b.models_b = 1;
  b.untrained_b = true;
  v.push_back(b);
  b.name = "untrained base as control, effect +0.30";
  b.effect = 0.30;
  v.push_back(b);
  Scenario q;
  q.name = "strong question clustering, weak seed effects, no effect";
  q.seed_effect = 0.005;
  q.interaction = 0.08;
  q.noise = 0.03;
  v.push_back(q);
  return v;
}

}  // namespace subliminal::stats
