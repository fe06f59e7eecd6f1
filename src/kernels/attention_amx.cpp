// The AMX attention tile (Amx kernel path, Precision::BF16, many query rows): the same flash
// algorithm as attention_tile.h, with both matrix products on AMX tiles (bf16 operands, f32
// accumulation) and the online softmax in f32 AVX-512.
//
// Per tile (up to kAmxRows = 64 rows i = (t, h), four 16-row tile rows) and key block of up to
// kAmxBlockKeys = 128 keys (32-key chunks):
//   S[i][j] = sum_d Q16[i][d] K16[j][d]           A = Q (bf16 rows, rounded once per tile),
//                                                 B = K in k-pair tiles (packed once per call)
//   x = scale S, or cap tanh(scale S / cap); masked keys left out; per row (lanes = keys):
//   m' = max(m, max_j x) (lazily, see kLazyMax), P = e^(x - m'), l = e^(m - m') l + sum_j P
//   O[i][:] = e^(m - m') O[i][:] + sum_j P16[i][j] V16[j][:]
//                                                 A = P rounded to bf16 (rows), B = V in k-pair
//                                                 tiles (packed once per call)
// and finally O / l. The products run on pairs of row tiles (2 x 2 output tiles, 2 A and 2 B
// operand tiles, as gemm_amx.cpp); 64 rows rather than 32 per tile halve the reads of the K / V
// packs from L2 per flop (each 32-key chunk serves both pairs from L1), which bounded the
// short-head (vision, head_dim 72) tiles. The scale is applied in f32 to S (not folded into Q before rounding), so
// the products see exactly bf16(q), bf16(k), bf16(v) and the only rounding the f32 kernels do
// not have, past the operands, is that of P (relative 2^-8 at most per probability).
//
// K and V are packed once per call and kv head (amx_pack_kv): every query block reads them,
// so the transposes into tile layout cost O(kv_len * head_dim) per head instead of per block.
// Keys past kv_len and dims past head_dim are packed as zeros, never read from the cache
// (a NaN there would survive 0 * NaN in the tile products).
//
// All functions carry the AMX / AVX-512 target attribute and have internal linkage, except
// the three entry points declared in attention_impl.h, which are only reached after the
// run-time dispatch in attention.cpp.
//
// GCC 12 reports its own _mm512_undefined_* idiom inside the intrinsics as (maybe-)uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/aligned_buffer.h"
#include "kernels/attention_impl.h"
#include "kernels/gemm_kernels.h"
#include "kernels/vector_math.h"

#define PG_AMX_ATTN __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

