// The AVX2 attention tile (Avx2 kernel path): the vector vocabulary of attention_tile.h on
// 8-lane ymm registers (16 of them, so smaller tiles than AVX-512). Every function carries
// target("avx2,fma,f16c").
#include <immintrin.h>

#include <cstdint>

#include "kernels/attention_impl.h"
#include "kernels/vector_math.h"

namespace pg::kernels::attn {
namespace {

#define PG_ATTN_T PG_TARGET_AVX2

using V = __m256;
constexpr int kL = 8;
constexpr int kQkKeys = 4;      // scores tile: 4 keys x 2 vectors of rows (8 accumulators)
constexpr int kQkVecs = 2;
constexpr int kPvRows = 4;      // output tile: 4 rows x 2 vectors of head_dim (8 accumulators)
constexpr int kPvVecs = 2;
constexpr int kDotMaxRows = 4;  // up to this many rows: dot-product scores (decode)

PG_ATTN_T inline __m256i vtail_mask(int n) {  // lanes < n all-ones
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
PG_ATTN_T inline V vzero() { return _mm256_setzero_ps(); }
PG_ATTN_T inline V vset1(float x) { return _mm256_set1_ps(x); }
PG_ATTN_T inline V vneg_inf() { return _mm256_set1_ps(-__builtin_inff()); }
PG_ATTN_T inline V vload(const float* p) { return _mm256_loadu_ps(p); }
PG_ATTN_T inline V vload_part(const float* p, int n) { return _mm256_maskload_ps(p, vtail_mask(n)); }
PG_ATTN_T inline V vbf16_widen(__m128i h) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
PG_ATTN_T inline V vload_bf16(const uint16_t* p) {
  return vbf16_widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
PG_ATTN_T inline V vload_bf16_part(const uint16_t* p, int n) {
  alignas(16) uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < n && i < 8; ++i) tmp[i] = p[i];
  return vbf16_widen(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
}
PG_ATTN_T inline void vstore(float* p, V x) { _mm256_storeu_ps(p, x); }
PG_ATTN_T inline V vbcast(const float* p) { return _mm256_broadcast_ss(p); }
PG_ATTN_T inline V vfmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
PG_ATTN_T inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
PG_ATTN_T inline V vadd(V a, V b) { return _mm256_add_ps(a, b); }
PG_ATTN_T inline V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
PG_ATTN_T inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
PG_ATTN_T inline V vsafe_max(V m) {
  return _mm256_blendv_ps(m, _mm256_setzero_ps(), _mm256_cmp_ps(m, vneg_inf(), _CMP_EQ_OQ));
}
PG_ATTN_T inline V vmask_range(V x, const int* first, const int* last, int key) {
  const __m256i kv = _mm256_set1_epi32(key);
  const __m256i f = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first));
  const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(last));
  const __m256i ok = _mm256_andnot_si256(_mm256_cmpgt_epi32(f, kv), _mm256_cmpgt_epi32(l, kv));
  return _mm256_blendv_ps(vneg_inf(), x, _mm256_castsi256_ps(ok));
}
PG_ATTN_T inline V vexp(V x) { return vmath::exp256(x); }
PG_ATTN_T inline V vtanh(V x) { return vmath::tanh256(x); }
PG_ATTN_T inline float vreduce_add(V x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace pg::kernels::attn

#define PG_ATTN_TILE_FN tile_avx2
#define PG_ATTN_MATH_FN vector_math_avx2
#include "kernels/attention_tile.h"
