// The AVX-512 attention tile (Avx512 and Amx kernel paths): the vector vocabulary of
// attention_tile.h on 16-lane zmm registers. Compiled with the baseline flags; every function
// carries target("avx512f,avx512bw,avx512vl,avx512dq,fma") and is only reached after the
// run-time dispatch in attention.cpp.
// GCC 12 reports its own _mm512_undefined_* idiom inside the intrinsics as maybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstdint>

#include "kernels/attention_impl.h"
#include "kernels/vector_math.h"

namespace pg::kernels::attn {
namespace {

#define PG_ATTN_T PG_TARGET_AVX512

using V = __m512;
constexpr int kL = 16;
constexpr int kQkKeys = 6;      // scores tile: 6 keys x 4 vectors of rows (24 accumulators)
constexpr int kQkVecs = 4;
constexpr int kPvRows = 6;      // output tile: 6 rows x 4 vectors of head_dim (24 accumulators)
constexpr int kPvVecs = 4;
constexpr int kDotMaxRows = 8;  // up to this many rows: dot-product scores (decode)

PG_ATTN_T inline V vzero() { return _mm512_setzero_ps(); }
PG_ATTN_T inline V vset1(float x) { return _mm512_set1_ps(x); }
PG_ATTN_T inline V vneg_inf() { return _mm512_set1_ps(-__builtin_inff()); }
PG_ATTN_T inline V vload(const float* p) { return _mm512_loadu_ps(p); }
PG_ATTN_T inline V vload_part(const float* p, int n) {  // n in [0, 16]; the rest zero, no fault
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
}
PG_ATTN_T inline V vbf16_widen(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
PG_ATTN_T inline V vload_bf16(const uint16_t* p) {
  return vbf16_widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
PG_ATTN_T inline V vload_bf16_part(const uint16_t* p, int n) {
  return vbf16_widen(_mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << n) - 1u), p));
}
PG_ATTN_T inline void vstore(float* p, V x) { _mm512_storeu_ps(p, x); }
PG_ATTN_T inline V vbcast(const float* p) { return _mm512_set1_ps(*p); }
PG_ATTN_T inline V vfmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
PG_ATTN_T inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
PG_ATTN_T inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
PG_ATTN_T inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
PG_ATTN_T inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
PG_ATTN_T inline V vsafe_max(V m) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(m, vneg_inf(), _CMP_EQ_OQ), m, _mm512_setzero_ps());
}
// Lanes (rows) whose range [first, last) does not hold `key` become -inf.
PG_ATTN_T inline V vmask_range(V x, const int* first, const int* last, int key) {
  const __m512i kv = _mm512_set1_epi32(key);
  const __mmask16 ok = _mm512_cmple_epi32_mask(_mm512_loadu_si512(first), kv) &
                       _mm512_cmpgt_epi32_mask(_mm512_loadu_si512(last), kv);
  return _mm512_mask_blend_ps(ok, vneg_inf(), x);
}
PG_ATTN_T inline V vexp(V x) { return vmath::exp512(x); }
PG_ATTN_T inline V vtanh(V x) { return vmath::tanh512(x); }
PG_ATTN_T inline float vreduce_add(V x) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace pg::kernels::attn

#define PG_ATTN_TILE_FN tile_avx512
#define PG_ATTN_MATH_FN vector_math_avx512
#include "kernels/attention_tile.h"
