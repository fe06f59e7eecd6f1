#pragma once
// The loss curve of a run as a small standalone SVG (train loss per step, validation loss
// at its evaluation steps), so a run can be judged without any plotting tool.
#include <string>
#include <utility>
#include <vector>

namespace pg::train {

// Points are (step, loss). Throws pg::Error when the file cannot be written.
void write_loss_plot(const std::string& path, const std::vector<std::pair<double, double>>& train,
                     const std::vector<std::pair<double, double>>& val);

}  // namespace pg::train
