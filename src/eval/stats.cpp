// Statistics.
#include "subliminal/eval/stats.h"

#include <cmath>

namespace subliminal::eval {

std::pair<double, double> wilson_interval(long k, long n, double z) {
  if (n <= 0) return {0.0, 1.0};
  const double p = static_cast<double>(k) / n, z2 = z * z;
  const double den = 1 + z2 / n;
  const double centre = (p + z2 / (2.0 * n)) / den;
  const double half = z * std::sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / den;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

}  // namespace subliminal::eval
