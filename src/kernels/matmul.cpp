// The matmul dispatcher: picks the kernel for the active path, the precision and the number
// of rows, prepares the activations once, and splits the weight rows across the threads.
#include "kernels/matmul.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/aligned_buffer.h"
#include "kernels/gemm_kernels.h"
#include "kernels/quantize.h"
#include "paligemma/backend.h"
#include "paligemma/error.h"
#include "paligemma/profile.h"

namespace pg::kernels {
namespace {

void add_bias(const float* bias, int M, int64_t N, float* y) {
  if (!bias) return;
  for (int m = 0; m < M; ++m) {
    float* row = y + static_cast<int64_t>(m) * N;
    for (int64_t n = 0; n < N; ++n) row[n] += bias[n];
  }
}

// Splits [0, N) into per-thread ranges aligned to `align` rows, and runs fn(n0, n1) on each.
template <typename Fn>
void parallel_rows(int64_t N, int64_t align, Fn&& fn) {
  const int threads = std::max(1, pg::threads());
  const int64_t units = (N + align - 1) / align;
  // A few chunks per thread so uneven finishing evens out, but contiguous enough for the
  // hardware prefetcher.
  const int64_t chunks = std::min<int64_t>(units, static_cast<int64_t>(threads) * 4);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t u0 = units * c / chunks, u1 = units * (c + 1) / chunks;
    const int64_t n0 = u0 * align, n1 = std::min(N, u1 * align);
    if (n0 < n1) fn(n0, n1);
  }
}

void small_rows(const float* x, int M, const WeightMatrix& w, float* y, KernelPath path) {
  const int64_t N = w.rows, K = w.cols;
  const bool quantized = w.format == WeightFormat::Int8 || w.format == WeightFormat::Q4;
  if (quantized && precision() == Precision::BF16 && cpu_features().avx512_vnni &&
      (path == KernelPath::Avx512 || path == KernelPath::Amx)) {
    detail::QuantizedActivations qx;
    detail::quantize_activations_vnni(x, M, K, w.format == WeightFormat::Q4, qx);
    parallel_rows(N, 16, [&](int64_t n0, int64_t n1) { detail::gemv_vnni(qx, w, n0, n1, y, N); });
    return;
  }
  const float* xs = x;
  int64_t ldx = K;
  std::vector<float> padded;
  if (w.format == WeightFormat::Q4 && K % kQ4Block != 0) {
    ldx = q4_blocks(K) * kQ4Block;
    padded.assign(static_cast<size_t>(M) * ldx, 0.0f);
    for (int m = 0; m < M; ++m) std::memcpy(padded.data() + m * ldx, x + m * K, K * sizeof(float));
    xs = padded.data();
  }
  const bool avx512 = path == KernelPath::Avx512 || path == KernelPath::Amx;
  parallel_rows(N, 16, [&](int64_t n0, int64_t n1) {
    if (avx512)
      detail::gemv_avx512(xs, ldx, M, w, n0, n1, y, N);
    else
      detail::gemv_avx2(xs, ldx, M, w, n0, n1, y, N);
  });
}

// Activation rows per pass of the bf16 kernels. Every 32-row weight block sweeps all the
// packed activation rows of a pass, so they must stay in L2 (2 MiB per core here): 320 rows x
// 2304 columns of bf16 is 1.4 MiB. Longer inputs (448 / 896 px prompts, 1028 / 4100 rows) go
// in equal passes of at most this many rows, each re-reading the weights: measured on one
// Gemma 2 2B layer at 1028 rows, 1.16 -> 1.65 TFLOP/s (and 4100 rows: 1.14 -> 1.69).
constexpr int kMaxRowsPerPass = 384;
constexpr int kTargetRowsPerPass = 320;

void bf16_rows_pass(const float* x, int M, const WeightMatrix& w, float* y, KernelPath path);

void bf16_rows(const float* x, int M, const WeightMatrix& w, float* y, KernelPath path) {
  if (M <= kMaxRowsPerPass) return bf16_rows_pass(x, M, w, y, path);
  const int passes = (M + kTargetRowsPerPass - 1) / kTargetRowsPerPass;
  const int rows = (M + passes - 1) / passes;
  const int chunk = (rows + 15) / 16 * 16;  // whole 16-row tiles
  for (int m0 = 0; m0 < M; m0 += chunk)
    bf16_rows_pass(x + static_cast<int64_t>(m0) * w.cols, std::min(chunk, M - m0), w,
                   y + static_cast<int64_t>(m0) * w.rows, path);
}

void bf16_rows_pass(const float* x, int M, const WeightMatrix& w, float* y, KernelPath path) {
  const int64_t N = w.rows, K = w.cols;
  detail::PackedActivations packed;
  packed.M = M;
  packed.K = K;
  packed.Kp = detail::round_up32(K);
  AlignedBuffer<uint16_t> storage;  // tile loads want whole cache lines
  if (path == KernelPath::Amx) {
    storage.resize(detail::pack_amx_size(M, K));
    detail::pack_amx(x, M, K, storage.data());
  } else {
    storage.resize(detail::pack_rows_bf16_size(M, K));
    detail::pack_rows_bf16(x, M, K, storage.data());
  }
  packed.data = storage.data();
  parallel_rows(N, 32, [&](int64_t n0, int64_t n1) {
    if (path == KernelPath::Amx)
      detail::gemm_amx_bf16(packed, w, n0, n1, y, N);
    else
      detail::gemm_avx512_bf16(packed, w, n0, n1, y, N);
  });
}

}  // namespace

