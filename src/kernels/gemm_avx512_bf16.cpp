// Many-row products with AVX-512 BF16 dot products (CPUs with AVX-512 BF16 but no AMX):
// y[m, n] = sum over k-pairs of vdpbf16ps(W[n, k..k+31], x[m, k..k+31]), 4 weight rows x
// 4 rows of x = 16 accumulators, each reduced across its lanes at the end of the row. Weight
// rows are read in place when they are bf16 with K a multiple of 32, else widened 4 rows at a
// time into a small buffer.
#include <immintrin.h>

#include <vector>

#include "kernels/gemm_kernels.h"

#define PG_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

namespace pg::kernels::detail {
namespace {

template <int NR, int MB>
PG_BF16 void block(const uint16_t* const* wrows, const uint16_t* x, int64_t Kp, int m0, float* y, int64_t ldy,
                   int64_t n, const float* scales) {
  __m512 acc[NR][MB];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm512_setzero_ps();
  for (int64_t k = 0; k < Kp; k += 32) {
    __m512i wv[NR];
    for (int r = 0; r < NR; ++r) wv[r] = _mm512_loadu_si512(wrows[r] + k);
    for (int m = 0; m < MB; ++m) {
      const __m512i xv = _mm512_loadu_si512(x + (m0 + m) * Kp + k);
      for (int r = 0; r < NR; ++r)
        acc[r][m] = _mm512_dpbf16_ps(acc[r][m], reinterpret_cast<const __m512bh&>(wv[r]),
                                     reinterpret_cast<const __m512bh&>(xv));
    }
  }
  for (int r = 0; r < NR; ++r) {
    const float s = scales ? scales[n + r] : 1.0f;
    for (int m = 0; m < MB; ++m) y[(m0 + m) * ldy + n + r] = _mm512_reduce_add_ps(acc[r][m]) * s;
  }
}

template <int NR>
PG_BF16 void all_rows(const uint16_t* const* wrows, const PackedActivations& x, float* y, int64_t ldy, int64_t n,
                      const float* scales) {
  int m = 0;
  for (; m + 4 <= x.M; m += 4) block<NR, 4>(wrows, x.data, x.Kp, m, y, ldy, n, scales);
  switch (x.M - m) {
    case 3: block<NR, 3>(wrows, x.data, x.Kp, m, y, ldy, n, scales); break;
    case 2: block<NR, 2>(wrows, x.data, x.Kp, m, y, ldy, n, scales); break;
    case 1: block<NR, 1>(wrows, x.data, x.Kp, m, y, ldy, n, scales); break;
    default: break;
  }
}

}  // namespace

void gemm_avx512_bf16(const PackedActivations& x, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                      int64_t ldy) {
  const bool in_place = w.format == WeightFormat::BF16 && w.cols == x.Kp;
  const float* scales = w.format == WeightFormat::Int8 ? static_cast<const float*>(w.scales) : nullptr;
  std::vector<uint16_t> buf(in_place ? 0 : 4 * x.Kp);
  const uint16_t* base = static_cast<const uint16_t*>(w.data);
  for (int64_t n = n0; n < n1; n += 4) {
    const int rows = static_cast<int>(n1 - n < 4 ? n1 - n : 4);
    const uint16_t* wrows[4];
    if (in_place) {
      for (int r = 0; r < rows; ++r) wrows[r] = base + (n + r) * x.Kp;
    } else {
      weight_rows_bf16(w, n, rows, rows, 0, x.Kp, buf.data());
      for (int r = 0; r < rows; ++r) wrows[r] = buf.data() + r * x.Kp;
    }
    if (rows == 4)
      all_rows<4>(wrows, x, y, ldy, n, scales);
    else
      for (int r = 0; r < rows; ++r) all_rows<1>(wrows + r, x, y, ldy, n + r, scales);
  }
}

}  // namespace pg::kernels::detail