namespace pg::kernels::attn {
namespace {

// The running max is only moved when a block's max exceeds it by more than this (natural-log
// units): softmax is invariant to the shift as long as O, l and m stay consistent, and skipping
// most rescales of O saves an f32 pass over the accumulator per block. P = e^(x - m) is then at
// most e^8 ~ 3e3: no overflow of the f32 sums, and bf16 rounding is relative, so no loss.
constexpr float kLazyMax = 8.0f;

// cap * tanh(y) given y2 = 2y: cap (1 - 2 / (e^2y + 1)), the reciprocal from rcp14 (2^-14) and one
// Newton step (r' = r (2 - a r), ~2^-23) instead of a division (vdivps zmm, ~10-cycle throughput,
// was the most expensive step of the capped softmax). Absolute error of the tanh ~2e-7, as
// vmath::tanh512's: ~1e-5 on a score capped at 50, a relative 1e-5 on its probability. e^2y
// is clamped by exp512 (0 below -87, e^88 above), giving exactly -cap / cap at the ends.
PG_AMX_ATTN inline __m512 softcap512(__m512 y2, __m512 cap, __m512 two_cap) {
  const __m512 a = _mm512_add_ps(vmath::exp512(y2), _mm512_set1_ps(1.0f));
  __m512 r = _mm512_rcp14_ps(a);
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(a, r, _mm512_set1_ps(2.0f)));
  return _mm512_fnmadd_ps(two_cap, r, cap);
}

// e^x for x <= kLazyMax (x - m after the lazy max update), lanes outside `keep` zero: the
// range reduction and polynomial of vmath::exp512 (relative error 1.2e-7), without its upper
// clamp (never needed here) and with the mask folded into the final scaling (fewer ops in the
// softmax, which bounds the short-head tiles). Below -87.3 x is clamped, so a visible key far
// below the max gets ~1e-38 instead of 0: nothing next to the row's sum l >= 1 (m never
// exceeds the row's max), and no denormals reach the f32 sums.
PG_AMX_ATTN inline __m512 exp_le8(__m512 x, __mmask16 keep) {
  // x <= 8 by construction: only the lower clamp is needed.
  return _mm512_maskz_mov_ps(keep, vmath::exp512_clamped(_mm512_max_ps(x, _mm512_set1_ps(vmath::kExpLo))));
}

inline int dk_of(int head_dim) { return (head_dim + 31) / 32 * 32; }  // QK reduction, 32-wide k-steps
inline int dv_of(int head_dim) { return (head_dim + 15) / 16 * 16; }  // PV output, 16-wide tiles

// n <= 32 values (f32 or bf16) -> 32 bf16 lanes, zero past n. f32 rounds to nearest even.
PG_AMX_ATTN inline __m512i load32_bf16(const void* src, bool bf16, int n) {
  if (n <= 0) return _mm512_setzero_si512();
  if (bf16) {
    const __mmask32 m = n >= 32 ? ~0u : (1u << n) - 1u;
    return _mm512_maskz_loadu_epi16(m, src);
  }
  const float* f = static_cast<const float*>(src);
  const int n0 = n >= 16 ? 16 : n, n1 = n - 16;
  const __m512 lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>(n0 >= 16 ? 0xFFFF : (1u << n0) - 1u), f);
  const __m512 hi = n1 > 0 ? _mm512_maskz_loadu_ps(static_cast<__mmask16>(n1 >= 16 ? 0xFFFF : (1u << n1) - 1u), f + 16)
                           : _mm512_setzero_ps();
  const __m512bh b = _mm512_cvtne2ps_pbh(hi, lo);  // lower half from lo
  return reinterpret_cast<const __m512i&>(b);
}

// n <= 16 values -> 16 bf16, zero past n.
PG_AMX_ATTN inline __m256i load16_bf16(const void* src, bool bf16, int n) {
  if (n <= 0) return _mm256_setzero_si256();
  const __mmask16 m = static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1u);
  if (bf16) return _mm256_maskz_loadu_epi16(m, src);
  const __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src));
  return reinterpret_cast<const __m256i&>(b);
}