void matmul(const float* x, int M, const WeightMatrix& w, const float* bias, float* y, const char* region) {
  if (w.empty()) throw Error("matmul: weight " + w.name + " has no data");
  if (M <= 0 || w.rows <= 0) return;
  const KernelPath path = kernel_path();
  enum class Route { Reference, Small, Bf16, F32 } route;
  if (path == KernelPath::Reference)
    route = Route::Reference;
  else if (M <= kSmallRows)
    route = Route::Small;
  else if (precision() == Precision::BF16 && bf16_supported(path))
    route = Route::Bf16;
  else
    route = Route::F32;
  static const char* const kNames[] = {"matmul.reference", "matmul.few_rows", "matmul.bf16", "matmul.f32"};
  profile::Scope scope(region ? region : kNames[static_cast<int>(route)], 2.0 * M * w.rows * w.cols,
                       static_cast<double>(w.total_bytes()));
  switch (route) {
    case Route::Reference:
      parallel_rows(w.rows, 16, [&](int64_t n0, int64_t n1) { detail::gemm_reference(x, M, w, n0, n1, y, w.rows); });
      break;
    case Route::Small:
      small_rows(x, M, w, y, path);
      break;
    case Route::Bf16:
      bf16_rows(x, M, w, y, path);
      break;
    case Route::F32:
      detail::gemm_f32_blas(x, M, w, y);
      break;
  }
  add_bias(bias, M, w.rows, y);
}

