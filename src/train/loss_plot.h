#pragma once
// Curves as a small standalone SVG, so a run (or several runs side by side) can be judged
// without any plotting tool: the loss curve every fine-tuning run writes (loss.svg), and
// `paligemma plot` for any metric of several runs' metrics.jsonl.
#include <string>
#include <utility>
#include <vector>

namespace pg::train {

struct PlotSeries {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite y are left out
};

struct PlotOptions {
  std::string title;  // above the plot (may be empty)
  std::string x_label = "step";
  std::string y_label;
  bool y_from_zero = true;  // the y axis starts at min(0, lowest y)
};

// One polyline per series (dots when it has under 64 points), in a fixed colour cycle, with a
// legend. Throws pg::Error when the file cannot be written.
void write_curve_plot(const std::string& path, const std::vector<PlotSeries>& series, const PlotOptions& options);

// Points are (step, loss): "train loss" and "val".
void write_loss_plot(const std::string& path, const std::vector<std::pair<double, double>>& train,
                     const std::vector<std::pair<double, double>>& val);

}  // namespace pg::train
