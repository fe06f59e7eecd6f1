// Many rows in f32: OpenBLAS sgemm. f32 weights are used in place; other formats are widened
// one panel of rows at a time (so there is never a second full copy of a weight).
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "kernels/gemm_kernels.h"
#include "kernels/quantize.h"

namespace pg::kernels::detail {
namespace {

// fn(n0, rows, panel): the weight rows n0 .. n0 + rows as f32 [rows, K], widened one panel
// at a time (in parallel; the sgemm calls in fn thread themselves).
template <typename Fn>
void for_each_f32_panel(const WeightMatrix& w, Fn&& fn) {
  const int64_t N = w.rows, K = w.cols;
  constexpr int64_t kPanelRows = 512;
  std::vector<float> panel(std::min(N, kPanelRows) * K);
  for (int64_t n0 = 0; n0 < N; n0 += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, N - n0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) dequantize_rows_f32(w, n0 + r, 1, panel.data() + r * K);
    fn(n0, rows, panel.data());
  }
}

}  // namespace

void gemm_f32_blas(const float* x, int M, const WeightMatrix& w, float* y) {
  const int64_t N = w.rows, K = w.cols;
  if (w.format == WeightFormat::F32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, static_cast<int>(N), static_cast<int>(K), 1.0f, x,
                static_cast<int>(K), static_cast<const float*>(w.data), static_cast<int>(K), 0.0f, y,
                static_cast<int>(N));
    return;
  }
  for_each_f32_panel(w, [&](int64_t n0, int64_t rows, const float* panel) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, static_cast<int>(rows), static_cast<int>(K), 1.0f, x,
                static_cast<int>(K), panel, static_cast<int>(K), 0.0f, y + n0, static_cast<int>(N));
  });
}

void gemm_f32_blas_transposed_add(const float* dy, int M, const WeightMatrix& w, float* dx) {
  const int64_t N = w.rows, K = w.cols;
  if (w.format == WeightFormat::F32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, static_cast<int>(K), static_cast<int>(N), 1.0f, dy,
                static_cast<int>(N), static_cast<const float*>(w.data), static_cast<int>(K), 1.0f, dx,
                static_cast<int>(K));
    return;
  }
  // dx[M, K] += dy[:, n0 .. n0 + rows] panel[rows, K]
  for_each_f32_panel(w, [&](int64_t n0, int64_t rows, const float* panel) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, static_cast<int>(K), static_cast<int>(rows), 1.0f,
                dy + n0, static_cast<int>(N), panel, static_cast<int>(K), 1.0f, dx, static_cast<int>(K));
  });
}

}  // namespace pg::kernels::detail