namespace {

// Weight rows per block of the bf16 transposed product: the block's transpose (K x rows bf16)
// stays within ~16 MiB, whatever the matrix (the 257k-row embedding is 1.2 GB in bf16).
int64_t transposed_block_rows(int64_t N, int64_t K) {
  const int64_t rows = std::max<int64_t>(32, (int64_t{16} << 20) / (2 * std::max<int64_t>(K, 1)) / 32 * 32);
  return std::min(N, rows);
}

// dx += dy W through the bf16 products: for each block of weight rows [n0, n0 + nb), its
// transpose T [K, nb] in bf16 (rows 64-byte aligned when nb is a multiple of 32) is a weight
// matrix whose product with dy[:, n0 .. n0 + nb] is exactly that block's share of dy W.
void bf16_transposed_add(const float* dy, int M, const WeightMatrix& w, float* dx, KernelPath path) {
  const int64_t N = w.rows, K = w.cols, block = transposed_block_rows(N, K);
  AlignedBuffer<uint16_t> transposed;
  std::vector<float> dy_block, product(static_cast<size_t>(M) * K);
  for (int64_t n0 = 0; n0 < N; n0 += block) {
    const int64_t nb = std::min(block, N - n0);
    transposed.resize(static_cast<size_t>(K) * nb);
    uint16_t* t = transposed.data();
    // Each thread takes 32 weight rows at a time as bf16 rows and writes them as 32 columns
    // of T. weight_rows_bf16 widens every format as the forward's products do, except int8,
    // whose integers it passes on for the row scale to be applied after the sum; here the
    // rows are the sum's terms, so int8 rows are dequantised first and then rounded.
    const int64_t chunks = (nb + 31) / 32, Kp = detail::round_up32(K);
    const bool int8 = w.format == WeightFormat::Int8;
#pragma omp parallel num_threads(std::max(1, pg::threads())) if (chunks > 1)
    {
      AlignedBuffer<uint16_t> rows(static_cast<size_t>(32) * Kp);
      std::vector<float> wide(int8 ? static_cast<size_t>(32) * K : 0);
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t r0 = c * 32, count = std::min<int64_t>(32, nb - r0);
        if (int8) {
          dequantize_rows_f32(w, n0 + r0, count, wide.data());
          detail::pack_rows_bf16(wide.data(), static_cast<int>(count), K, rows.data());
        } else {
          detail::weight_rows_bf16(w, n0 + r0, count, 32, 0, Kp, rows.data());
        }
        int64_t k_done = 0;
        if (count == 32)  // whole 32 x 32 blocks in registers
          for (; k_done + 32 <= K; k_done += 32)
            detail::transpose_bf16_32x32(rows.data() + k_done, Kp, t + k_done * nb + r0, nb);
        for (int64_t r = 0; r < count; ++r)  // the edges
          for (int64_t k = k_done; k < K; ++k) t[k * nb + r0 + r] = rows[r * Kp + k];
      }
    }
    WeightMatrix tw;
    tw.name = w.name + " (transposed)";
    tw.format = WeightFormat::BF16;
    tw.rows = K;
    tw.cols = nb;
    tw.data = t;
    const float* x = dy + n0;
    if (nb != N) {  // the block's columns of dy, contiguous
      dy_block.resize(static_cast<size_t>(M) * nb);
      for (int m = 0; m < M; ++m)
        std::memcpy(dy_block.data() + static_cast<int64_t>(m) * nb, dy + static_cast<int64_t>(m) * N + n0,
                    static_cast<size_t>(nb) * sizeof(float));
      x = dy_block.data();
    }
    bf16_rows(x, M, tw, product.data(), path);
    for (size_t i = 0; i < product.size(); ++i) dx[i] += product[i];
  }
}

}  // namespace

void matmul_transposed_add(const float* dy, int M, const WeightMatrix& w, float* dx) {
  if (w.empty()) throw Error("matmul: weight " + w.name + " has no data");
  if (M <= 0 || w.rows <= 0) return;
  const KernelPath path = kernel_path();
  // Mixed precision as in the forward: with Precision::BF16 and many rows the products run
  // on the bf16 hardware (dy and W rounded to bf16, f32 sums); otherwise exact f32 (sgemm).
  // The transpose costs one pass over W, the product M multiply-adds per weight: below
  // kMinTransposedRows rows (e.g. the output layer's few target rows against the 257k-row
  // embedding) the widened panels into sgemm are faster.
  constexpr int kMinTransposedRows = 64;
  const bool bf16 = path != KernelPath::Reference && M >= kMinTransposedRows && precision() == Precision::BF16 &&
                    bf16_supported(path);
  profile::Scope scope(bf16 ? "matmul.transposed.bf16" : "matmul.transposed", 2.0 * M * w.rows * w.cols,
                       static_cast<double>(w.total_bytes()));
  if (bf16)
    bf16_transposed_add(dy, M, w, dx, path);
  else
    detail::gemm_f32_blas_transposed_add(dy, M, w, dx);
}

}  // namespace pg::kernels
