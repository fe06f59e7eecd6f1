// Reference path: f32 weights go straight to OpenBLAS sgemm; bf16/f16 weights are widened to
// f32 one panel of rows at a time (so there is never a second full copy of a weight) and then
// multiplied by sgemm. For a handful of rows (decoding) a fused widen-and-dot loop avoids the
// panel copy. Issue 4 replaces this with AMX / AVX-512 / int8 kernels behind the same call.
#include "kernels/matmul.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "paligemma/error.h"

namespace pg::kernels {
namespace {

constexpr int64_t kPanelRows = 512;

void add_bias(const TensorView* bias, int M, int64_t N, float* y) {
  if (!bias || bias->empty()) return;
  std::vector<float> b(N);
  convert_to_f32(bias->dtype, bias->data, 0, N, b.data());
  for (int m = 0; m < M; ++m) {
    float* row = y + static_cast<int64_t>(m) * N;
    for (int64_t n = 0; n < N; ++n) row[n] += b[n];
  }
}

// Few rows of x: each thread widens a block of weight rows into a small buffer and dots them.
void small_m(const float* x, int M, const TensorView& w, int64_t row_begin, int64_t row_end, int64_t K,
             float* y) {
  const int64_t N = row_end - row_begin;
  constexpr int64_t kBlock = 16;
  const int64_t blocks = (N + kBlock - 1) / kBlock;
#pragma omp parallel
  {
    std::vector<float> buf(kBlock * K);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      int64_t n0 = blk * kBlock;
      int64_t n1 = std::min(N, n0 + kBlock);
      const float* wrows;
      if (w.dtype == DType::F32) {
        wrows = static_cast<const float*>(w.data) + (row_begin + n0) * K;
      } else {
        convert_to_f32(w.dtype, w.data, (row_begin + n0) * K, (n1 - n0) * K, buf.data());
        wrows = buf.data();
      }
      for (int m = 0; m < M; ++m) {
        const float* xr = x + static_cast<int64_t>(m) * K;
        for (int64_t n = n0; n < n1; ++n) {
          const float* wr = wrows + (n - n0) * K;
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (int64_t k = 0; k < K; ++k) acc += xr[k] * wr[k];
          y[static_cast<int64_t>(m) * N + n] = acc;
        }
      }
    }
  }
}

void large_m(const float* x, int M, const TensorView& w, int64_t row_begin, int64_t row_end, int64_t K,
             float* y) {
  const int64_t N = row_end - row_begin;
  if (w.dtype == DType::F32) {
    const float* wp = static_cast<const float*>(w.data) + row_begin * K;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, static_cast<int>(N), static_cast<int>(K), 1.0f, x,
                static_cast<int>(K), wp, static_cast<int>(K), 0.0f, y, static_cast<int>(N));
    return;
  }
  std::vector<float> panel(std::min(N, kPanelRows) * K);
  for (int64_t n0 = 0; n0 < N; n0 += kPanelRows) {
    int64_t rows = std::min(kPanelRows, N - n0);
    const int64_t base = (row_begin + n0) * K;
    // Widen in parallel chunks; sgemm below is threaded by OpenBLAS itself.
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) convert_to_f32(w.dtype, w.data, base + r * K, K, panel.data() + r * K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, static_cast<int>(rows), static_cast<int>(K), 1.0f, x,
                static_cast<int>(K), panel.data(), static_cast<int>(K), 0.0f, y + n0, static_cast<int>(N));
  }
}

void check_weight(const TensorView& w) {
  if (w.shape.size() != 2) throw Error("matmul: weight " + w.name + " must be 2-D, has shape " + shape_string(w.shape));
}

void matmul_rows(const float* x, int M, const TensorView& weight, int64_t row_begin, int64_t row_end, float* y) {
  check_weight(weight);
  const int64_t K = weight.shape[1];
  if (M <= 0 || row_end <= row_begin) return;
  if (M <= 4)
    small_m(x, M, weight, row_begin, row_end, K, y);
  else
    large_m(x, M, weight, row_begin, row_end, K, y);
}

}  // namespace

void matmul(const float* x, int M, const TensorView& weight, const TensorView* bias, float* y) {
  check_weight(weight);
  matmul_rows(x, M, weight, 0, weight.shape[0], y);
  add_bias(bias, M, weight.shape[0], y);
}

}  // namespace pg::kernels
