// Few-row products with int8 / q4 weights on AVX-512 VNNI (decoding, Precision::BF16):
// the activations are quantised to int8 in blocks of 32 (scale = max|x| / 127, as ggml's
// Q8_0), and the integer dot products run on vpdpbusd, 64 bytes per instruction. That keeps
// the arithmetic per weight byte low enough for decoding to stay bound by memory bandwidth
// (widening every weight to f32, as gemv_avx512.cpp does, is not: int8 and q4 weights are
// too cheap to read). The activation rounding (<= 0.4% of the block's largest value per
// element) is of the order of bf16's.
//
// Lane layout: vpdpbusd sums 4 consecutive bytes per int32 lane.
//   int8 weights: chunks of 64 columns (two 32-blocks), bytes in column order: lanes 0-7 =
//                 block 0, lanes 8-15 = block 1.
//   q4 weights:   chunks of 128 columns (four blocks = 64 bytes of nibbles). The low nibbles
//                 of the 64 bytes are elements 0-15 of each block, the high nibbles elements
//                 16-31, so x is stored as x_lo = [b0 0-15 | b1 0-15 | b2 0-15 | b3 0-15] and
//                 x_hi likewise for 16-31; dpbusd(lo, x_lo) then dpbusd(hi, x_hi) into the
//                 same lanes gives lanes 4j..4j+3 = block j.
// Per chunk, `lane_scale` holds each lane's x-block scale; for q4, `lane_corr` holds
// 8 * (sum of the lane's 8 x bytes), so dp - corr = sum (nibble - 8) * x exactly.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/gemm_kernels.h"
#include "kernels/quantize.h"

#define PG_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

namespace pg::kernels::detail {

void quantize_activations_vnni(const float* x, int M, int64_t K, bool q4_order, QuantizedActivations& out) {
  const int64_t width = q4_order ? 128 : 64;  // columns per chunk
  const int64_t chunks = (K + width - 1) / width;
  out.M = M;
  out.K = K;
  out.chunks = chunks;
  out.q4_order = q4_order;
  out.q.assign(static_cast<size_t>(M) * chunks * width, 0);
  out.lane_scale.assign(static_cast<size_t>(M) * chunks * 16, 0.0f);
  out.lane_corr.assign(q4_order ? static_cast<size_t>(M) * chunks * 16 : 0, 0);
  const int blocks_per_chunk = static_cast<int>(width / 32);
  for (int m = 0; m < M; ++m) {
    const float* xr = x + static_cast<int64_t>(m) * K;
    for (int64_t c = 0; c < chunks; ++c) {
      int8_t* q = out.q.data() + (static_cast<int64_t>(m) * chunks + c) * width;
      float scale[4] = {0, 0, 0, 0};
      int8_t blockq[4][32] = {};
      for (int b = 0; b < blocks_per_chunk; ++b) {
        const int64_t k0 = c * width + b * 32;
        float amax = 0;
        for (int j = 0; j < 32 && k0 + j < K; ++j) amax = std::max(amax, std::fabs(xr[k0 + j]));
        scale[b] = amax / 127.0f;
        const float inv = amax > 0 ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 32 && k0 + j < K; ++j) {
          const float r = std::nearbyint(xr[k0 + j] * inv);
          blockq[b][j] = static_cast<int8_t>(r == r ? std::clamp(r, -127.0f, 127.0f) : 0.0f);
        }
      }
      float* ls = out.lane_scale.data() + (static_cast<int64_t>(m) * chunks + c) * 16;
      if (q4_order) {
        int32_t* lc = out.lane_corr.data() + (static_cast<int64_t>(m) * chunks + c) * 16;
        for (int b = 0; b < 4; ++b) {
          std::memcpy(q + b * 16, blockq[b], 16);
          std::memcpy(q + 64 + b * 16, blockq[b] + 16, 16);
        }
        for (int lane = 0; lane < 16; ++lane) {
          ls[lane] = scale[lane / 4];
          int sum = 0;
          for (int i = 0; i < 4; ++i) sum += q[4 * lane + i] + q[64 + 4 * lane + i];
          lc[lane] = 8 * sum;
        }
      } else {
        std::memcpy(q, blockq[0], 32);
        std::memcpy(q + 32, blockq[1], 32);
        for (int lane = 0; lane < 16; ++lane) ls[lane] = scale[lane / 8];
      }
    }
  }
}

