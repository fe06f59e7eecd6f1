// The trainer's attention (src/train/layers.h, float) at the world model's shapes, one
// sequence per call:
//   decoder: 3 q heads / 1 kv head, head_dim 64, prefix-LM mask, soft-cap 50,
//            T = 96 + 64 (64 image tokens + the text) and T = 320 + 256
//   vision encoder: 3 heads, head_dim 64, bidirectional, no cap, T = 64 and T = 256 patches
// pass 0 times the forward alone, pass 1 the forward and the backward (dq, dk, dv); threads
// sets OpenMP and OpenBLAS alike (pg::set_threads).
//   build/bench/kernels/paligemma_kernel_bench --benchmark_filter=TrainAttention --benchmark_repetitions=9
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "paligemma/backend.h"
#include "train/layers.h"

namespace {

struct Shape {
  const char* name;
  int T, heads, kv_heads, head_dim;
  bool causal;
  int prefix;
  float softcap;
};

const Shape kShapes[] = {
    {"decoder160", 160, 3, 1, 64, true, 96, 50.0f},
    {"decoder576", 576, 3, 1, 64, true, 320, 50.0f},
    {"vision64", 64, 3, 3, 64, false, 0, 0.0f},
    {"vision256", 256, 3, 3, 64, false, 0, 0.0f},
};
constexpr int kNumShapes = sizeof(kShapes) / sizeof(kShapes[0]);

// args: shape index, pass (0 forward, 1 forward + backward), threads
void BM_TrainAttention(benchmark::State& state) {
  const Shape& s = kShapes[state.range(0)];
  const bool backward = state.range(1) != 0;
  const int saved_threads = pg::threads();
  pg::set_threads(static_cast<int>(state.range(2)));
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  const size_t qn = static_cast<size_t>(s.T) * s.heads * s.head_dim;
  const size_t kn = static_cast<size_t>(s.T) * s.kv_heads * s.head_dim;
  std::vector<float> q(qn), k(kn), v(kn), dout(qn), o(qn), dq(qn), dk(kn), dv(kn);
  for (auto* x : {&q, &k, &v, &dout})
    for (float& e : *x) e = nd(rng);
  pg::kernels::AttentionShape shape;
  shape.num_heads = s.heads;
  shape.num_kv_heads = s.kv_heads;
  shape.head_dim = s.head_dim;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  shape.softcap = s.softcap;
  pg::kernels::AttentionMask mask;
  mask.causal = s.causal;
  mask.prefix_len = s.prefix;
  pg::train::AttentionSaved<float> saved;
  for (auto _ : state) {
    pg::train::attention_forward(q.data(), k.data(), v.data(), s.T, shape, mask, o.data(), &saved);
    if (backward)
      pg::train::attention_backward(dout.data(), q.data(), k.data(), v.data(), s.T, shape, mask, saved, dq.data(),
                                    dk.data(), dv.data());
    benchmark::DoNotOptimize(o.data());
    benchmark::DoNotOptimize(dq.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(std::string(s.name) + (backward ? " fwd+bwd" : " fwd") + " threads " + std::to_string(state.range(2)));
  pg::set_threads(saved_threads);
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "backward", "threads"});
  for (int shape = 0; shape < kNumShapes; ++shape)
    for (int backward : {0, 1})
      for (int threads : {1, 2}) b->Args({shape, backward, threads});
}

// With --benchmark_repetitions: the minimum too, the statistic a shared machine disturbs least.
BENCHMARK(BM_TrainAttention)
    ->Apply(Args)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });

}  // namespace
