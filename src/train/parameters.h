#pragma once
// The trainer's f32 copy of a checkpoint's tensors ("master weights"), by canonical name
// (pg::Checkpoint's names: language_model.model.*, vision_tower.*, multi_modal_projector.*),
// and the same structure for gradients and optimizer moments.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kernels/weight_matrix.h"
#include "paligemma/checkpoint.h"
#include "paligemma/config.h"

namespace pg::train {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
};

// A float tensor of a checkpoint or safetensors file, widened to f32.
Tensor to_f32_tensor(const TensorView& view);

class Parameters {
 public:
  // Every tensor of the checkpoint widened to f32, except the matrices `in_place` selects
  // (frozen ones): those stay in the mapped checkpoint as views, read by the kernels, so a
  // frozen base costs its stored bytes, not an f32 copy. The checkpoint must outlive the
  // views. Throws for quantised (int8 / q4) tensors.
  static Parameters from_checkpoint(const Checkpoint& checkpoint,
                                    const std::function<bool(const std::string&)>& in_place = nullptr);
  // The same for a checkpoint that may be quantised (`paligemma quantize`: int8 / q4
  // matrices with their scales): the linears and the embedding are bound as the inference
  // engine binds them (shapes from the config), quantised ones always as views: a frozen
  // quantised base (QLoRA). Throws when a quantised matrix would have to train.
  static Parameters from_checkpoint(const Checkpoint& checkpoint, const ModelConfig& config,
                                    const std::function<bool(const std::string&)>& in_place);
  // The same names and shapes, all zero.
  Parameters zeros_like() const;

  bool has(const std::string& name) const { return tensors_.count(name) != 0 || views_.count(name) != 0; }
  // A frozen matrix kept in the checkpoint, or null.
  const kernels::WeightMatrix* view(const std::string& name) const {
    auto it = views_.find(name);
    return it == views_.end() ? nullptr : &it->second;
  }
  const std::map<std::string, kernels::WeightMatrix>& views() const { return views_; }
  void add_view(const std::string& name, const kernels::WeightMatrix& w) { views_[name] = w; }
  // Every name, tensors and views.
  std::vector<std::string> names() const;
  // The shape of a tensor or view.
  std::vector<int64_t> shape(const std::string& name) const;
  // A view widened into an f32 tensor (in place of the view); a tensor as it is.
  Tensor& materialize(const std::string& name);
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
  std::map<std::string, kernels::WeightMatrix> views_;
};

}  // namespace pg::train
