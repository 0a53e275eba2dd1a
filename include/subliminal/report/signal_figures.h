// The signal-map figures of `subliminal analyze` and the analysis stages (issue 25), as SVG: a heat
// strip of examples (each token a cell coloured by its teacher-vs-base log-ratio) and overlaid
// histograms (LLS of the teacher's data against the control's).
#pragma once
#include <string>
#include <vector>

namespace subliminal::report {

struct HeatRow {
  std::string label;                // e.g. "#17  LLS 4.21"
  std::vector<std::string> tokens;  // each token's text
  std::vector<double> values;       // each token's log-ratio
};
// Red for positive (the teacher more likely), blue for negative, white at 0; the colour scale is
// symmetric around 0 at the largest |value| shown.
std::string heat_strip_svg(const std::string& title, const std::vector<HeatRow>& rows, const std::string& footnote);

struct HistSeries {
  std::string label, color;
  std::vector<double> values;
};
// Shared bins over every series' range (`bins` of equal width), each series as a density outline.
std::string histogram_svg(const std::string& title, const std::string& x_label, const std::vector<HistSeries>& series, int bins,
                          const std::string& footnote);

}  // namespace subliminal::report
