// Statistics.
#include "subliminal/util/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace subliminal::stats {

std::pair<double, double> wilson_interval(long k, long n, double z) {
  if (n <= 0) return {0.0, 1.0};
  const double p = static_cast<double>(k) / n, z2 = z * z;
  const double den = 1 + z2 / n;
  const double centre = (p + z2 / (2.0 * n)) / den;
  const double half = z * std::sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / den;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

static double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-15;
  double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 500; ++m) {
    int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < eps) break;
  }
  return h;
}

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  double lbt = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  double bt = std::exp(lbt);
  if (x < (a + 1) / (a + b + 2)) return bt * beta_cf(a, b, x) / a;
  return 1 - bt * beta_cf(b, a, 1 - x) / b;
}

double student_t_cdf(double t, double df) {
  if (std::isinf(t)) return t > 0 ? 1 : 0;
  double x = df / (df + t * t);
  double tail = 0.5 * incomplete_beta(df / 2, 0.5, x);  // P(T > |t|)
  return t > 0 ? 1 - tail : tail;
}

double student_t_quantile(double p, double df) {
  if (p <= 0) return -std::numeric_limits<double>::infinity();
  if (p >= 1) return std::numeric_limits<double>::infinity();
  if (p < 0.5) return -student_t_quantile(1 - p, df);
  double lo = 0, hi = 1;
  while (student_t_cdf(hi, df) < p) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-13 * std::max(1.0, hi); ++i) {
    double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, df) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

Summary summarize(const std::vector<double>& xs, double level) {
  Summary s;
  s.n = static_cast<int>(xs.size());
  if (s.n == 0) return s;
  double sum = 0;
  for (double x : xs) sum += x;
  s.mean = sum / s.n;
  s.lo = s.hi = s.mean;
  if (s.n < 2) return s;
  double ss = 0;
  for (double x : xs) ss += (x - s.mean) * (x - s.mean);
  s.sd = std::sqrt(ss / (s.n - 1));
  double half = student_t_quantile(0.5 + level / 2, s.n - 1) * s.sd / std::sqrt(static_cast<double>(s.n));
  s.lo = s.mean - half;
  s.hi = s.mean + half;
  return s;
}

TTest welch_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  TTest r;
  Summary sa = summarize(a), sb = summarize(b);
  r.diff = r.lo = r.hi = sa.mean - sb.mean;
  if (sa.n < 2 || sb.n < 2) return r;
  double va = sa.sd * sa.sd / sa.n, vb = sb.sd * sb.sd / sb.n;
  if (va + vb <= 0) return r;
  r.defined = true;
  r.t = r.diff / std::sqrt(va + vb);
  // Welch-Satterthwaite; a group with zero variance contributes nothing.
  double den = (va > 0 ? va * va / (sa.n - 1) : 0) + (vb > 0 ? vb * vb / (sb.n - 1) : 0);
  r.df = (va + vb) * (va + vb) / den;
  r.p_greater = 1 - student_t_cdf(r.t, r.df);
  r.p_two_sided = std::min(1.0, 2 * (1 - student_t_cdf(std::fabs(r.t), r.df)));
  const double half = student_t_quantile(0.975, r.df) * std::sqrt(va + vb);
  r.lo = r.diff - half;
  r.hi = r.diff + half;
  return r;
}

namespace {
double pearson_of(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return (sxx > 0 && syy > 0) ? sxy / std::sqrt(sxx * syy) : std::nan("");
}
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = (static_cast<double>(i + j) / 2.0) + 1.0;
    i = j + 1;
  }
  return r;
}
}  // namespace

