#pragma once
// Optimisers of the trainer: SGD and Adam with decoupled weight decay, global-norm clipping,
// and the learning-rate schedules of big_vision (constant, cosine, rsqrt, each with linear
// warmup). Every piece can be switched off, so one step can be checked against PyTorch.
#include <string>

#include "paligemma/finetune.h"
#include "train/parameters.h"

namespace pg::train {

bool decays(DecayMask mask, const std::string& name, const Tensor& tensor);

// sqrt(sum of squares) over every gradient (the tied embedding counted once: it is one tensor).
double global_norm(const Parameters& grads);
// optax.clip_by_global_norm: g *= max_norm / norm when norm >= max_norm. Returns the norm
// before clipping.
double clip_by_global_norm(Parameters& grads, double max_norm);

class Optimizer {
 public:
  // `trainable`: the names updated (others are frozen and get no state).
  Optimizer(const OptimizerConfig& config, const Parameters& params, const std::vector<std::string>& trainable);
  // One update with the gradients (clipped here when config.clip_norm > 0) and the
  // schedule factor s_t. Returns the gradient norm before clipping.
  double step(Parameters& params, Parameters& grads, double schedule_factor);

  int64_t steps() const { return steps_; }
  const OptimizerConfig& config() const { return config_; }
  // Adam moments (empty for SGD), for checkpoints.
  Parameters& first_moment() { return m_; }
  Parameters& second_moment() { return v_; }
  void set_steps(int64_t steps) { steps_ = steps; }

 private:
  OptimizerConfig config_;
  std::vector<std::string> trainable_;
  Parameters m_, v_;
  int64_t steps_ = 0;
};

// big_vision's create_learning_rate_schedule (the factor that multiplies lr): after
// `warmup_steps` of linear warmup from 0, Constant stays at 1; Cosine follows
// 0.5 (1 + cos(pi progress)) with progress = (step - warmup) / (total - warmup) clipped to
// [0, 1]; Rsqrt is 1 / sqrt((step + timescale - warmup) / timescale) past the warmup.
// The warmup multiplies by min(1, step / warmup_steps).
struct Schedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  int64_t total_steps = 1;
  int64_t warmup_steps = 0;
  double timescale = 10000;
  double factor(int64_t step) const;
};

}  // namespace pg::train
