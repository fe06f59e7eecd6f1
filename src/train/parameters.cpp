#include "train/parameters.h"

#include <algorithm>

#include "kernels/quantize.h"
#include "model/weights.h"
#include "paligemma/error.h"
#include "paligemma/quantize.h"

namespace pg::train {

Tensor to_f32_tensor(const TensorView& view) {
  Tensor out;
  out.shape = view.shape;
  out.data.resize(view.numel());
  convert_to_f32(view.dtype, view.data, 0, out.data.size(), out.data.data());
  return out;
}

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
    p.tensors_[name] = to_f32_tensor(t);
  }
  return p;
}

Parameters Parameters::from_checkpoint(const Checkpoint& checkpoint, const ModelConfig& config,
                                       const std::function<bool(const std::string&)>& in_place) {
  bool quantised = false;
  for (const std::string& name : checkpoint.names()) {
    const DType d = checkpoint.get(name).dtype;
    quantised |= d == DType::I8 || d == DType::U8;
  }
  if (!quantised) return from_checkpoint(checkpoint, in_place);
  // Every matrix as the inference engine binds it (validated against the config).
  const auto weights = load_weights(checkpoint, config);
  std::map<std::string, kernels::WeightMatrix> matrices;
  auto add = [&](const kernels::WeightMatrix& w) {
    if (!w.empty()) matrices[w.name] = w;
  };
  for (const auto& L : weights->vision)
    for (const Linear* l : {&L.q, &L.k, &L.v, &L.out, &L.fc1, &L.fc2}) add(l->weight);
  add(weights->projector.weight);
  add(weights->embed);
  add(weights->lm_head);
  for (const auto& L : weights->text)
    for (const Linear* l : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) add(l->weight);
  Parameters p;
  for (const std::string& name : checkpoint.names()) {
    const std::string scale_suffix = kQuantScaleSuffix;
    if (name.size() > scale_suffix.size() &&
        name.compare(name.size() - scale_suffix.size(), scale_suffix.size(), scale_suffix) == 0)
      continue;  // a quantised matrix's scales: part of its view
    auto m = matrices.find(name);
    const bool is_quantised = m != matrices.end() && (m->second.format == kernels::WeightFormat::Int8 ||
                                                      m->second.format == kernels::WeightFormat::Q4);
    if (is_quantised || (m != matrices.end() && in_place && in_place(name))) {
      if (is_quantised && in_place && !in_place(name))
        throw Error("tensor " + name + " is quantised (" + kernels::weight_format_name(m->second.format) +
                    ") and cannot train: train adapters (LoRA) on a quantised base, or use the float checkpoint");
      p.views_[name] = m->second;
      continue;
    }
    const TensorView& t = checkpoint.get(name);
    p.tensors_[name] = to_f32_tensor(t);
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