Correlation correlate(const std::vector<double>& x0, const std::vector<double>& y0) {
  std::vector<double> x, y;
  for (size_t i = 0; i < std::min(x0.size(), y0.size()); ++i)
    if (std::isfinite(x0[i]) && std::isfinite(y0[i])) x.push_back(x0[i]), y.push_back(y0[i]);
  Correlation c;
  c.n = static_cast<int>(x.size());
  if (c.n < 3) return c;
  c.pearson = pearson_of(x, y);
  c.spearman = pearson_of(ranks(x), ranks(y));
  if (!std::isfinite(c.pearson) || !std::isfinite(c.spearman)) return Correlation{c.n};
  c.defined = true;
  const double r = std::clamp(c.spearman, -1.0, 1.0);
  if (c.n <= kSpearmanExactMax) {
    // Exact: the share of the n! orderings of y's ranks whose |rho| reaches the observed one
    // (ties keep their mean ranks), the permutation distribution of rho under independence.
    const std::vector<double> rx = ranks(x);
    std::vector<double> ry = ranks(y);
    std::sort(ry.begin(), ry.end());
    const double tol = 1e-9;
    long long hits = 0, total = 0;
    do {
      ++total;
      hits += std::abs(pearson_of(rx, ry)) >= std::abs(r) - tol;
    } while (std::next_permutation(ry.begin(), ry.end()));
    // next_permutation walks distinct orderings; with tied ranks each stands for the same number of
    // labelled permutations, so the share is the same
    c.p_spearman = static_cast<double>(hits) / static_cast<double>(total);
    c.p_spearman_exact = true;
  } else if (std::abs(r) >= 1.0) {
    // the t approximation gives 0 here; exactly, 2 of the n! orderings (no ties) reach |rho| = 1
    c.p_spearman = 2.0 / std::tgamma(c.n + 1.0);
  } else {
    const double t = r * std::sqrt((c.n - 2) / (1 - r * r));
    c.p_spearman = 2 * (1 - student_t_cdf(std::abs(t), c.n - 2));
  }
  return c;
}

double auroc(const std::vector<double>& pos, const std::vector<double>& neg) {
  if (pos.empty() || neg.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::vector<std::pair<double, int>> all;
  all.reserve(pos.size() + neg.size());
  for (double x : pos) all.push_back({x, 1});
  for (double x : neg) all.push_back({x, 0});
  std::sort(all.begin(), all.end(), [](const auto& l, const auto& r) { return l.first < r.first; });
  double rank_sum = 0;  // ranks of the positives, 1-based, ties at their mean rank
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (all[k].second) rank_sum += mean_rank;
    i = j;
  }
  const double np = static_cast<double>(pos.size()), nn = static_cast<double>(neg.size());
  return (rank_sum - np * (np + 1) / 2.0) / (np * nn);
}

PermutationTest permutation_test(const std::vector<double>& a, const std::vector<double>& b, int permutations, uint64_t seed) {
  PermutationTest t;
  t.permutations = permutations;
  if (a.empty() || b.empty() || permutations < 1) return t;
  std::vector<double> pool(a);
  pool.insert(pool.end(), b.begin(), b.end());
  const double total = std::accumulate(pool.begin(), pool.end(), 0.0);
  const size_t na = a.size();
  const double nb = static_cast<double>(b.size());
  auto diff_of = [&](double sum_a) { return sum_a / static_cast<double>(na) - (total - sum_a) / nb; };
  const double obs_sum = std::accumulate(a.begin(), a.end(), 0.0);
  t.diff = diff_of(obs_sum);
  std::mt19937_64 rng(seed);
  int64_t ge = 0;
  // a tolerance for the observed split's own rounding: a permutation equal to it counts as >=
  const double eps = 1e-12 * (1.0 + std::fabs(t.diff));
  for (int r = 0; r < permutations; ++r) {
    // a uniformly random na-subset: the first na of a partial Fisher-Yates shuffle
    double s = 0;
    for (size_t i = 0; i < na; ++i) {
      std::uniform_int_distribution<size_t> pick(i, pool.size() - 1);
      std::swap(pool[i], pool[pick(rng)]);
      s += pool[i];
    }
    if (diff_of(s) >= t.diff - eps) ++ge;
  }
  t.p_greater = (1.0 + static_cast<double>(ge)) / (1.0 + permutations);
  t.defined = true;
  return t;
}

double quantile(std::vector<double> xs, double q) {
  if (xs.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(xs.begin(), xs.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(xs.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, xs.size() - 1);
  return xs[lo] + (pos - static_cast<double>(lo)) * (xs[hi] - xs[lo]);
}

std::pair<double, double> bootstrap_interval(const std::vector<std::vector<double>>& groups,
                                             double (*f)(const std::vector<std::vector<double>>&), int reps, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> vals;
  vals.reserve(static_cast<size_t>(std::max(reps, 0)));
  std::vector<std::vector<double>> g(groups.size());
  for (int r = 0; r < reps; ++r) {
    for (size_t i = 0; i < groups.size(); ++i) {
      g[i].resize(groups[i].size());
      if (groups[i].empty()) continue;
      std::uniform_int_distribution<size_t> pick(0, groups[i].size() - 1);
      for (auto& x : g[i]) x = groups[i][pick(rng)];
    }
    const double v = f(g);
    if (std::isfinite(v)) vals.push_back(v);
  }
  if (vals.empty()) return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
  return {quantile(vals, 0.025), quantile(vals, 0.975)};
}

}  // namespace subliminal::stats
