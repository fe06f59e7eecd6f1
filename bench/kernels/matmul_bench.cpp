// Matmul throughput per kernel path, precision and weight format, at PaliGemma 2 3B shapes:
// prefill (M = 260 rows, the 224 px prompt) and decode (M = 1). Reports GFLOP/s and, for
// decode, the weight bytes read per second (the roofline there is memory bandwidth).
//   build/bench/kernels/paligemma_kernel_bench --benchmark_filter=Matmul
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/quantize.h"
#include "paligemma/backend.h"

namespace {

using pg::kernels::WeightFormat;

struct Owned {
  pg::kernels::WeightMatrix w;
  std::vector<uint8_t> data, scales;
};

Owned make(WeightFormat f, int64_t N, int64_t K) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.f, 1.f);
  Owned o;
  o.w.format = f;
  o.w.rows = N;
  o.w.cols = K;
  o.data.resize(N * o.w.row_bytes());
  std::vector<float> row(K);
  if (f == WeightFormat::Int8) o.scales.resize(N * 4);
  if (f == WeightFormat::Q4) o.scales.resize(N * pg::kernels::q4_blocks(K) * 2);
  for (int64_t n = 0; n < N; ++n) {
    for (float& v : row) v = d(rng) * 0.02f;
    uint8_t* dst = o.data.data() + n * o.w.row_bytes();
    if (f == WeightFormat::BF16)
      for (int64_t k = 0; k < K; ++k) reinterpret_cast<uint16_t*>(dst)[k] = pg::f32_to_bf16(row[k]);
    else if (f == WeightFormat::Int8)
      pg::kernels::quantize_row_int8(row.data(), K, reinterpret_cast<int8_t*>(dst),
                                     reinterpret_cast<float*>(o.scales.data()) + n);
    else if (f == WeightFormat::Q4)
      pg::kernels::quantize_row_q4(row.data(), K, dst,
                                   reinterpret_cast<uint16_t*>(o.scales.data()) + n * pg::kernels::q4_blocks(K));
  }
  o.w.data = o.data.data();
  o.w.scales = o.scales.empty() ? nullptr : o.scales.data();
  return o;
}

// args: path, precision (0 f32, 1 bf16), format, M, N, K
void BM_Matmul(benchmark::State& state) {
  const auto path = static_cast<pg::KernelPath>(state.range(0));
  const auto prec = state.range(1) ? pg::Precision::BF16 : pg::Precision::F32;
  const auto fmt = static_cast<WeightFormat>(state.range(2));
  const int M = static_cast<int>(state.range(3));
  const int64_t N = state.range(4), K = state.range(5);
  if (!pg::kernel_path_supported(path) || (prec == pg::Precision::BF16 && !pg::bf16_supported(path))) {
    state.SkipWithError("path not supported on this CPU");
    return;
  }
  pg::set_kernel_path(path);
  pg::set_precision(prec);
  Owned o = make(fmt, N, K);
  std::vector<float> x(M * K, 0.5f), y(M * N);
  for (auto _ : state) {
    pg::kernels::matmul(x.data(), M, o.w, nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["weight_GB/s"] = benchmark::Counter(static_cast<double>(o.w.total_bytes()),
                                                     benchmark::Counter::kIsIterationInvariantRate,
                                                     benchmark::Counter::kIs1000);
  state.SetLabel(std::string(pg::kernel_path_name(path)) + "/" + pg::precision_name(prec) + "/" +
                 pg::kernels::weight_format_name(fmt));
}

void Args(benchmark::internal::Benchmark* b) {
  using P = pg::KernelPath;
  const int bf16 = static_cast<int>(WeightFormat::BF16), i8 = static_cast<int>(WeightFormat::Int8),
            q4 = static_cast<int>(WeightFormat::Q4);
  // Prefill: gate/up projection of Gemma 2 2B (2304 -> 9216), 260 rows.
  for (int fmt : {bf16, i8, q4}) {
    b->Args({static_cast<int>(P::Amx), 1, fmt, 260, 9216, 2304});
    b->Args({static_cast<int>(P::Avx512), 1, fmt, 260, 9216, 2304});
  }
  b->Args({static_cast<int>(P::Avx2), 0, bf16, 260, 9216, 2304});
  // Decode: one row through the same matrix.
  for (int fmt : {bf16, i8, q4}) {
    b->Args({static_cast<int>(P::Avx512), 0, fmt, 1, 9216, 2304});
    b->Args({static_cast<int>(P::Avx2), 0, fmt, 1, 9216, 2304});
  }
}

BENCHMARK(BM_Matmul)->Apply(Args)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
