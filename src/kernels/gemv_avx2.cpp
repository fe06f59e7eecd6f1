// Few-row products on AVX2 + FMA (decoding on CPUs without AVX-512): the same structure as
// gemv_avx512.cpp with 8-lane vectors and a scalar tail.
#include <immintrin.h>

#include "kernels/gemm_kernels.h"
#include "kernels/quantize.h"

#define PG_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace pg::kernels::detail {
namespace {

template <WeightFormat F>
PG_AVX2 inline __m256 load8(const void* row, int64_t k) {
  if constexpr (F == WeightFormat::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + k);
  } else if constexpr (F == WeightFormat::BF16) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else if constexpr (F == WeightFormat::F16) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k));
    return _mm256_cvtph_ps(h);
  } else {
    __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const int8_t*>(row) + k));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
  }
}

template <WeightFormat F>
inline float load1(const void* row, int64_t k) {
  if constexpr (F == WeightFormat::F32) return static_cast<const float*>(row)[k];
  else if constexpr (F == WeightFormat::BF16) return bf16_to_f32(static_cast<const uint16_t*>(row)[k]);
  else if constexpr (F == WeightFormat::F16) return f16_to_f32(static_cast<const uint16_t*>(row)[k]);
  else return static_cast<float>(static_cast<const int8_t*>(row)[k]);
}

PG_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <WeightFormat F, int NR, int MB>
PG_AVX2 void block_dense(const float* x, int64_t K, const WeightMatrix& w, int64_t n, float* y, int64_t ldy) {
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const int64_t rb = w.row_bytes();
  const void* rows[NR];
  for (int r = 0; r < NR; ++r) rows[r] = base + (n + r) * rb;
  __m256 acc[NR][MB];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 wv[NR];
    for (int r = 0; r < NR; ++r) wv[r] = load8<F>(rows[r], k);
    for (int m = 0; m < MB; ++m) {
      const __m256 xv = _mm256_loadu_ps(x + m * K + k);
      for (int r = 0; r < NR; ++r) acc[r][m] = _mm256_fmadd_ps(wv[r], xv, acc[r][m]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    const float scale = F == WeightFormat::Int8 ? static_cast<const float*>(w.scales)[n + r] : 1.0f;
    for (int m = 0; m < MB; ++m) {
      float s = hsum(acc[r][m]);
      for (int64_t kk = k; kk < K; ++kk) s += load1<F>(rows[r], kk) * x[m * K + kk];
      y[m * ldy + n + r] = s * scale;
    }
  }
}

template <int NR, int MB>
PG_AVX2 void block_q4(const float* x, int64_t Kx, int64_t K, const WeightMatrix& w, int64_t n, float* y,
                      int64_t ldy) {
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const uint16_t* scales = static_cast<const uint16_t*>(w.scales);
  const int64_t rb = q4_row_bytes(K), blocks = q4_blocks(K);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m256 eight = _mm256_set1_ps(8.0f);
  __m256 acc[NR][MB];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m256 q[NR][4], d[NR];
    for (int r = 0; r < NR; ++r) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + (n + r) * rb + b * kQ4BlockBytes));
      const __m128i ql = _mm_and_si128(v, low4);
      const __m128i qh = _mm_and_si128(_mm_srli_epi16(v, 4), low4);
      q[r][0] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(ql)), eight);
      q[r][1] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(ql, 8))), eight);
      q[r][2] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(qh)), eight);
      q[r][3] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(qh, 8))), eight);
      d[r] = _mm256_set1_ps(_cvtsh_ss(scales[(n + r) * blocks + b]));
    }
    for (int m = 0; m < MB; ++m) {
      const float* xb = x + m * Kx + b * kQ4Block;
      const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8), x2 = _mm256_loadu_ps(xb + 16),
                   x3 = _mm256_loadu_ps(xb + 24);
      for (int r = 0; r < NR; ++r) {
        __m256 s = _mm256_mul_ps(q[r][0], x0);
        s = _mm256_fmadd_ps(q[r][1], x1, s);
        s = _mm256_fmadd_ps(q[r][2], x2, s);
        s = _mm256_fmadd_ps(q[r][3], x3, s);
        acc[r][m] = _mm256_fmadd_ps(s, d[r], acc[r][m]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) y[m * ldy + n + r] = hsum(acc[r][m]);
}

template <int MB>
PG_AVX2 void rows_any(const float* x, int64_t Kx, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                      int64_t ldy) {
  const int64_t K = w.cols;
  int64_t n = n0;
  switch (w.format) {
#define PG_DENSE(FMT)                                                                  \
  for (; n + 4 <= n1; n += 4) block_dense<WeightFormat::FMT, 4, MB>(x, K, w, n, y, ldy); \
  for (; n < n1; ++n) block_dense<WeightFormat::FMT, 1, MB>(x, K, w, n, y, ldy);         \
  return;
    case WeightFormat::F32: PG_DENSE(F32)
    case WeightFormat::BF16: PG_DENSE(BF16)
    case WeightFormat::F16: PG_DENSE(F16)
    case WeightFormat::Int8: PG_DENSE(Int8)
#undef PG_DENSE
    case WeightFormat::Q4:
      for (; n + 4 <= n1; n += 4) block_q4<4, MB>(x, Kx, K, w, n, y, ldy);
      for (; n < n1; ++n) block_q4<1, MB>(x, Kx, K, w, n, y, ldy);
      return;
  }
}

}  // namespace

PG_AVX2 void gemv_avx2(const float* x, int64_t Kx, int M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                       int64_t ldy) {
  // Two rows of x at a time: 4 x 2 accumulators + 4 weight vectors fit the 16 ymm registers.
  int m = 0;
  for (; m + 2 <= M; m += 2) rows_any<2>(x + m * Kx, Kx, w, n0, n1, y + m * ldy, ldy);
  if (m < M) rows_any<1>(x + m * Kx, Kx, w, n0, n1, y + m * ldy, ldy);
}

}  // namespace pg::kernels::detail