// ---- S = Q K^T for one 32-key chunk: tile rows nr (1 or 2) x 2 key groups, KC k-steps.
// tmm0..3 accumulate (row tile a, key group b at 2a + b), tmm4/5 Q, tmm6/7 K.
template <int NR>
PG_AMX_ATTN inline void qk_chunk(const uint16_t* q16, int Dk, const uint16_t* kpack, int KC, float* s, int ldsb) {
  _tile_zero(0);
  _tile_zero(1);
  if constexpr (NR == 2) {
    _tile_zero(2);
    _tile_zero(3);
  }
  const uint16_t* k1 = kpack + static_cast<int64_t>(KC) * 512;  // the next 16 keys
  for (int kc = 0; kc < KC; ++kc) {
    _tile_loadd(4, q16 + kc * 32, Dk * 2);
    _tile_loadd(6, kpack + kc * 512, 64);
    _tile_loadd(7, k1 + kc * 512, 64);
    if constexpr (NR == 2) _tile_loadd(5, q16 + 16 * Dk + kc * 32, Dk * 2);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if constexpr (NR == 2) {
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, s, ldsb);
  _tile_stored(1, s + 16, ldsb);
  if constexpr (NR == 2) {
    float* s1 = s + 16 * (ldsb / 4);
    _tile_stored(2, s1, ldsb);
    _tile_stored(3, s1 + 16, ldsb);
  }
}

// ---- O[:, dg*16 .. dg*16 + 16 * ND) += P V over nch 32-key chunks; tmm0..3 = O tiles
// (row tile a, d group b at 2a + b), tmm4/5 P, tmm6/7 V.
template <int NR, int ND>
PG_AMX_ATTN inline void pv_tiles(const uint16_t* p16, int ldpb, const uint16_t* vpack, int DG, int nch, float* o,
                                 int ldob) {
  const int ldo = ldob / 4;
  float* o1 = o + 16 * ldo;
  _tile_loadd(0, o, ldob);
  if constexpr (ND == 2) _tile_loadd(1, o + 16, ldob);
  if constexpr (NR == 2) _tile_loadd(2, o1, ldob);
  if constexpr (NR == 2 && ND == 2) _tile_loadd(3, o1 + 16, ldob);
  const int ldp = ldpb / 2;
  for (int c = 0; c < nch; ++c) {
    const uint16_t* vc = vpack + static_cast<int64_t>(c) * DG * 512;
    _tile_loadd(4, p16 + c * 32, ldpb);
    _tile_loadd(6, vc, 64);
    if constexpr (ND == 2) _tile_loadd(7, vc + 512, 64);
    if constexpr (NR == 2) _tile_loadd(5, p16 + 16 * ldp + c * 32, ldpb);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (ND == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (NR == 2) _tile_dpbf16ps(2, 5, 6);
    if constexpr (NR == 2 && ND == 2) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, o, ldob);
  if constexpr (ND == 2) _tile_stored(1, o + 16, ldob);
  if constexpr (NR == 2) _tile_stored(2, o1, ldob);
  if constexpr (NR == 2 && ND == 2) _tile_stored(3, o1 + 16, ldob);
}

// O += P V for nr (1..4) row tiles: d groups outer, pairs of row tiles inner, so that each V
// tile, loaded once from the pack (L2), serves all the rows from L1.
PG_AMX_ATTN inline void pv_block(int nr, const uint16_t* p16, int ldpb, const uint16_t* vpack, int DG, int nch,
                                 float* o, int ldob) {
  const int64_t p_pair = 32 * static_cast<int64_t>(ldpb / 2), o_pair = 32 * static_cast<int64_t>(ldob / 4);
  for (int dg = 0; dg < DG; dg += 2) {
    const bool two = dg + 2 <= DG;
    for (int h = 0; h < nr; h += 2) {
      const uint16_t* p = p16 + (h / 2) * p_pair;
      float* oo = o + (h / 2) * o_pair + dg * 16;
      const uint16_t* v = vpack + dg * 512;
      if (nr - h >= 2) {
        if (two)
          pv_tiles<2, 2>(p, ldpb, v, DG, nch, oo, ldob);
        else
          pv_tiles<2, 1>(p, ldpb, v, DG, nch, oo, ldob);
      } else {
        if (two)
          pv_tiles<1, 2>(p, ldpb, v, DG, nch, oo, ldob);
        else
          pv_tiles<1, 1>(p, ldpb, v, DG, nch, oo, ldob);
      }
    }
  }
}

struct Bufs {
  uint16_t* q16;  // [kAmxRows][Dk]
  float* s;       // [kAmxRows][kAmxBlockKeys]
  uint16_t* p16;  // [kAmxRows][kAmxBlockKeys]
  float* o;       // [kAmxRows][Dv]
  float* m;       // [kAmxRows]
  float* l;       // [kAmxRows][16] partial sums (lanes: keys mod 16)
};

// One sub-tile of rows [i0, i0 + n) of the tile (n <= kAmxRows).
PG_AMX_ATTN void sub_tile(const Tile& t, const uint16_t* kpack, const uint16_t* vpack, int i0, int n, const Bufs& b) {
  const int D = t.head_dim, r = t.r, Dk = dk_of(D), Dv = dv_of(D), KC = Dk / 32, DG = Dv / 16;
  const int NR = (n + 15) / 16;  // row tiles, 1..4
  constexpr int BK = kAmxBlockKeys;
  const bool bf16 = false;  // queries are f32

  // Prologue: Q rounded to bf16 once (zero rows / dims past the data), running state.
  for (int i = 0; i < 16 * NR; ++i) {
    uint16_t* dst = b.q16 + static_cast<int64_t>(i) * Dk;
    const int gi = i0 + i;
    const float* qr = i < n ? t.q + (gi / r) * t.q_stride + static_cast<int64_t>(gi % r) * D : nullptr;
    for (int d = 0; d < Dk; d += 32)
      _mm512_storeu_si512(dst + d, qr ? load32_bf16(qr + d, bf16, D - d) : _mm512_setzero_si512());
    b.m[i] = -__builtin_inff();
    _mm512_storeu_ps(b.l + static_cast<int64_t>(i) * 16, _mm512_setzero_ps());
    float* orow = b.o + static_cast<int64_t>(i) * Dv;
    for (int d = 0; d < Dv; d += 16) _mm512_storeu_ps(orow + d, _mm512_setzero_ps());
    if (i >= n)  // padding rows: P stays zero, so their O rows stay zero
      for (int j = 0; j < BK; j += 32)
        _mm512_storeu_si512(b.p16 + static_cast<int64_t>(i) * BK + j, _mm512_setzero_si512());
  }
  int key_lo = t.key_hi, key_hi = t.key_lo;  // the union of these rows' ranges
  for (int i = 0; i < n; ++i)
    if (t.last[i0 + i] > t.first[i0 + i]) {
      key_lo = t.first[i0 + i] < key_lo ? t.first[i0 + i] : key_lo;
      key_hi = t.last[i0 + i] > key_hi ? t.last[i0 + i] : key_hi;
    }

  const float scale = t.scale;
  const bool capped = t.softcap > 0.0f;
  const __m512 vscale = _mm512_set1_ps(capped ? 2.0f * scale / t.softcap : scale);  // capped: 2y, y = x / cap
  const __m512 vcap = _mm512_set1_ps(t.softcap);
  const __m512 v2cap = _mm512_set1_ps(2.0f * t.softcap);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());

  // Key blocks start on 32-key chunk boundaries (the V pack's k-pair chunks); keys outside a
  // row's range are masked, and the packs are zero past kv_len.
  for (int kb = key_lo & ~31; kb < key_hi; kb += BK) {
    const int nch = (key_hi - kb + 31) / 32 < BK / 32 ? (key_hi - kb + 31) / 32 : BK / 32;
    const int nk = nch * 32;
    for (int c = 0; c < nch; ++c) {
      const uint16_t* kp = kpack + static_cast<int64_t>((kb + c * 32) / 16) * KC * 512;
      for (int h = 0; h < NR; h += 2) {  // pairs of row tiles; the K chunk is reused from L1
        const uint16_t* q = b.q16 + static_cast<int64_t>(h) * 16 * Dk;
        float* sp = b.s + static_cast<int64_t>(h) * 16 * BK + c * 32;
        if (NR - h >= 2)
          qk_chunk<2>(q, Dk, kp, KC, sp, BK * 4);
        else
          qk_chunk<1>(q, Dk, kp, KC, sp, BK * 4);
      }
    }

    for (int i = 0; i < n; ++i) {
      const int first = t.first[i0 + i], last = t.last[i0 + i];
      float* srow = b.s + static_cast<int64_t>(i) * BK;
      uint16_t* prow = b.p16 + static_cast<int64_t>(i) * BK;
      const bool full = first <= kb && last >= kb + nk;
      const bool none = last <= kb || first >= kb + nk || last <= first;
      if (none) {
        for (int j = 0; j < nk; j += 32) _mm512_storeu_si512(prow + j, _mm512_setzero_si512());
        continue;
      }
      __m512 x[BK / 16];
      __mmask16 ok[BK / 16];  // visible keys; masked lanes are left out of the max and get p = 0
      __m512 mx = neg_inf;
      for (int v = 0; v < nk / 16; ++v) {
        __m512 s = _mm512_mul_ps(_mm512_loadu_ps(srow + v * 16), vscale);
        if (capped) s = softcap512(s, vcap, v2cap);
        ok[v] = 0xFFFF;
        if (!full) {
          const __m512i key = _mm512_add_epi32(iota, _mm512_set1_epi32(kb + v * 16));
          ok[v] = _mm512_cmpge_epi32_mask(key, _mm512_set1_epi32(first)) &
                  _mm512_cmplt_epi32_mask(key, _mm512_set1_epi32(last));
        }
        x[v] = s;
        mx = _mm512_mask_max_ps(mx, ok[v], mx, s);
      }
      // Horizontal reductions only when the max moves (rare after the first blocks): the test is
      // lane-wise, and l is kept as 16 partial sums per row, added up in the epilogue.
      float mi = b.m[i];
      float* lrow = b.l + static_cast<int64_t>(i) * 16;
      if (_mm512_cmp_ps_mask(mx, _mm512_set1_ps(mi + kLazyMax), _CMP_GT_OQ)) {  // also when mi = -inf
        const float bmax = _mm512_reduce_max_ps(mx);
        if (mi > -__builtin_inff()) {  // something seen: l > 0, rescale O and l by e^(m - m')
          const __m512 va = vmath::exp512(_mm512_set1_ps(mi - bmax));
          float* orow = b.o + static_cast<int64_t>(i) * Dv;
          for (int d = 0; d < Dv; d += 16) _mm512_storeu_ps(orow + d, _mm512_mul_ps(_mm512_loadu_ps(orow + d), va));
          _mm512_storeu_ps(lrow, _mm512_mul_ps(_mm512_loadu_ps(lrow), va));
        }
        mi = bmax;
        b.m[i] = mi;
      }
      const __m512 vm = _mm512_set1_ps(mi);
      __m512 sum = _mm512_setzero_ps();
      for (int v = 0; v < nk / 16; v += 2) {
        const __m512 p0 = exp_le8(_mm512_sub_ps(x[v], vm), ok[v]);
        const __m512 p1 = exp_le8(_mm512_sub_ps(x[v + 1], vm), ok[v + 1]);
        sum = _mm512_add_ps(sum, _mm512_add_ps(p0, p1));
        const __m512bh pb = _mm512_cvtne2ps_pbh(p1, p0);
        _mm512_storeu_si512(prow + v * 16, reinterpret_cast<const __m512i&>(pb));
      }
      _mm512_storeu_ps(lrow, _mm512_add_ps(_mm512_loadu_ps(lrow), sum));
    }

    const uint16_t* vp = vpack + static_cast<int64_t>(kb / 32) * DG * 512;
    pv_block(NR, b.p16, BK * 2, vp, DG, nch, b.o, Dv * 4);
  }

  // Epilogue: O / l, or O, m, l for the split-key merge.
  for (int i = 0; i < n; ++i) {
    const int gi = i0 + i;
    const float li = _mm512_reduce_add_ps(_mm512_loadu_ps(b.l + static_cast<int64_t>(i) * 16));
    const float* orow = b.o + static_cast<int64_t>(i) * Dv;
    float* dst;
    float inv = 1.0f;
    if (t.part_o) {
      dst = t.part_o + static_cast<int64_t>(gi) * D;
      t.part_m[gi] = li > 0.0f ? b.m[i] : -__builtin_inff();
      t.part_l[gi] = li;
    } else {
      dst = t.out + (gi / r) * t.out_stride + static_cast<int64_t>(gi % r) * D;
      inv = li > 0.0f ? 1.0f / li : 0.0f;
    }
    const __m512 vinv = _mm512_set1_ps(inv);
    for (int d = 0; d < D; d += 16) {
      const __mmask16 mk = static_cast<__mmask16>(D - d >= 16 ? 0xFFFF : (1u << (D - d)) - 1u);
      _mm512_mask_storeu_ps(dst + d, mk, _mm512_mul_ps(_mm512_loadu_ps(orow + d), vinv));
    }
  }
}

}  // namespace

