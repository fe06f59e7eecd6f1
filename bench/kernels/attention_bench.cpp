// Attention throughput per kernel path and K/V dtype at PaliGemma shapes:
//   vision 224 px: T = 256 image tokens, 16 heads, head_dim 72, bidirectional
//   vision 896 px: T = 4096
//   text prefill (Gemma 2): T = 260, 8 q heads / 4 kv heads, head_dim 256, soft-cap 50,
//                 causal with a 260-token prefix block
//   decode: T = 1 over 300 cached keys (Gemma 2: 8/4 heads; PaliGemma 1's Gemma: 8/1)
//   text prefill at 896 px (Gemma 2): T = 4100 (4096 image tokens + prompt), prefix 4100;
//                 at 448 px for PaliGemma 1 (Gemma, 8 q heads / 1 kv head, no soft-cap): T = 1028
// Paths: 0-3 = reference, avx2, avx512, amx kernel paths in Precision::F32 (amx then runs the
// f32 AVX-512 attention tile), 4 = amx in Precision::BF16 (the AMX attention tile).
// GFLOP/s counts 4 * head_dim flops per visible (query, key, head) triple (q.k and p.v).
//   build/bench/kernels/paligemma_kernel_bench --benchmark_filter=Attention
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "paligemma/backend.h"
#include "paligemma/tensor.h"

namespace {

using pg::kernels::AttentionMask;
using pg::kernels::AttentionShape;

struct Shape {
  const char* name;
  int T, q_begin, kv_len, heads, kv_heads, head_dim;
  bool causal;
  int prefix;
  float softcap;
};

const Shape kShapes[] = {
    {"vision224", 256, 0, 256, 16, 16, 72, false, 0, 0.0f},
    {"vision896", 4096, 0, 4096, 16, 16, 72, false, 0, 0.0f},
    {"prefill260", 260, 0, 260, 8, 4, 256, true, 260, 50.0f},
    {"decode300_gqa2", 1, 299, 300, 8, 4, 256, true, 260, 50.0f},
    {"decode300_mqa", 1, 299, 300, 8, 1, 256, true, 260, 0.0f},
    {"prefill4100", 4100, 0, 4100, 8, 4, 256, true, 4100, 50.0f},
    {"prefill1028_mqa", 1028, 0, 1028, 8, 1, 256, true, 1028, 0.0f},
};
constexpr int kNumShapes = sizeof(kShapes) / sizeof(kShapes[0]);
constexpr int kAmxBf16 = 4;  // path arg: the Amx path in Precision::BF16 (the AMX attention tile)

// args: shape index, kernel path, K/V dtype (0 f32, 1 bf16)
void BM_Attention(benchmark::State& state) {
  const Shape& s = kShapes[state.range(0)];
  const bool amx_bf16 = state.range(1) == kAmxBf16;
  const auto path = amx_bf16 ? pg::KernelPath::Amx : static_cast<pg::KernelPath>(state.range(1));
  const bool bf16 = state.range(2) != 0;
  if (!pg::kernel_path_supported(path) || (amx_bf16 && !pg::bf16_supported(path))) {
    state.SkipWithError("path not supported on this CPU");
    return;
  }
  const pg::KernelPath saved = pg::kernel_path();
  const pg::Precision saved_precision = pg::precision();
  pg::set_kernel_path(path);
  // Paths 0-3 in f32 (the Amx path then runs the f32 AVX-512 tile); 4: bf16, the AMX tile.
  pg::set_precision(amx_bf16 ? pg::Precision::BF16 : pg::Precision::F32);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> q(static_cast<size_t>(s.T) * s.heads * s.head_dim), out(q.size());
  const size_t kv_size = static_cast<size_t>(s.kv_heads) * s.kv_len * s.head_dim;
  std::vector<float> k(kv_size), v(kv_size);
  std::vector<uint16_t> k16(kv_size), v16(kv_size);
  for (float& x : q) x = nd(rng);
  for (size_t i = 0; i < kv_size; ++i) {
    k[i] = nd(rng);
    v[i] = nd(rng);
    k16[i] = pg::f32_to_bf16(k[i]);
    v16[i] = pg::f32_to_bf16(v[i]);
  }
  AttentionShape shape;
  shape.num_heads = s.heads;
  shape.num_kv_heads = s.kv_heads;
  shape.head_dim = s.head_dim;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  shape.softcap = s.softcap;
  AttentionMask mask;
  mask.causal = s.causal;
  mask.prefix_len = s.prefix;
  pg::kernels::KVView kv;
  kv.k = bf16 ? static_cast<const void*>(k16.data()) : k.data();
  kv.v = bf16 ? static_cast<const void*>(v16.data()) : v.data();
  kv.dtype = bf16 ? pg::DType::BF16 : pg::DType::F32;
  kv.stride = s.kv_len;

  double pairs = 0;
  for (int t = 0; t < s.T; ++t) {
    int f, l;
    pg::kernels::attention_key_range(s.q_begin + t, s.kv_len, mask, &f, &l);
    pairs += l > f ? l - f : 0;
  }
  for (auto _ : state) {
    pg::kernels::attention(q.data(), s.T, s.q_begin, kv, s.kv_len, shape, mask, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double flops = 4.0 * s.head_dim * s.heads * pairs;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(s.name) + " " + (amx_bf16 ? "amx-bf16" : pg::kernel_path_name(path)) +
                 (bf16 ? " bf16-kv" : " f32-kv"));
  pg::set_kernel_path(saved);
  pg::set_precision(saved_precision);
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"shape", "path", "bf16"});
  for (int shape = 0; shape < kNumShapes; ++shape)
    for (int path : {0, 1, 2, 3, kAmxBf16})
      for (int bf16 : {0, 1}) {
        if (path == 0 && bf16) continue;  // the reference widens bf16 the slow way; f32 is its number
        if (path <= 1 && shape >= 5) continue;  // the long prefills: the AVX-512 and AMX tiles only
        b->Args({shape, path, bf16});
      }
}

BENCHMARK(BM_Attention)->Apply(Args)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
