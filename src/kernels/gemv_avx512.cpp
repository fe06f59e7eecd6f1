// Few-row products on AVX-512 (decoding): every weight row is read once from memory, widened
// to f32 in registers and dotted with each row of x. Four weight rows at a time give
// independent FMA chains; memory bandwidth, not arithmetic, is the limit.
//
// Everything here is compiled for AVX-512 through target attributes and has internal linkage,
// so none of it can be picked by the linker for code that runs on older CPUs.
#include <immintrin.h>

#include "kernels/gemm_kernels.h"
#include "kernels/quantize.h"

#define PG_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))

namespace pg::kernels::detail {
namespace {

// How far ahead of the loads each weight row is prefetched (measured best of 1, 2, 4 KiB).
constexpr int64_t kPrefetchBytes = 4096;

// 16 weights of one row at column k (full vector) as f32.
template <WeightFormat F>
PG_AVX512 inline __m512 load16(const void* row, int64_t k) {
  if constexpr (F == WeightFormat::F32) {
    return _mm512_loadu_ps(static_cast<const float*>(row) + k);
  } else if constexpr (F == WeightFormat::BF16) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else if constexpr (F == WeightFormat::F16) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + k));
    return _mm512_cvtph_ps(h);
  } else {  // Int8
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const int8_t*>(row) + k));
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
  }
}

// The same for the last n < 16 columns (masked: nothing past the row is read).
template <WeightFormat F>
PG_AVX512 inline __m512 load_tail(const void* row, int64_t k, int n) {
  const __mmask16 m = static_cast<__mmask16>((1u << n) - 1);
  if constexpr (F == WeightFormat::F32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(row) + k);
  } else if constexpr (F == WeightFormat::BF16) {
    __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(row) + k);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else if constexpr (F == WeightFormat::F16) {
    __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(row) + k);
    return _mm512_cvtph_ps(h);
  } else {
    __m128i b = _mm_maskz_loadu_epi8(m, static_cast<const int8_t*>(row) + k);
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
  }
}

// NR weight rows (starting at n) x MB rows of x -> out[r][m].
template <WeightFormat F, int NR, int MB>
PG_AVX512 void block_dense(const float* x, int64_t K, const WeightMatrix& w, int64_t n, float* y, int64_t ldy) {
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const int64_t rb = w.row_bytes();
  const void* rows[NR];
  for (int r = 0; r < NR; ++r) rows[r] = base + (n + r) * rb;
  __m512 acc[NR][MB];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm512_setzero_ps();
  constexpr int64_t elem = F == WeightFormat::F32 ? 4 : F == WeightFormat::Int8 ? 1 : 2;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[NR];
    for (int r = 0; r < NR; ++r) {
      // Hardware prefetchers stop at 4 KiB pages; stream ahead explicitly.
      _mm_prefetch(static_cast<const char*>(rows[r]) + k * elem + kPrefetchBytes, _MM_HINT_T0);
      wv[r] = load16<F>(rows[r], k);
    }
    for (int m = 0; m < MB; ++m) {
      const __m512 xv = _mm512_loadu_ps(x + m * K + k);
      for (int r = 0; r < NR; ++r) acc[r][m] = _mm512_fmadd_ps(wv[r], xv, acc[r][m]);
    }
  }
  if (k < K) {
    const int t = static_cast<int>(K - k);
    const __mmask16 mask = static_cast<__mmask16>((1u << t) - 1);
    __m512 wv[NR];
    for (int r = 0; r < NR; ++r) wv[r] = load_tail<F>(rows[r], k, t);
    for (int m = 0; m < MB; ++m) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, x + m * K + k);
      for (int r = 0; r < NR; ++r) acc[r][m] = _mm512_fmadd_ps(wv[r], xv, acc[r][m]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    const float scale = F == WeightFormat::Int8 ? static_cast<const float*>(w.scales)[n + r] : 1.0f;
    for (int m = 0; m < MB; ++m) y[m * ldy + n + r] = _mm512_reduce_add_ps(acc[r][m]) * scale;
  }
}

