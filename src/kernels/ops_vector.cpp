// Vectorised element-wise ops (GELU-tanh, soft-cap) for the AVX-512 and AVX2 paths, built on
// vector_math.h's tanh (absolute error <= 1.2e-7). Called by ops.cpp on chunks of a tensor.
#include "kernels/ops_vector.h"

#include "kernels/vector_math.h"

namespace pg::kernels::detail {
namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;
}  // namespace

PG_TARGET_AVX512 void gelu_tanh_avx512(float* x, int64_t n) {
  const __m512 k = _mm512_set1_ps(kSqrt2OverPi), c = _mm512_set1_ps(kGeluCubic), half = _mm512_set1_ps(0.5f),
               one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
    const __m512 t = vmath::tanh512(_mm512_mul_ps(k, _mm512_fmadd_ps(c, v3, v)));
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, t)));
  }
}

namespace {

// 8 lanes of GELU-tanh.
PG_TARGET_AVX2 inline __m256 gelu8(__m256 v) {
  const __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
  const __m256 inner = _mm256_fmadd_ps(_mm256_set1_ps(kGeluCubic), v3, v);
  const __m256 t = vmath::tanh256(_mm256_mul_ps(_mm256_set1_ps(kSqrt2OverPi), inner));
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(_mm256_set1_ps(1.0f), t));
}

PG_TARGET_AVX2 inline __m256 cap8(__m256 v, __m256 cap, __m256 inv) {
  return _mm256_mul_ps(vmath::tanh256(_mm256_mul_ps(v, inv)), cap);
}

}  // namespace

// AVX2 has no masked loads of floats narrower than a vector: the last n % 8 values go
// through a zero-padded copy.
PG_TARGET_AVX2 void gelu_tanh_avx2(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    float tail[8] = {};
    for (int64_t j = i; j < n; ++j) tail[j - i] = x[j];
    _mm256_storeu_ps(tail, gelu8(_mm256_loadu_ps(tail)));
    for (int64_t j = i; j < n; ++j) x[j] = tail[j - i];
  }
}

PG_TARGET_AVX512 void soft_cap_avx512(float* x, int64_t n, float cap) {
  const __m512 c = _mm512_set1_ps(cap), inv = _mm512_set1_ps(1.0f / cap);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(vmath::tanh512(_mm512_mul_ps(v, inv)), c));
  }
}

PG_TARGET_AVX2 void soft_cap_avx2(float* x, int64_t n, float cap) {
  const __m256 c = _mm256_set1_ps(cap), inv = _mm256_set1_ps(1.0f / cap);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, cap8(_mm256_loadu_ps(x + i), c, inv));
  if (i < n) {
    float tail[8] = {};
    for (int64_t j = i; j < n; ++j) tail[j - i] = x[j];
    _mm256_storeu_ps(tail, cap8(_mm256_loadu_ps(tail), c, inv));
    for (int64_t j = i; j < n; ++j) x[j] = tail[j - i];
  }
}

PG_TARGET_AVX512 void exp_shifted_avx512(float* x, int64_t n, float shift) {
  const __m512 sh = _mm512_set1_ps(shift);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(x + i, m, vmath::exp512(_mm512_sub_ps(v, sh)));
  }
}

PG_TARGET_AVX2 void exp_shifted_avx2(float* x, int64_t n, float shift) {
  const __m256 sh = _mm256_set1_ps(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, vmath::exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh)));
  if (i < n) {
    float tail[8] = {};
    for (int64_t j = i; j < n; ++j) tail[j - i] = x[j];
    _mm256_storeu_ps(tail, vmath::exp256(_mm256_sub_ps(_mm256_loadu_ps(tail), sh)));
    for (int64_t j = i; j < n; ++j) x[j] = tail[j - i];
  }
}

}  // namespace pg::kernels::detail
