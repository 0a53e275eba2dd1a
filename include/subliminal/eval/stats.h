// Statistics for reports: Wilson score intervals for proportions (no torch).
#pragma once
#include <utility>

namespace subliminal::eval {

// 95% (z = 1.959964) Wilson score interval for k successes of n.
std::pair<double, double> wilson_interval(long k, long n, double z = 1.959963984540054);

}  // namespace subliminal::eval
