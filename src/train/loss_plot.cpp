#include "train/loss_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "paligemma/error.h"

namespace pg::train {

void write_loss_plot(const std::string& path, const std::vector<std::pair<double, double>>& train,
                     const std::vector<std::pair<double, double>>& val) {
  constexpr double W = 640, H = 400, L = 60, R = 20, T = 30, B = 50;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool any = false;
  for (const auto* curve : {&train, &val})
    for (const auto& [x, y] : *curve) {
      if (!std::isfinite(y)) continue;
      if (!any) x0 = x1 = x, y0 = y1 = y, any = true;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  y0 = std::min(0.0, y0);
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
  s << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step</text>\n"
    << "<text x=\"14\" y=\"" << (T + H - B) / 2 << "\" transform=\"rotate(-90 14 " << (T + H - B) / 2
    << ")\" text-anchor=\"middle\">loss</text>\n";
  auto polyline = [&](const std::vector<std::pair<double, double>>& c, const char* colour) {
    if (c.empty()) return;
    s << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"";
    for (const auto& [x, y] : c)
      if (std::isfinite(y)) s << px(x) << "," << py(y) << " ";
    s << "\"/>\n";
    for (const auto& [x, y] : c)
      if (std::isfinite(y) && c.size() < 64)
        s << "<circle cx=\"" << px(x) << "\" cy=\"" << py(y) << "\" r=\"2\" fill=\"" << colour << "\"/>\n";
  };
  polyline(train, "#1f77b4");
  polyline(val, "#d62728");
  s << "<text x=\"" << W - R - 120 << "\" y=\"" << T - 10 << "\" fill=\"#1f77b4\">train loss</text>\n";
  if (!val.empty()) s << "<text x=\"" << W - R - 50 << "\" y=\"" << T - 10 << "\" fill=\"#d62728\">val</text>\n";
  s << "</svg>\n";
  std::ofstream out(path);
  out << s.str();
  if (!out) throw Error("cannot write loss plot " + path);
}

}  // namespace pg::train
