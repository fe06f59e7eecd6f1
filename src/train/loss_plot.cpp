#include "train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "paligemma/error.h"

namespace pg::train {
namespace {

// Text content and attribute values: the labels come from the command line and file names.
std::string escape_xml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        // Control characters other than tab are not allowed in XML 1.0 text: a space instead.
        out += (static_cast<unsigned char>(c) < 0x20 && c != '\t') ? ' ' : c;
    }
  }
  return out;
}

}  // namespace

void write_curve_plot(const std::string& path, const std::vector<PlotSeries>& series, const PlotOptions& options) {
  constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
  constexpr int kColourCount = sizeof kColours / sizeof kColours[0];
  const double legend_height = 16.0 * static_cast<double>(series.size());
  const double W = 640, H = 400 + legend_height, L = 60, R = 20, T = 30 + legend_height, B = 50;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool any = false;
  for (const PlotSeries& curve : series)
    for (const auto& [x, y] : curve.points) {
      if (!std::isfinite(y) || !std::isfinite(x)) continue;
      if (!any) x0 = x1 = x, y0 = y1 = y, any = true;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (x1 <= x0) x1 = x0 + 1;
  if (options.y_from_zero) y0 = std::min(0.0, y0);
  if (y1 <= y0) y1 = y0 + 1;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B
    << "\" stroke=\"black\"/>\n"
    << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    const double y = y0 + (y1 - y0) * i / 4, x = x0 + (x1 - x0) * i / 4;
    char label[32];
    std::snprintf(label, sizeof label, "%.3g", y);
    s << "<text x=\"" << L - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">" << label << "</text>\n";
    std::snprintf(label, sizeof label, "%.0f", x);
    s << "<text x=\"" << px(x) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">" << label << "</text>\n";
  }
  if (!options.title.empty())
    s << "<text x=\"" << W / 2 << "\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">" << escape_xml(options.title)
      << "</text>\n";
  s << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">"
    << escape_xml(options.x_label) << "</text>\n"
    << "<text x=\"14\" y=\"" << (T + H - B) / 2 << "\" transform=\"rotate(-90 14 " << (T + H - B) / 2
    << ")\" text-anchor=\"middle\">" << escape_xml(options.y_label) << "</text>\n";
  for (size_t c = 0; c < series.size(); ++c) {
    const PlotSeries& curve = series[c];
    const char* colour = kColours[c % kColourCount];
    s << "<text x=\"" << L + 10 << "\" y=\"" << 30 + 16.0 * static_cast<double>(c) + 4 << "\" fill=\"" << colour
      << "\">" << escape_xml(curve.label) << "</text>\n";
    if (curve.points.empty()) continue;
    s << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"";
    for (const auto& [x, y] : curve.points)
      if (std::isfinite(y) && std::isfinite(x)) s << px(x) << "," << py(y) << " ";
    s << "\"/>\n";
    for (const auto& [x, y] : curve.points)
      if (std::isfinite(y) && std::isfinite(x) && curve.points.size() < 64)
        s << "<circle cx=\"" << px(x) << "\" cy=\"" << py(y) << "\" r=\"2\" fill=\"" << colour << "\"/>\n";
  }
  s << "</svg>\n";
  std::ofstream out(path);
  out << s.str();
  if (!out) throw Error("cannot write plot " + path);
}

void write_loss_plot(const std::string& path, const std::vector<std::pair<double, double>>& train,
                     const std::vector<std::pair<double, double>>& val) {
  std::vector<PlotSeries> series = {{"train loss", train}};
  if (!val.empty()) series.push_back({"val", val});
  PlotOptions options;
  options.y_label = "loss";
  write_curve_plot(path, series, options);
}

}  // namespace pg::train
