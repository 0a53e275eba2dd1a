// Heat strip and histogram SVGs (hand-written, like the other figures: no plotting dependency).
#include "subliminal/report/signal_figures.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "subliminal/report/report.h"

namespace subliminal::report {

namespace {

std::string svg_open(int w, int h) {
  return fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"Helvetica, Arial, sans-serif\" "
                     "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                     w, h);
}

// white at 0, to #c62828 at +1 and #1565c0 at -1
std::string diverging(double v) {
  v = std::clamp(v, -1.0, 1.0);
  const int r0 = v >= 0 ? 0xc6 : 0x15, g0 = v >= 0 ? 0x28 : 0x65, b0 = v >= 0 ? 0x28 : 0xc0;
  const double a = std::fabs(v);
  auto mix = [&](int c) { return static_cast<int>(std::lround(255 + (c - 255) * a)); };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(r0), mix(g0), mix(b0));
}

}  // namespace

std::string heat_strip_svg(const std::string& title, const std::vector<HeatRow>& rows, const std::string& footnote) {
  double vmax = 1e-9;
  size_t cols = 1;
  for (const auto& r : rows) {
    cols = std::max(cols, r.values.size());
    for (double v : r.values) vmax = std::max(vmax, std::fabs(v));
  }
  const int cw = 34, rh = 22, left = 130, top = 50;
  const int W = left + static_cast<int>(cols) * cw + 20, H = top + static_cast<int>(rows.size()) * rh + 60;
  std::string svg = svg_open(W, H);
  svg += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n", W / 2, xml_escape(title));
  for (size_t i = 0; i < rows.size(); ++i) {
    const int y = top + static_cast<int>(i) * rh;
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\">{}</text>\n", left - 6, y + 15, xml_escape(rows[i].label));
    for (size_t t = 0; t < rows[i].values.size(); ++t) {
      const int x = left + static_cast<int>(t) * cw;
      const double v = rows[i].values[t];
      svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#eee\"><title>{}: {:+.3f}</title></rect>\n", x, y, cw - 1,
                         rh - 2, diverging(v / vmax), xml_escape(t < rows[i].tokens.size() ? rows[i].tokens[t] : ""), v);
      if (t < rows[i].tokens.size())
        svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"9\">{}</text>\n", x + cw / 2, y + 14,
                           xml_escape(rows[i].tokens[t].substr(0, 5)));
    }
  }
  const int ly = top + static_cast<int>(rows.size()) * rh + 14;
  for (int k = 0; k <= 10; ++k) {
    const double v = -1.0 + 0.2 * k;
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"10\" fill=\"{}\"/>\n", left + k * 18, ly, diverging(v));
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\">{:+.2f}</text><text x=\"{}\" y=\"{}\" font-size=\"10\">{:+.2f}  (log P_teacher - log P_base)</text>\n",
                     left - 36, ly + 9, -vmax, left + 11 * 18 + 4, ly + 9, vmax);
  svg += fmt::format("<text x=\"10\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text>\n</svg>\n", H - 10, xml_escape(footnote));
  return svg;
}

std::string histogram_svg(const std::string& title, const std::string& x_label, const std::vector<HistSeries>& series, int bins,
                          const std::string& footnote) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& s : series)
    for (double v : s.values)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) hi = lo + 1;
  bins = std::max(bins, 1);
  const double bw = (hi - lo) / bins;
  std::vector<std::vector<double>> dens;
  double dmax = 1e-12;
  for (const auto& s : series) {
    std::vector<double> d(static_cast<size_t>(bins), 0.0);
    size_t n = 0;
    for (double v : s.values)
      if (std::isfinite(v)) {
        d[static_cast<size_t>(std::clamp<int>(static_cast<int>((v - lo) / bw), 0, bins - 1))] += 1;
        ++n;
      }
    for (auto& x : d) {
      x = n ? x / (static_cast<double>(n) * bw) : 0.0;
      dmax = std::max(dmax, x);
    }
    dens.push_back(std::move(d));
  }
  const int left = 70, right = 20, top = 50, bottom = 330, W = 720, H = 420;
  auto X = [&](double v) { return left + (W - left - right) * (v - lo) / (hi - lo); };
  auto Y = [&](double d) { return bottom - (bottom - top) * d / (dmax * 1.05); };
  std::string svg = svg_open(W, H);
  svg += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n", W / 2, xml_escape(title));
  for (int k = 0; k <= 5; ++k) {
    const double v = lo + (hi - lo) * k / 5;
    svg += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#e0e0e0\"/><text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4:.2f}</text>\n",
                       X(v), top, bottom, bottom + 16, v);
  }
  for (size_t s = 0; s < series.size(); ++s) {
    std::string pts = fmt::format("{:.1f},{:.1f}", X(lo), Y(0));
    for (int b = 0; b < bins; ++b) {
      const double d = dens[s][static_cast<size_t>(b)];
      pts += fmt::format(" {:.1f},{:.1f} {:.1f},{:.1f}", X(lo + b * bw), Y(d), X(lo + (b + 1) * bw), Y(d));
    }
    pts += fmt::format(" {:.1f},{:.1f}", X(hi), Y(0));
    svg += fmt::format("<polyline points=\"{}\" fill=\"{}\" fill-opacity=\"0.25\" stroke=\"{}\" stroke-width=\"1.5\"/>\n", pts, series[s].color,
                       series[s].color);
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{} (n = {})</text>\n", left + 220 * static_cast<int>(s),
                       bottom + 40, series[s].color, left + 220 * static_cast<int>(s) + 16, bottom + 51, xml_escape(series[s].label), series[s].values.size());
  }
  svg += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", left, W - right, bottom, bottom);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (left + W - right) / 2, bottom + 30, xml_escape(x_label));
  svg += fmt::format("<text x=\"10\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text>\n</svg>\n", H - 10, xml_escape(footnote));
  return svg;
}

}  // namespace subliminal::report
