// `paligemma plot`: one metric of several runs (their metrics.jsonl) against the step, as one
// SVG, so runs can be compared side by side without a plotting tool (e.g. the transfer demo's
// "from pt" against "from scratch", tools/recipe/transfer_demo.sh).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "paligemma/error.h"
#include "train/loss_plot.h"

namespace pg::cli {
namespace {

struct PlotArgs {
  std::vector<std::string> runs;  // LABEL=PATH
  std::string metric = "loss";
  std::string x = "step";
  std::string out, title, y_label;
};

// The value at a dotted key: "val_metrics.answer.vqa_accuracy" is j["val_metrics"]
// ["answer.vqa_accuracy"] (metric names hold dots themselves), so every split of the key is
// tried, longest first part first. Null when absent or not a number.
const nlohmann::json* lookup(const nlohmann::json& j, const std::string& key) {
  if (!j.is_object()) return nullptr;
  if (auto it = j.find(key); it != j.end()) return it->is_number() ? &*it : nullptr;
  for (size_t dot = key.rfind('.'); dot != std::string::npos && dot > 0; dot = key.rfind('.', dot - 1)) {
    auto it = j.find(key.substr(0, dot));
    if (it == j.end()) continue;
    if (const nlohmann::json* found = lookup(*it, key.substr(dot + 1))) return found;
  }
  return nullptr;
}

train::PlotSeries read_series(const std::string& spec, const PlotArgs& a) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw Error("plot: --run takes LABEL=PATH (a metrics.jsonl or a run directory), got '" + spec + "'");
  train::PlotSeries series{spec.substr(0, eq), {}};
  std::string path = spec.substr(eq + 1);
  if (std::error_code ec; std::filesystem::is_directory(path, ec)) path += "/metrics.jsonl";
  std::ifstream in(path);
  if (!in) throw Error("plot: cannot read '" + path + "'");
  std::string text;
  for (int line = 1; std::getline(in, text); ++line) {
    if (text.empty()) continue;
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) throw Error("plot: " + path + " line " + std::to_string(line) + " is not JSON");
    const nlohmann::json *x = lookup(j, a.x), *y = lookup(j, a.metric);
    if (x && y) series.points.emplace_back(x->get<double>(), y->get<double>());
  }
  if (series.points.empty())
    throw Error("plot: no line of '" + path + "' has both '" + a.x + "' and '" + a.metric + "'");
  return series;
}

int plot(const PlotArgs& a) {
  std::vector<train::PlotSeries> series;
  for (const std::string& spec : a.runs) series.push_back(read_series(spec, a));
  train::PlotOptions options;
  options.title = a.title;
  options.x_label = a.x;
  options.y_label = a.y_label.empty() ? a.metric : a.y_label;
  train::write_curve_plot(a.out, series, options);
  size_t points = 0;
  for (const auto& s : series) points += s.points.size();
  std::cerr << "plot: wrote " << a.out << " (" << series.size() << " runs, " << points << " points of " << a.metric
            << ")\n";
  return 0;
}

}  // namespace

Runner add_plot_command(CLI::App& app) {
  auto args = std::make_shared<PlotArgs>();
  CLI::App* cmd = app.add_subcommand("plot", "Plot one metric of several runs' metrics.jsonl against the step, as SVG");
  cmd->add_option("--run", args->runs, "LABEL=PATH: a run directory or its metrics.jsonl (repeat for several runs)")
      ->required();
  cmd->add_option("--metric", args->metric,
                  "Metric key; dots reach inside objects, e.g. val_metrics.answer.vqa_accuracy")
      ->capture_default_str();
  cmd->add_option("--x", args->x, "Key of the x axis")->capture_default_str();
  cmd->add_option("--out", args->out, "Output SVG file")->required();
  cmd->add_option("--title", args->title, "Title above the plot");
  cmd->add_option("--y-label", args->y_label, "Label of the y axis (default: the metric key)");
  return [args] { return plot(*args); };
}

}  // namespace pg::cli