int64_t amx_pack_elems(int kv_len, int head_dim) {
  const int64_t kvp = (kv_len + 31) / 32 * 32;
  return kvp * dv_of(head_dim) > kvp * dk_of(head_dim) ? kvp * dv_of(head_dim) : kvp * dk_of(head_dim);
}

PG_AMX_ATTN void amx_pack_kv(const void* k, const void* v, bool bf16, int kv_len, int head_dim, int c0, int c1,
                             uint16_t* kpack, uint16_t* vpack) {
  const int D = head_dim, Dk = dk_of(D), Dv = dv_of(D), KC = Dk / 32, DG = Dv / 16;
  const int elem = bf16 ? 2 : 4;
  const char* kb = static_cast<const char*>(k);
  const char* vb = static_cast<const char*>(v);
  for (int c = c0; c < c1; ++c) {  // 32-key chunks
    // K: B tiles of 16 k-pairs x 16 keys; dword (kk, n) = (K[n][32kc + 2kk], K[n][32kc + 2kk + 1]):
    // a 16 x 16 dword transpose of the keys' bf16 rows.
    for (int g = 0; g < 2; ++g) {
      const int key0 = c * 32 + g * 16;
      uint32_t* dst = reinterpret_cast<uint32_t*>(kpack + static_cast<int64_t>(key0 / 16) * KC * 512);
      for (int kc = 0; kc < KC; ++kc) {
        alignas(64) uint32_t rows[16][16];
        for (int n = 0; n < 16; ++n) {
          const int key = key0 + n;
          const __m512i row =
              key < kv_len ? load32_bf16(kb + (static_cast<int64_t>(key) * D + kc * 32) * elem, bf16, D - kc * 32)
                           : _mm512_setzero_si512();
          _mm512_store_si512(rows[n], row);
        }
        // Transpose via gathers: column kk of `rows` is tile row kk.
        const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32(16));
        for (int kk = 0; kk < 16; ++kk)
          _mm512_store_si512(dst + kc * 256 + kk * 16, _mm512_i32gather_epi32(idx, &rows[0][kk], 4));
      }
    }
    // V: B tiles of 16 k-pairs (keys 2kk, 2kk + 1 of the chunk) x 16 dims:
    // dword (kk, d) = (V[2kk][d], V[2kk + 1][d]): two rows interleaved.
    uint32_t* dst = reinterpret_cast<uint32_t*>(vpack + static_cast<int64_t>(c) * DG * 512);
    for (int dg = 0; dg < DG; ++dg)
      for (int kk = 0; kk < 16; ++kk) {
        const int key = c * 32 + 2 * kk;
        const int nd = D - dg * 16;
        const __m256i a = key < kv_len ? load16_bf16(vb + (static_cast<int64_t>(key) * D + dg * 16) * elem, bf16, nd)
                                       : _mm256_setzero_si256();
        const __m256i b = key + 1 < kv_len
                              ? load16_bf16(vb + (static_cast<int64_t>(key + 1) * D + dg * 16) * elem, bf16, nd)
                              : _mm256_setzero_si256();
        const __m512i pair = _mm512_or_si512(_mm512_cvtepu16_epi32(a), _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
        _mm512_store_si512(dst + dg * 256 + kk * 16, pair);
      }
  }
}

