// The reference product: each weight row widened to f32 (dequantised), then a plain dot
// product per row of x. No intrinsics; the yardstick every other path is tested against.
#include <vector>

#include "kernels/gemm_kernels.h"
#include "kernels/quantize.h"

namespace pg::kernels::detail {

void gemm_reference(const float* x, int M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  const int64_t K = w.cols;
  std::vector<float> row(K);
  for (int64_t n = n0; n < n1; ++n) {
    dequantize_rows_f32(w, n, 1, row.data());
    for (int m = 0; m < M; ++m) {
      const float* xr = x + m * K;
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += xr[k] * row[k];
      y[m * ldy + n] = acc;
    }
  }
}

}  // namespace pg::kernels::detail
