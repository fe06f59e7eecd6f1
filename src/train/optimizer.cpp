#include "train/optimizer.h"

#include <cmath>
#include <regex>

#include "paligemma/error.h"

namespace pg::train {

bool decays(DecayMask mask, const std::string& name, const Tensor& tensor) {
  if (tensor.shape.size() < 2) return false;
  if (mask == DecayMask::Matrices) return true;
  // big_vision's SigLIP / projector "kernel" parameters, in transformers' names (old or new layout).
  static const std::regex kernels(
      R"((vision_tower\..*(self_attn\.(q|k|v|out)_proj|mlp\.fc[12]|patch_embedding)\.weight)|)"
      R"((multi_modal_projector\.linear\.weight))");
  return std::regex_search(name, kernels);
}

double global_norm(const Parameters& grads) {
  double sum = 0.0;
  for (const auto& [name, g] : grads.tensors())
    for (float v : g.data) sum += static_cast<double>(v) * v;
  return std::sqrt(sum);
}

double clip_by_global_norm(Parameters& grads, double max_norm) {
  const double norm = global_norm(grads);
  if (max_norm > 0 && norm >= max_norm) {
    const float scale = static_cast<float>(max_norm / norm);
    for (auto& [name, g] : grads.tensors())
      for (float& v : g.data) v *= scale;
  }
  return norm;
}

Optimizer::Optimizer(const OptimizerConfig& config, const Parameters& params, const std::vector<std::string>& trainable)
    : config_(config), trainable_(trainable) {
  if (config.lr < 0 || config.weight_decay < 0 || config.clip_norm < 0)
    throw Error("optimizer: lr, weight decay and clip norm must be >= 0");
  if (config.kind == OptimizerKind::Adam) {
    for (const std::string& n : trainable_) {
      Tensor z;
      z.shape = params.at(n).shape;
      z.data.assign(params.at(n).data.size(), 0.0f);
      m_.add(n, z);
      v_.add(n, std::move(z));
    }
  }
}

double Optimizer::step(Parameters& params, Parameters& grads, double s) {
  const double norm = config_.clip_norm > 0 ? clip_by_global_norm(grads, config_.clip_norm) : global_norm(grads);
  ++steps_;
  const double lr = config_.lr, wd = config_.weight_decay, lr_t = lr * s;
  const double bc1 = 1.0 - std::pow(config_.b1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(config_.b2, static_cast<double>(steps_));
  for (const std::string& n : trainable_) {
    Tensor& p = params.at(n);
    const Tensor& g = grads.at(n);
    const bool decay = wd > 0 && decays(config_.decay_mask, n, p);
    float* m = config_.kind == OptimizerKind::Adam ? m_.data(n) : nullptr;
    float* v = config_.kind == OptimizerKind::Adam ? v_.data(n) : nullptr;
    for (size_t i = 0; i < p.data.size(); ++i) {
      double update = g.data[i];
      if (m) {  // optax.scale_by_adam
        m[i] = static_cast<float>(config_.b1 * m[i] + (1.0 - config_.b1) * g.data[i]);
        v[i] = static_cast<float>(config_.b2 * v[i] + (1.0 - config_.b2) * static_cast<double>(g.data[i]) * g.data[i]);
        update = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + config_.eps);
      }
      const double w = p.data[i];
      double next;
      if (!decay)
        next = w - lr_t * update;
      else if (config_.decay_style == DecayStyle::BigVision)
        next = w - s * (lr * update + wd * w);
      else
        next = w * (1.0 - lr_t * wd) - lr_t * update;
      p.data[i] = static_cast<float>(next);
    }
  }
  return norm;
}

double Schedule::factor(int64_t step) const {
  if (total_steps <= 0) throw Error("schedule: total steps must be > 0");
  double f = 1.0;
  const double progress = std::clamp(
      static_cast<double>(step - warmup_steps) / std::max<double>(1.0, total_steps - warmup_steps), 0.0, 1.0);
  switch (kind) {
    case ScheduleKind::Constant:
      break;
    case ScheduleKind::Cosine:
      f = 0.5 * (1.0 + std::cos(M_PI * progress));
      break;
    case ScheduleKind::Rsqrt:
      if (step > warmup_steps) f = 1.0 / std::sqrt((step + timescale - warmup_steps) / timescale);
      break;
  }
  if (warmup_steps > 0) f *= std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup_steps));
  return f;
}

}  // namespace pg::train
