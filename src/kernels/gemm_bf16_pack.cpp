// Preparing operands for the bf16 products (AMX and AVX-512 BF16 paths): activations rounded
// to bf16 (round to nearest even, as torch) and laid out for the kernel; weight rows of any
// format widened to bf16 when they cannot be read in place. Only called on CPUs with
// AVX-512 BF16 (every AMX CPU has it).
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_kernels.h"
#include "kernels/quantize.h"

#define PG_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")))

namespace pg::kernels::detail {
namespace {

// n <= 16 f32 -> bf16 (RNE); the rest of the 16 lanes zero.
PG_BF16 inline void f32_to_bf16_16(const float* src, int n, uint16_t* dst) {
  const __mmask16 m = n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
  const __m512 v = _mm512_maskz_loadu_ps(m, src);
  const __m256bh b = _mm512_cvtneps_pbh(v);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), reinterpret_cast<const __m256i&>(b));
}

// One row of K floats -> Kp bf16 (zero padded).
PG_BF16 void row_f32_to_bf16(const float* src, int64_t K, int64_t Kp, uint16_t* dst) {
  for (int64_t k = 0; k < Kp; k += 16) {
    const int64_t n = K - k;
    if (n <= 0) {
      std::memset(dst + k, 0, 32);
    } else {
      f32_to_bf16_16(src + k, n >= 16 ? 16 : static_cast<int>(n), dst + k);
    }
  }
}

}  // namespace

int64_t pack_rows_bf16_size(int M, int64_t K) { return static_cast<int64_t>(M) * round_up32(K); }

PG_BF16 void pack_rows_bf16(const float* x, int M, int64_t K, uint16_t* out) {
  const int64_t Kp = round_up32(K);
#pragma omp parallel for schedule(static) if (M >= 64)
  for (int m = 0; m < M; ++m) row_f32_to_bf16(x + m * K, K, Kp, out + m * Kp);
}

int64_t pack_amx_size(int M, int64_t K) {
  return static_cast<int64_t>((M + 15) / 16) * 16 * round_up32(K);
}

// Tile (mb, kc) holds rows mb*16 .. +16 and columns kc*32 .. +32 as 16 "k-pair" rows of
// 16 dwords: dword (kk, t) = bf16 pair (x[t][2kk], x[t][2kk+1]). That is a 16x16 dword
// transpose of the rows' bf16 data.
PG_BF16 void pack_amx(const float* x, int M, int64_t K, uint16_t* out) {
  const int64_t Kp = round_up32(K), KC = Kp / 32;
  const int MB = (M + 15) / 16;
#pragma omp parallel for schedule(static) if (M >= 64)
  for (int mb = 0; mb < MB; ++mb) {
    alignas(64) uint32_t rows[16][16];
    for (int64_t kc = 0; kc < KC; ++kc) {
      for (int t = 0; t < 16; ++t) {
        const int m = mb * 16 + t;
        if (m < M) {
          const int64_t n = K - kc * 32;
          uint16_t* r = reinterpret_cast<uint16_t*>(rows[t]);
          f32_to_bf16_16(x + m * K + kc * 32, n >= 16 ? 16 : static_cast<int>(n), r);
          const int64_t n2 = n - 16;
          if (n2 > 0)
            f32_to_bf16_16(x + m * K + kc * 32 + 16, n2 >= 16 ? 16 : static_cast<int>(n2), r + 16);
          else
            std::memset(r + 16, 0, 32);
        } else {
          std::memset(rows[t], 0, 64);
        }
      }
      uint32_t* tile = reinterpret_cast<uint32_t*>(out + (static_cast<int64_t>(mb) * KC + kc) * 512);
      for (int kk = 0; kk < 16; ++kk)
        for (int t = 0; t < 16; ++t) tile[kk * 16 + t] = rows[t][kk];
    }
  }
}

