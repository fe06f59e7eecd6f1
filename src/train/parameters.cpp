#include "train/parameters.h"

#include <algorithm>

#include "kernels/quantize.h"
#include "paligemma/error.h"

namespace pg::train {

Parameters Parameters::from_checkpoint(const Checkpoint& checkpoint,
                                       const std::function<bool(const std::string&)>& in_place) {
  Parameters p;
  for (const std::string& name : checkpoint.names()) {
    const TensorView& t = checkpoint.get(name);
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
      throw Error("training needs float weights, but tensor " + name + " in " + checkpoint.file_of(name) +
                  " has dtype " + dtype_name(t.dtype) + " (a quantised checkpoint; train from the original)");
    if (in_place && t.shape.size() == 2 && in_place(name)) {
      kernels::WeightMatrix w = kernels::weight_from_tensor(t);
      w.name = name;
      p.views_[name] = w;
      continue;
    }
    Tensor out;
    out.shape = t.shape;
    out.data.resize(t.numel());
    convert_to_f32(t.dtype, t.data, 0, out.data.size(), out.data.data());
    p.tensors_[name] = std::move(out);
  }
  return p;
}

Parameters Parameters::zeros_like() const {
  Parameters z;
  for (const auto& [name, t] : tensors_) {
    Tensor out;
    out.shape = t.shape;
    out.data.assign(t.data.size(), 0.0f);
    z.tensors_[name] = std::move(out);
  }
  return z;
}

std::vector<std::string> Parameters::names() const {
  std::vector<std::string> out;
  for (const auto& [n, t] : tensors_) out.push_back(n);
  for (const auto& [n, v] : views_) out.push_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int64_t> Parameters::shape(const std::string& name) const {
  if (const kernels::WeightMatrix* v = view(name)) return {v->rows, v->cols};
  return at(name).shape;
}

Tensor& Parameters::materialize(const std::string& name) {
  auto it = views_.find(name);
  if (it == views_.end()) return at(name);
  Tensor t;
  t.shape = {it->second.rows, it->second.cols};
  t.data.resize(static_cast<size_t>(it->second.rows) * it->second.cols);
  kernels::dequantize_rows_f32(it->second, 0, it->second.rows, t.data.data());
  views_.erase(it);
  return tensors_[name] = std::move(t);
}

Tensor& Parameters::at(const std::string& name) {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("training parameters have no tensor " + name);
  return it->second;
}

const Tensor& Parameters::at(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("training parameters have no tensor " + name);
  return it->second;
}

int64_t Parameters::total_numel() const {
  int64_t n = 0;
  for (const auto& [name, t] : tensors_) n += t.numel();
  return n;
}

void Parameters::fill(float value) {
  for (auto& [name, t] : tensors_) std::fill(t.data.begin(), t.data.end(), value);
}

}  // namespace pg::train