// Q4 blocks: 16 bytes -> 32 nibbles -> two vectors of (nibble - 8), times the block scale.
// x must be readable (zero-padded) up to q4_blocks(K) * 32 columns.
template <int NR, int MB>
PG_AVX512 void block_q4(const float* x, int64_t Kx, int64_t K, const WeightMatrix& w, int64_t n, float* y,
                        int64_t ldy) {
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const uint16_t* scales = static_cast<const uint16_t*>(w.scales);
  const int64_t rb = q4_row_bytes(K), blocks = q4_blocks(K);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m512 eight = _mm512_set1_ps(8.0f);
  __m512 acc[NR][MB];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m512 lo[NR], hi[NR], d[NR];
    for (int r = 0; r < NR; ++r) {
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + (n + r) * rb + b * kQ4BlockBytes));
      const __m128i ql = _mm_and_si128(q, low4);
      const __m128i qh = _mm_and_si128(_mm_srli_epi16(q, 4), low4);
      lo[r] = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(ql)), eight);
      hi[r] = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(qh)), eight);
      d[r] = _mm512_set1_ps(_cvtsh_ss(scales[(n + r) * blocks + b]));
    }
    for (int m = 0; m < MB; ++m) {
      const float* xb = x + m * Kx + b * kQ4Block;
      const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
      for (int r = 0; r < NR; ++r) {
        const __m512 s = _mm512_fmadd_ps(hi[r], x1, _mm512_mul_ps(lo[r], x0));
        acc[r][m] = _mm512_fmadd_ps(s, d[r], acc[r][m]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) y[m * ldy + n + r] = _mm512_reduce_add_ps(acc[r][m]);
}

template <WeightFormat F, int MB>
PG_AVX512 void rows_dense(const float* x, int64_t K, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                          int64_t ldy) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) block_dense<F, 4, MB>(x, K, w, n, y, ldy);
  for (; n < n1; ++n) block_dense<F, 1, MB>(x, K, w, n, y, ldy);
}

template <int MB>
PG_AVX512 void rows_q4(const float* x, int64_t Kx, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                       int64_t ldy) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) block_q4<4, MB>(x, Kx, w.cols, w, n, y, ldy);
  for (; n < n1; ++n) block_q4<1, MB>(x, Kx, w.cols, w, n, y, ldy);
}

template <int MB>
PG_AVX512 void rows_any(const float* x, int64_t Kx, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                        int64_t ldy) {
  const int64_t K = w.cols;
  switch (w.format) {
    case WeightFormat::F32: rows_dense<WeightFormat::F32, MB>(x, K, w, n0, n1, y, ldy); return;
    case WeightFormat::BF16: rows_dense<WeightFormat::BF16, MB>(x, K, w, n0, n1, y, ldy); return;
    case WeightFormat::F16: rows_dense<WeightFormat::F16, MB>(x, K, w, n0, n1, y, ldy); return;
    case WeightFormat::Int8: rows_dense<WeightFormat::Int8, MB>(x, K, w, n0, n1, y, ldy); return;
    case WeightFormat::Q4: rows_q4<MB>(x, Kx, w, n0, n1, y, ldy); return;
  }
}

}  // namespace

PG_AVX512 void gemv_avx512(const float* x, int64_t Kx, int M, const WeightMatrix& w, int64_t n0, int64_t n1,
                                   float* y, int64_t ldy) {
  int m = 0;
  for (; m + 4 <= M; m += 4) rows_any<4>(x + m * Kx, Kx, w, n0, n1, y + m * ldy, ldy);
  switch (M - m) {
    case 3: rows_any<3>(x + m * Kx, Kx, w, n0, n1, y + m * ldy, ldy); break;
    case 2: rows_any<2>(x + m * Kx, Kx, w, n0, n1, y + m * ldy, ldy); break;
    case 1: rows_any<1>(x + m * Kx, Kx, w, n0, n1, y + m * ldy, ldy); break;
    default: break;
  }
}

}  // namespace pg::kernels::detail