// Weight rows as bf16. Int8 rows come out as their integers (exact in bf16); the caller
// applies the per-row scale to the products. Q4 rows come out dequantised (nibble - 8) * d,
// rounded to bf16.
PG_BF16 void weight_rows_bf16(const WeightMatrix& w, int64_t n0, int64_t nrows, int64_t nrows_padded, int64_t k0,
                              int64_t kn, uint16_t* out, WeightLayout layout) {
  const int64_t K = w.cols;
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const int64_t rb = w.row_bytes();
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m512 eight = _mm512_set1_ps(8.0f);
  const bool tiles = layout == WeightLayout::AmxTiles;
  // Where columns j .. j + 16 of row r go.
  auto at = [&](int64_t r, int64_t j) {
    return tiles ? out + ((r / 16) * (kn / 32) + j / 32) * 512 + (r % 16) * 32 + j % 32 : out + r * kn + j;
  };
  for (int64_t r = 0; r < nrows_padded; ++r) {
    if (r >= nrows) {
      for (int64_t j = 0; j < kn; j += 16) std::memset(at(r, j), 0, 32);
      continue;
    }
    const uint8_t* row = base + (n0 + r) * rb;
    if (w.format == WeightFormat::BF16) {  // a copy, one cache line (32 columns) at a time
      for (int64_t j = 0; j < kn; j += 32) {
        const int64_t n = K - (k0 + j);
        const __mmask32 m = n >= 32 ? ~__mmask32(0) : n <= 0 ? __mmask32(0) : (__mmask32(1) << n) - 1;
        _mm512_storeu_si512(at(r, j), _mm512_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + k0 + j));
      }
      continue;
    }
    for (int64_t j = 0; j < kn; j += 16) {  // 16 output columns k = k0 + j ..
      const int64_t k = k0 + j;
      const int64_t n = K - k;
      uint16_t* dst = at(r, j);
      if (n <= 0) {
        std::memset(dst, 0, 32);
        continue;
      }
      const __mmask16 m = n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
      __m512 v;
      switch (w.format) {
        case WeightFormat::BF16: continue;  // copied above
        case WeightFormat::F32: v = _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + k); break;
        case WeightFormat::F16:
          v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + k));
          break;
        case WeightFormat::Int8: v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, row + k))); break;
        case WeightFormat::Q4: {
          // k is a multiple of 16: the low (k % 32 == 0) or high nibbles of block k / 32.
          const int64_t b = k / kQ4Block;
          const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + b * kQ4BlockBytes));
          const __m128i nib = (k % kQ4Block) == 0 ? _mm_and_si128(q, low4) : _mm_and_si128(_mm_srli_epi16(q, 4), low4);
          const uint16_t* scales = static_cast<const uint16_t*>(w.scales) + (n0 + r) * q4_blocks(K);
          const __m512 d = _mm512_set1_ps(_cvtsh_ss(scales[b]));
          // Padded columns of the last block hold nibble 8, i.e. exactly 0.
          v = _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(nib)), eight), d);
          break;
        }
      }
      const __m256bh b = _mm512_cvtneps_pbh(v);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), reinterpret_cast<const __m256i&>(b));
    }
  }
}

// 16 x 16 transpose of 32-bit elements (rows in r, columns out in w): the unpack / 128-bit
// lane shuffle network, which leaves column j in w[j].
PG_BF16 static inline void transpose16x16_epi32(const __m512i* r, __m512i* w) {
  __m512i t[16], u[16], v[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      v[8 * i + j] = _mm512_shuffle_i32x4(u[8 * i + j], u[8 * i + 4 + j], 0x88);
      v[8 * i + 4 + j] = _mm512_shuffle_i32x4(u[8 * i + j], u[8 * i + 4 + j], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    w[j] = _mm512_shuffle_i32x4(v[j], v[8 + j], 0x88);
    w[8 + j] = _mm512_shuffle_i32x4(v[j], v[8 + j], 0xdd);
  }
}

PG_BF16 void transpose_bf16_32x32(const uint16_t* src, int64_t src_stride, uint16_t* dst, int64_t dst_stride) {
  // Each row's 32 values are 16 pairs (columns 2p, 2p + 1): transposing the pairs of rows
  // 0-15 and 16-31 gives, for each p, the pairs of all 32 rows in two registers; the even and
  // odd halves of those are output rows 2p and 2p + 1.
  __m512i rows[16], top[16], bottom[16];
  for (int i = 0; i < 16; ++i) rows[i] = _mm512_loadu_si512(src + i * src_stride);
  transpose16x16_epi32(rows, top);
  for (int i = 0; i < 16; ++i) rows[i] = _mm512_loadu_si512(src + (16 + i) * src_stride);
  transpose16x16_epi32(rows, bottom);
  alignas(64) uint16_t even[32], odd[32];
  for (int j = 0; j < 32; ++j) {
    even[j] = static_cast<uint16_t>(j < 16 ? 2 * j : 32 + 2 * (j - 16));
    odd[j] = static_cast<uint16_t>(even[j] + 1);
  }
  const __m512i ie = _mm512_load_si512(even), io = _mm512_load_si512(odd);
  for (int p = 0; p < 16; ++p) {
    _mm512_storeu_si512(dst + (2 * p) * dst_stride, _mm512_permutex2var_epi16(top[p], ie, bottom[p]));
    _mm512_storeu_si512(dst + (2 * p + 1) * dst_stride, _mm512_permutex2var_epi16(top[p], io, bottom[p]));
  }
}

}  // namespace pg::kernels::detail
