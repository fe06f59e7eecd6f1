// The body of one attention tile kernel, written once over a small vector vocabulary and
// compiled once per ISA: attention_avx512.cpp and attention_avx2.cpp each define, inside
// namespace pg::kernels::attn::{anonymous}, the target attribute PG_ATTN_T, the vector type V,
// its lane count kL, the primitives used below (vzero, vset1, vload, vload_part, vload_bf16,
// vload_bf16_part, vstore, vbcast, vfmadd, vmul, vadd, vsub, vmax, vneg_inf, vsafe_max,
// vmask_range, vexp, vtanh, vreduce_add) and the tile constants, then include this file with
// PG_ATTN_TILE_FN / PG_ATTN_MATH_FN naming the two exported functions. No include guard on
// purpose.
//
// Everything here has internal linkage (anonymous namespace) and carries the target attribute;
// nothing from the standard library is called or instantiated, so no out-of-line copy of a
// library function compiled for AVX-512 can be picked by the linker for generic callers.
//
// The algorithm (one tile = the rows i = (t, h) of one query block for the r q heads of one kv
// head, against the keys [key_lo, key_hi)), per key block of kBlockKeys keys:
//   S^T[j][i] = sum_d K[j][d] * Qt[d][i]        (outer products: broadcast K, vector over rows;
//                                                dot products over d when there are few rows)
//   soft-cap, mask (rows' contiguous ranges), per row: m' = max(m, max_j S), alpha = e^(m - m'),
//   P = e^(S - m'), l = alpha l + sum_j P        (all vertical: lanes are rows)
//   O[i][:] = alpha_i O[i][:] + sum_j P^T[j][i] V[j][:]   (broadcast P, vector over head_dim)
// and finally O / l (or O, m, l for the split-key merge). Q is pre-multiplied by the scale.
namespace pg::kernels::attn {
namespace {

// ---- scores, outer-product form: S^T[j0 .. j0+JT)[c0 .. c0 + RV*kL)
template <int JT, int RV>
PG_ATTN_T inline void qk_outer(const float* kp, int D, const float* qt, int Mp, int c0, float* s, int j0) {
  V acc[JT][RV];
#pragma GCC unroll 8
  for (int a = 0; a < JT; ++a)
#pragma GCC unroll 8
    for (int b = 0; b < RV; ++b) acc[a][b] = vzero();
  const float* kr = kp + static_cast<int64_t>(j0) * D;
  for (int d = 0; d < D; ++d) {
    const float* qrow = qt + static_cast<int64_t>(d) * Mp + c0;
    V qv[RV];
#pragma GCC unroll 8
    for (int b = 0; b < RV; ++b) qv[b] = vload(qrow + b * kL);
#pragma GCC unroll 8
    for (int a = 0; a < JT; ++a) {
      const V kv = vbcast(kr + static_cast<int64_t>(a) * D + d);
#pragma GCC unroll 8
      for (int b = 0; b < RV; ++b) acc[a][b] = vfmadd(kv, qv[b], acc[a][b]);
    }
  }
#pragma GCC unroll 8
  for (int a = 0; a < JT; ++a)
#pragma GCC unroll 8
    for (int b = 0; b < RV; ++b) vstore(s + static_cast<int64_t>(j0 + a) * Mp + c0 + b * kL, acc[a][b]);
}

template <int JT>
PG_ATTN_T inline void qk_outer_rows(const float* kp, int D, const float* qt, int Mp, float* s, int j0) {
  const int nv = Mp / kL;
  int c = 0;
  for (; c + kQkVecs <= nv; c += kQkVecs) qk_outer<JT, kQkVecs>(kp, D, qt, Mp, c * kL, s, j0);
  switch (nv - c) {
    case 1: qk_outer<JT, 1>(kp, D, qt, Mp, c * kL, s, j0); break;
    case 2: qk_outer<JT, 2>(kp, D, qt, Mp, c * kL, s, j0); break;
    case 3: qk_outer<JT, 3>(kp, D, qt, Mp, c * kL, s, j0); break;
    default: break;
  }
}

PG_ATTN_T inline void qk_outer_block(const float* kp, int n, int D, const float* qt, int Mp, float* s) {
  int j = 0;
  for (; j + kQkKeys <= n; j += kQkKeys) qk_outer_rows<kQkKeys>(kp, D, qt, Mp, s, j);
  for (; j < n; ++j) qk_outer_rows<1>(kp, D, qt, Mp, s, j);
}

// ---- scores, dot-product form (few rows): S^T[j][i0 .. i0+IR) for one key row kr
template <int IR>
PG_ATTN_T inline void qk_dot(const float* kr, int D, const float* qs, int Dp, int i0, float* srow) {
  V acc[IR];
#pragma GCC unroll 8
  for (int a = 0; a < IR; ++a) acc[a] = vzero();
  int d = 0;
  for (; d + kL <= D; d += kL) {
    const V kv = vload(kr + d);
#pragma GCC unroll 8
    for (int a = 0; a < IR; ++a) acc[a] = vfmadd(vload(qs + static_cast<int64_t>(i0 + a) * Dp + d), kv, acc[a]);
  }
  if (d < D) {  // qs is zero-padded to Dp, the key row is not
    const V kv = vload_part(kr + d, D - d);
#pragma GCC unroll 8
    for (int a = 0; a < IR; ++a) acc[a] = vfmadd(vload(qs + static_cast<int64_t>(i0 + a) * Dp + d), kv, acc[a]);
  }
#pragma GCC unroll 8
  for (int a = 0; a < IR; ++a) srow[i0 + a] = vreduce_add(acc[a]);
}

PG_ATTN_T inline void qk_dot_block(const float* kp, int n, int D, const float* qs, int M, int Dp, int Mp,
                                   float* s) {
  for (int j = 0; j < n; ++j) {
    const float* kr = kp + static_cast<int64_t>(j) * D;
    float* srow = s + static_cast<int64_t>(j) * Mp;
    int i = 0;
    for (; i + 4 <= M; i += 4) qk_dot<4>(kr, D, qs, Dp, i, srow);
    switch (M - i) {
      case 1: qk_dot<1>(kr, D, qs, Dp, i, srow); break;
      case 2: qk_dot<2>(kr, D, qs, Dp, i, srow); break;
      case 3: qk_dot<3>(kr, D, qs, Dp, i, srow); break;
      default: break;
    }
  }
}

// ---- online softmax over one block of n keys, lanes = rows
PG_ATTN_T inline void softmax_block(float* s, int n, int Mp, int kb, bool masked, const int* first,
                                    const int* last, float softcap, float* m, float* l, float* alpha) {
  const bool capped = softcap > 0.0f;
  const V cap = vset1(softcap);
  const V inv_cap = vset1(capped ? 1.0f / softcap : 0.0f);
  for (int c = 0; c < Mp; c += kL) {
    V mx = vneg_inf();
    for (int j = 0; j < n; ++j) {
      float* sp = s + static_cast<int64_t>(j) * Mp + c;
      V x = vload(sp);
      if (capped) x = vmul(cap, vtanh(vmul(x, inv_cap)));
      if (masked) x = vmask_range(x, first + c, last + c, kb + j);
      if (capped || masked) vstore(sp, x);
      mx = vmax(mx, x);
    }
    const V mo = vload(m + c);
    const V mn = vmax(mo, mx);
    const V ms = vsafe_max(mn);  // -inf (nothing seen yet) -> 0, so no inf - inf
    const V a = vexp(vsub(mo, ms));
    V sum = vzero();
    for (int j = 0; j < n; ++j) {
      float* sp = s + static_cast<int64_t>(j) * Mp + c;
      const V p = vexp(vsub(vload(sp), ms));
      vstore(sp, p);
      sum = vadd(sum, p);
    }
    vstore(l + c, vfmadd(vload(l + c), a, sum));
    vstore(m + c, mn);
    vstore(alpha + c, a);
  }
}

// ---- O[i0 .. i0+IR)[d0 .. d0 + DV*kL) = alpha O + P^T V
template <int IR, int DV>
PG_ATTN_T inline void pv_tile(const float* p, int Mp, const float* vp, int vstride, int n, float* o, int Dp, int i0,
                              int d0, const float* alpha) {
  V acc[IR][DV];
#pragma GCC unroll 8
  for (int a = 0; a < IR; ++a) {
    const V al = vbcast(alpha + i0 + a);
#pragma GCC unroll 8
    for (int b = 0; b < DV; ++b) acc[a][b] = vmul(vload(o + static_cast<int64_t>(i0 + a) * Dp + d0 + b * kL), al);
  }
  for (int j = 0; j < n; ++j) {
    const float* vr = vp + static_cast<int64_t>(j) * vstride + d0;
    V vv[DV];
#pragma GCC unroll 8
    for (int b = 0; b < DV; ++b) vv[b] = vload(vr + b * kL);
    const float* pr = p + static_cast<int64_t>(j) * Mp + i0;
#pragma GCC unroll 8
    for (int a = 0; a < IR; ++a) {
      const V pa = vbcast(pr + a);
#pragma GCC unroll 8
      for (int b = 0; b < DV; ++b) acc[a][b] = vfmadd(pa, vv[b], acc[a][b]);
    }
  }
#pragma GCC unroll 8
  for (int a = 0; a < IR; ++a)
#pragma GCC unroll 8
    for (int b = 0; b < DV; ++b) vstore(o + static_cast<int64_t>(i0 + a) * Dp + d0 + b * kL, acc[a][b]);
}

template <int DV>
PG_ATTN_T inline void pv_rows(const float* p, int Mp, const float* vp, int vstride, int n, float* o, int Dp, int M,
                              int d0, const float* alpha) {
  int i = 0;
  for (; i + kPvRows <= M; i += kPvRows) pv_tile<kPvRows, DV>(p, Mp, vp, vstride, n, o, Dp, i, d0, alpha);
  switch (M - i) {
    case 1: pv_tile<1, DV>(p, Mp, vp, vstride, n, o, Dp, i, d0, alpha); break;
    case 2: pv_tile<2, DV>(p, Mp, vp, vstride, n, o, Dp, i, d0, alpha); break;
    case 3: pv_tile<3, DV>(p, Mp, vp, vstride, n, o, Dp, i, d0, alpha); break;
    case 4: pv_tile<4, DV>(p, Mp, vp, vstride, n, o, Dp, i, d0, alpha); break;
    case 5: pv_tile<5, DV>(p, Mp, vp, vstride, n, o, Dp, i, d0, alpha); break;
    default: break;
  }
}

// d chunks outer, row tiles inner: one chunk of V (n x DV vectors) stays in L1 across rows.
PG_ATTN_T inline void pv_block(const float* p, int Mp, const float* vp, int vstride, int n, float* o, int Dp, int M,
                               const float* alpha) {
  const int nv = Dp / kL;
  int b = 0;
  for (; b + kPvVecs <= nv; b += kPvVecs) pv_rows<kPvVecs>(p, Mp, vp, vstride, n, o, Dp, M, b * kL, alpha);
  switch (nv - b) {
    case 1: pv_rows<1>(p, Mp, vp, vstride, n, o, Dp, M, b * kL, alpha); break;
    case 2: pv_rows<2>(p, Mp, vp, vstride, n, o, Dp, M, b * kL, alpha); break;
    case 3: pv_rows<3>(p, Mp, vp, vstride, n, o, Dp, M, b * kL, alpha); break;
    default: break;
  }
}

// ---- K / V blocks into f32 scratch
PG_ATTN_T inline void widen_bf16(const uint16_t* src, int64_t count, float* dst) {  // dst has kL slack
  int64_t i = 0;
  for (; i + kL <= count; i += kL) vstore(dst + i, vload_bf16(src + i));
  if (i < count) vstore(dst + i, vload_bf16_part(src + i, static_cast<int>(count - i)));
}

PG_ATTN_T inline void pad_rows_f32(const float* src, int n, int D, float* dst, int Dp) {
  for (int j = 0; j < n; ++j) {
    const float* sr = src + static_cast<int64_t>(j) * D;
    float* dr = dst + static_cast<int64_t>(j) * Dp;
    int d = 0;
    for (; d + kL <= D; d += kL) vstore(dr + d, vload(sr + d));
    for (; d < Dp; d += kL) vstore(dr + d, d < D ? vload_part(sr + d, D - d) : vzero());
  }
}

PG_ATTN_T inline void pad_rows_bf16(const uint16_t* src, int n, int D, float* dst, int Dp) {
  for (int j = 0; j < n; ++j) {
    const uint16_t* sr = src + static_cast<int64_t>(j) * D;
    float* dr = dst + static_cast<int64_t>(j) * Dp;
    int d = 0;
    for (; d + kL <= D; d += kL) vstore(dr + d, vload_bf16(sr + d));
    for (; d < Dp; d += kL) vstore(dr + d, d < D ? vload_bf16_part(sr + d, D - d) : vzero());
  }
}

}  // namespace

PG_ATTN_T void PG_ATTN_TILE_FN(const Tile& t, const Scratch& sc) {
  const int M = t.rows, D = t.head_dim, r = t.r;
  const int Mp = (M + kRowAlign - 1) / kRowAlign * kRowAlign;
  const int Dp = (D + kRowAlign - 1) / kRowAlign * kRowAlign;
  const bool dot = M <= kDotMaxRows;
  const float scale = t.scale;

  // Prologue: scaled queries (transposed, or as rows for the dot form), running state.
  if (dot) {
    for (int i = 0; i < M; ++i) {
      const float* qr = t.q + (i / r) * t.q_stride + static_cast<int64_t>(i % r) * D;
      float* dst = sc.qs + static_cast<int64_t>(i) * Dp;
      for (int d = 0; d < D; ++d) dst[d] = qr[d] * scale;
      for (int d = D; d < Dp; ++d) dst[d] = 0.0f;
    }
    for (int j = 0; j < kBlockKeys; ++j)  // lanes of padding rows are never written by qk_dot
      for (int i = M; i < Mp; ++i) sc.s[static_cast<int64_t>(j) * Mp + i] = 0.0f;
  } else {
    for (int i = 0; i < M; ++i) {
      const float* qr = t.q + (i / r) * t.q_stride + static_cast<int64_t>(i % r) * D;
      for (int d = 0; d < D; ++d) sc.qt[static_cast<int64_t>(d) * Mp + i] = qr[d] * scale;
    }
    for (int d = 0; d < D; ++d)
      for (int i = M; i < Mp; ++i) sc.qt[static_cast<int64_t>(d) * Mp + i] = 0.0f;
  }
  for (int i = 0; i < Mp; ++i) {
    sc.m[i] = -__builtin_inff();
    sc.l[i] = 0.0f;
  }
  for (int64_t x = 0; x < static_cast<int64_t>(M) * Dp; ++x) sc.o[x] = 0.0f;

  const float* k32 = static_cast<const float*>(t.k);
  const float* v32 = static_cast<const float*>(t.v);
  const uint16_t* k16 = static_cast<const uint16_t*>(t.k);
  const uint16_t* v16 = static_cast<const uint16_t*>(t.v);
  for (int kb = t.key_lo; kb < t.key_hi; kb += kBlockKeys) {
    const int n = t.key_hi - kb < kBlockKeys ? t.key_hi - kb : kBlockKeys;
    const float* kp;
    if (t.bf16) {
      widen_bf16(k16 + static_cast<int64_t>(kb) * D, static_cast<int64_t>(n) * D, sc.kf);
      kp = sc.kf;
    } else {
      kp = k32 + static_cast<int64_t>(kb) * D;
    }
    if (dot)
      qk_dot_block(kp, n, D, sc.qs, M, Dp, Mp, sc.s);
    else
      qk_outer_block(kp, n, D, sc.qt, Mp, sc.s);

    bool masked = false;
    for (int i = 0; i < M; ++i)
      if (t.first[i] > kb || t.last[i] < kb + n) {
        masked = true;
        break;
      }
    softmax_block(sc.s, n, Mp, kb, masked, t.first, t.last, t.softcap, sc.m, sc.l, sc.alpha);

    const float* vp;
    int vstride;
    if (!t.bf16 && D == Dp) {
      vp = v32 + static_cast<int64_t>(kb) * D;
      vstride = D;
    } else {
      if (t.bf16)
        pad_rows_bf16(v16 + static_cast<int64_t>(kb) * D, n, D, sc.vf, Dp);
      else
        pad_rows_f32(v32 + static_cast<int64_t>(kb) * D, n, D, sc.vf, Dp);
      vp = sc.vf;
      vstride = Dp;
    }
    pv_block(sc.s, Mp, vp, vstride, n, sc.o, Dp, M, sc.alpha);
  }

  // Epilogue.
  for (int i = 0; i < M; ++i) {
    const float* orow = sc.o + static_cast<int64_t>(i) * Dp;
    if (t.part_o) {
      float* dst = t.part_o + static_cast<int64_t>(i) * D;
      for (int d = 0; d < D; ++d) dst[d] = orow[d];
      t.part_m[i] = sc.m[i];
      t.part_l[i] = sc.l[i];
    } else {
      const float inv = sc.l[i] > 0.0f ? 1.0f / sc.l[i] : 0.0f;
      float* dst = t.out + (i / r) * t.out_stride + static_cast<int64_t>(i % r) * D;
      for (int d = 0; d < D; ++d) dst[d] = orow[d] * inv;
    }
  }
}

PG_ATTN_T void PG_ATTN_MATH_FN(const float* x, float* exp_out, float* tanh_out, int n) {
  alignas(64) float buf[kL];
  for (int i = 0; i < n; i += kL) {
    const int c = n - i < kL ? n - i : kL;
    const V xv = vload_part(x + i, c);
    vstore(buf, vexp(xv));
    for (int u = 0; u < c; ++u) exp_out[i + u] = buf[u];
    vstore(buf, vtanh(xv));
    for (int u = 0; u < c; ++u) tanh_out[i + u] = buf[u];
  }
}

}  // namespace pg::kernels::attn
