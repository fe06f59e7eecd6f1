// oneDNN (Debian's libdnnl 2.6) bf16 matmul at the shapes of bench/kernels/matmul_bench.cpp,
// so that "use oneDNN where it beats our kernels" is decided by a measurement. Weights are
// [N, K] row-major bf16 (the safetensors layout, given to oneDNN as a K x N matrix with
// strides {1, K}), activations [M, K] bf16, output f32; one primitive per shape, created
// outside the timed loop. Threads: oneDNN's OpenMP runtime (OMP_NUM_THREADS).
//   build/bench/onednn/onednn_matmul_bench
#include <benchmark/benchmark.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

namespace {

void BM_OneDnnMatmulBf16(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  using dt = dnnl::memory::data_type;
  dnnl::memory::desc src_md({M, K}, dt::bf16, {K, 1});
  dnnl::memory::desc wei_md({K, N}, dt::bf16, {1, K});  // W[N][K] seen as K x N
  dnnl::memory::desc dst_md({M, N}, dt::f32, {N, 1});
  dnnl::matmul::desc desc(src_md, wei_md, dst_md);  // oneDNN 2.x API
  dnnl::matmul::primitive_desc pd(desc, eng);
  dnnl::matmul prim(pd);
  std::vector<uint16_t> src(M * K, 0x3f00), wei(N * K, 0x3c00);
  std::vector<float> dst(M * N);
  dnnl::memory src_m(src_md, eng, src.data()), wei_m(wei_md, eng, wei.data()), dst_m(dst_md, eng, dst.data());
  for (auto _ : state) {
    prim.execute(strm, {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, wei_m}, {DNNL_ARG_DST, dst_m}});
    strm.wait();
    benchmark::DoNotOptimize(dst.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel(pd.impl_info_str());
}

BENCHMARK(BM_OneDnnMatmulBf16)->Args({260, 9216, 2304})->Args({260, 2304, 9216})->Args({1, 9216, 2304})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