PG_AMX_ATTN void tile_amx(const Tile& t, const uint16_t* kpack, const uint16_t* vpack) {
  detail::amx_thread_init();
  const int D = t.head_dim, Dk = dk_of(D), Dv = dv_of(D);
  constexpr int R = kAmxRows, BK = kAmxBlockKeys;
  thread_local AlignedBuffer<char> scratch;
  const size_t q_bytes = static_cast<size_t>(R) * Dk * 2, s_bytes = R * BK * 4, p_bytes = R * BK * 2,
               o_bytes = static_cast<size_t>(R) * Dv * 4, m_bytes = R * 4, l_bytes = R * 64;  // each a multiple of 64
  const size_t total = q_bytes + s_bytes + p_bytes + o_bytes + m_bytes + l_bytes;
  if (scratch.size() < total) scratch.resize(total);
  char* p = scratch.data();
  Bufs b;
  b.q16 = reinterpret_cast<uint16_t*>(p);
  b.s = reinterpret_cast<float*>(p += q_bytes);
  b.p16 = reinterpret_cast<uint16_t*>(p += s_bytes);
  b.o = reinterpret_cast<float*>(p += p_bytes);
  b.m = reinterpret_cast<float*>(p += o_bytes);
  b.l = reinterpret_cast<float*>(p += m_bytes);
  for (int i0 = 0; i0 < t.rows; i0 += R) sub_tile(t, kpack, vpack, i0, t.rows - i0 < R ? t.rows - i0 : R, b);
}

}  // namespace pg::kernels::attn