namespace {

// How far ahead of the loads each weight row is prefetched.
constexpr int64_t kPrefetchBytes = 4096;

// Rows m.. of the quantised activations, as raw pointers.
struct Rows {
  const int8_t* q;
  const float* lane_scale;
  const int32_t* lane_corr;
  int64_t chunks;
};

template <int NR, int MB>
PG_VNNI void block_int8(const Rows& x, const WeightMatrix& w, int64_t n, float* y, int64_t ldy) {
  const int64_t K = w.cols, chunks = x.chunks;
  const int8_t* base = static_cast<const int8_t*>(w.data);
  const float* wscale = static_cast<const float*>(w.scales);
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc[NR][MB];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm512_setzero_ps();
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t left = K - c * 64;
    const __mmask64 mask = left >= 64 ? ~0ull : ((1ull << left) - 1);
    __m512i wv[NR];
    for (int r = 0; r < NR; ++r) {
      // Hardware prefetchers stop at 4 KiB pages; stream ahead explicitly.
      _mm_prefetch(reinterpret_cast<const char*>(base + (n + r) * K + c * 64 + kPrefetchBytes), _MM_HINT_T0);
      wv[r] = _mm512_maskz_loadu_epi8(mask, base + (n + r) * K + c * 64);
    }
    for (int m = 0; m < MB; ++m) {
      const __m512i xq = _mm512_loadu_si512(x.q + (m * chunks + c) * 64);
      const __m512i xa = _mm512_abs_epi8(xq);
      const __mmask64 neg = _mm512_movepi8_mask(xq);
      const __m512 ls = _mm512_loadu_ps(x.lane_scale + (m * chunks + c) * 16);
      for (int r = 0; r < NR; ++r) {
        // |x| * (w * sign(x)): vpdpbusd wants its first operand unsigned.
        const __m512i ws = _mm512_mask_sub_epi8(wv[r], neg, zero, wv[r]);
        const __m512i dp = _mm512_dpbusd_epi32(zero, xa, ws);
        acc[r][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), ls, acc[r][m]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) y[m * ldy + n + r] = _mm512_reduce_add_ps(acc[r][m]) * wscale[n + r];
}

template <int NR, int MB>
PG_VNNI void block_q4(const Rows& x, const WeightMatrix& w, int64_t n, float* y, int64_t ldy) {
  const int64_t K = w.cols, chunks = x.chunks, blocks = q4_blocks(K), rb = q4_row_bytes(K);
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const uint16_t* scales = static_cast<const uint16_t*>(w.scales);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m512i lane_block = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  __m512 acc[NR][MB];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) acc[r][m] = _mm512_setzero_ps();
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t nb = blocks - 4 * c < 4 ? blocks - 4 * c : 4;  // blocks in this chunk
    const __mmask64 bytes = nb == 4 ? ~0ull : ((1ull << (nb * 16)) - 1);
    const __mmask8 halves = static_cast<__mmask8>((1u << nb) - 1);
    __m512i lo[NR], hi[NR];
    __m512 dw[NR];
    for (int r = 0; r < NR; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(base + (n + r) * rb + c * 64 + kPrefetchBytes), _MM_HINT_T0);
      const __m512i q = _mm512_maskz_loadu_epi8(bytes, base + (n + r) * rb + c * 64);
      lo[r] = _mm512_and_si512(q, low4);
      hi[r] = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
      const __m128i h = _mm_maskz_loadu_epi16(halves, scales + (n + r) * blocks + 4 * c);
      dw[r] = _mm512_permutexvar_ps(lane_block, _mm512_castps128_ps512(_mm_cvtph_ps(h)));
    }
    for (int m = 0; m < MB; ++m) {
      const int8_t* xq = x.q + (m * chunks + c) * 128;
      const __m512i x_lo = _mm512_loadu_si512(xq), x_hi = _mm512_loadu_si512(xq + 64);
      const __m512i corr = _mm512_loadu_si512(x.lane_corr + (m * chunks + c) * 16);
      const __m512 ls = _mm512_loadu_ps(x.lane_scale + (m * chunks + c) * 16);
      for (int r = 0; r < NR; ++r) {
        __m512i dp = _mm512_dpbusd_epi32(zero, lo[r], x_lo);
        dp = _mm512_sub_epi32(_mm512_dpbusd_epi32(dp, hi[r], x_hi), corr);
        acc[r][m] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dp), ls), dw[r], acc[r][m]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MB; ++m) y[m * ldy + n + r] = _mm512_reduce_add_ps(acc[r][m]);
}

template <int MB>
PG_VNNI void rows(const Rows& x, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                  int64_t ldy) {
  int64_t n = n0;
  if (w.format == WeightFormat::Int8) {
    for (; n + 4 <= n1; n += 4) block_int8<4, MB>(x, w, n, y, ldy);
    for (; n < n1; ++n) block_int8<1, MB>(x, w, n, y, ldy);
  } else {
    for (; n + 4 <= n1; n += 4) block_q4<4, MB>(x, w, n, y, ldy);
    for (; n < n1; ++n) block_q4<1, MB>(x, w, n, y, ldy);
  }
}

}  // namespace

PG_VNNI void gemv_vnni(const QuantizedActivations& x, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                       int64_t ldy) {
  for (int m = 0; m < x.M; m += 4) {  // x rows in groups of up to 4
    const Rows v{x.q.data() + m * x.chunks * (x.q4_order ? 128 : 64), x.lane_scale.data() + m * x.chunks * 16,
                 x.lane_corr.empty() ? nullptr : x.lane_corr.data() + m * x.chunks * 16, x.chunks};
    float* ym = y + m * ldy;
    switch (x.M - m < 4 ? x.M - m : 4) {
      case 4: rows<4>(v, w, n0, n1, ym, ldy); break;
      case 3: rows<3>(v, w, n0, n1, ym, ldy); break;
      case 2: rows<2>(v, w, n0, n1, ym, ldy); break;
      default: rows<1>(v, w, n0, n1, ym, ldy); break;
    }
  }
}

}  // namespace pg::kernels::detail
