#include "train/parameters.h"

#include <algorithm>

#include "paligemma/error.h"

namespace pg::train {

Parameters Parameters::from_checkpoint(const Checkpoint& checkpoint) {
  Parameters p;
  for (const std::string& name : checkpoint.names()) {
    const TensorView& t = checkpoint.get(name);
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
      throw Error("training needs float weights, but tensor " + name + " in " + checkpoint.file_of(name) +
                  " has dtype " + dtype_name(t.dtype) + " (a quantised checkpoint; train from the original)");
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
