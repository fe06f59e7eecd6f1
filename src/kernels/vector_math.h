#pragma once
// Vector exp and tanh for the ISA-specific kernels (AVX-512 and AVX2 flavours). Every function
// here is `static inline` with its target attribute, so each including file gets private
// copies and no generic caller can bind to an AVX-512 body.
//
// exp: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then the Cephes expf degree-6
// polynomial. Max relative error 1.2e-7 (about 1 ulp) over [-87.33, 88], measured against
// double exp on 2^24 evenly spaced points, the same for both flavours
// (tests/attention_kernel_test.cpp checks < 2e-7).
// Inputs below -87.33 (including -inf) give exactly 0 (no denormals); inputs above 88 are
// clamped to exp(88) ~ 1.65e38. NaN is not propagated (callers never pass one from finite data).
//
// tanh: sign(x) * (1 - 2 / (exp(2|x|) + 1)). Absolute error <= 1.2e-7 (measured on 2^24 points
// in [-20, 20]); relative error 1.8e-7 where |tanh x| > 0.5, larger only where |tanh x| is
// tiny. The soft-cap multiplies by the cap, so capped scores get an absolute error
// <= 1.2e-7 * cap, about one f32 ulp of the cap.
#include <immintrin.h>

#define PG_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define PG_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace pg::kernels::vmath {

// Constants shared by both flavours.
constexpr float kExpLo = -87.336544f;  // below: exp underflows to a denormal; we return 0
constexpr float kExpHi = 88.0f;       // keeps n = round(x log2e) <= 127
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f;
constexpr float kP1 = 1.3981999507e-3f;
constexpr float kP2 = 8.3334519073e-3f;
constexpr float kP3 = 4.1665795894e-2f;
constexpr float kP4 = 1.6666665459e-1f;
constexpr float kP5 = 5.0000001201e-1f;

// ---------------------------------------------------------------- AVX-512
// e^x for x already clamped to [kExpLo, kExpHi]: Cody-Waite reduction x = n ln2 + r, the
// degree-7 polynomial of e^r, then p * 2^n.
PG_TARGET_AVX512 static inline __m512 exp512_clamped(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  const __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);  // p * 2^n
}

PG_TARGET_AVX512 static inline __m512 exp512(__m512 x) {
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpLo), _CMP_GE_OQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(kExpHi));
  x = _mm512_max_ps(x, _mm512_set1_ps(kExpLo));
  return _mm512_maskz_mov_ps(keep, exp512_clamped(x));
}

PG_TARGET_AVX512 static inline __m512 tanh512(__m512 x) {
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(0x80000000u)));
  const __m512 ax = _mm512_andnot_ps(sign, x);
  const __m512 e = exp512(_mm512_add_ps(ax, ax));
  const __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                                 _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
  return _mm512_or_ps(t, _mm512_and_ps(x, sign));
}

// ---------------------------------------------------------------- AVX2
PG_TARGET_AVX2 static inline __m256 exp256(__m256 x) {
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(kExpLo), _CMP_GE_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(kExpHi));
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpLo));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  const __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n: n in [-126, 127] after the clamps, so the biased exponent stays normal.
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(keep, _mm256_mul_ps(p, _mm256_castsi256_ps(bits)));
}

PG_TARGET_AVX2 static inline __m256 tanh256(__m256 x) {
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
  const __m256 ax = _mm256_andnot_ps(sign, x);
  const __m256 e = exp256(_mm256_add_ps(ax, ax));
  const __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                                 _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  return _mm256_or_ps(t, _mm256_and_ps(x, sign));
}

}  // namespace pg::kernels::vmath
