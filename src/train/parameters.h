#pragma once
// The trainer's f32 copy of a checkpoint's tensors ("master weights"), by canonical name
// (pg::Checkpoint's names: language_model.model.*, vision_tower.*, multi_modal_projector.*),
// and the same structure for gradients and optimizer moments.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "paligemma/checkpoint.h"

namespace pg::train {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
};

class Parameters {
 public:
  // Every tensor of the checkpoint widened to f32. Throws for quantised (int8 / q4) tensors:
  // full fine-tuning needs float weights.
  static Parameters from_checkpoint(const Checkpoint& checkpoint);
  // The same names and shapes, all zero.
  Parameters zeros_like() const;

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throw pg::Error naming the tensor when absent.
  Tensor& at(const std::string& name);
  const Tensor& at(const std::string& name) const;
  float* data(const std::string& name) { return at(name).data.data(); }
  const float* data(const std::string& name) const { return at(name).data.data(); }

  void add(const std::string& name, Tensor tensor) { tensors_[name] = std::move(tensor); }
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  std::map<std::string, Tensor>& tensors() { return tensors_; }
  int64_t total_numel() const;
  void fill(float value);

 private:
  std::map<std::string, Tensor> tensors_;
};

}  // namespace pg::train
