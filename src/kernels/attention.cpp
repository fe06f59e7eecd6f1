// Attention: the mask's key ranges, the reference algorithm, and the dispatcher of the fast
// paths (query blocks x kv heads x key splits over OpenMP threads, per-thread scratch, the
// merge of split-key partial results). The tiles themselves are in attention_tile.h.
#include "kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/aligned_buffer.h"
#include "kernels/attention_impl.h"
#include "kernels/ops.h"
#include "paligemma/backend.h"
#include "paligemma/error.h"

namespace pg::kernels {

void attention_key_range(int q, int kv_len, const AttentionMask& mask, int* first, int* last) {
  if (!mask.causal) {
    *first = 0;
    *last = kv_len;
    return;
  }
  int lo = 0, hi = q + 1;
  if (mask.window > 0) lo = std::max(0, q - mask.window + 1);
  if (q < mask.prefix_len) {  // inside the bidirectional block: the block is a superset
    lo = 0;
    hi = std::max(hi, mask.prefix_len);
  }
  *first = lo;
  *last = std::min(hi, kv_len);
}

namespace {

void check_args(const KVView& kv, const AttentionShape& shape) {
  if (kv.dtype != DType::F32 && kv.dtype != DType::BF16)
    throw Error(std::string("attention: K/V must be F32 or BF16, got ") + dtype_name(kv.dtype));
  if (shape.num_kv_heads <= 0 || shape.num_heads % shape.num_kv_heads != 0)
    throw Error("attention: num_heads (" + std::to_string(shape.num_heads) + ") must be a multiple of num_kv_heads (" +
                std::to_string(shape.num_kv_heads) + ")");
}

// Key row `j` of kv head `g` as f32: the stored row itself, or widened into `buf`.
const float* kv_row(const void* base, DType dtype, int g, int stride, int j, int D, float* buf) {
  const int64_t off = (static_cast<int64_t>(g) * stride + j) * D;
  if (dtype == DType::F32) return static_cast<const float*>(base) + off;
  const uint16_t* src = static_cast<const uint16_t*>(base) + off;
  for (int d = 0; d < D; ++d) buf[d] = bf16_to_f32(src[d]);
  return buf;
}

}  // namespace

void attention_reference(const float* q, int T, int q_begin, const KVView& kv, int kv_len,
                         const AttentionShape& shape, const AttentionMask& mask, float* out) {
  check_args(kv, shape);
  const int H = shape.num_heads;
  const int D = shape.head_dim;
  const int group = H / shape.num_kv_heads;
  const int64_t row_stride = static_cast<int64_t>(H) * D;
#pragma omp parallel
  {
    std::vector<float> scores(std::max(kv_len, 1)), kbuf(D), vbuf(D);
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int h = 0; h < H; ++h) {
      for (int t = 0; t < T; ++t) {
        const int kvh = h / group;
        const float* qv = q + t * row_stride + static_cast<int64_t>(h) * D;
        int first, last;
        attention_key_range(q_begin + t, kv_len, mask, &first, &last);
        const int n = last - first;
        float* o = out + t * row_stride + static_cast<int64_t>(h) * D;
        if (n <= 0) {
          std::fill(o, o + D, 0.0f);
          continue;
        }
        for (int j = 0; j < n; ++j) {
          const float* kr = kv_row(kv.k, kv.dtype, kvh, kv.stride, first + j, D, kbuf.data());
          float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
          for (int d = 0; d < D; ++d) acc += qv[d] * kr[d];
          scores[j] = acc * shape.scale;
        }
        if (shape.softcap > 0.0f) soft_cap(scores.data(), n, shape.softcap);
        softmax(scores.data(), n);
        std::fill(o, o + D, 0.0f);
        for (int j = 0; j < n; ++j) {
          const float p = scores[j];
          const float* vr = kv_row(kv.v, kv.dtype, kvh, kv.stride, first + j, D, vbuf.data());
#pragma omp simd
          for (int d = 0; d < D; ++d) o[d] += p * vr[d];
        }
      }
    }
  }
}

namespace {
int amx_min_rows = 16;  // query positions from which the AMX tile is used (tests lower it)
}  // namespace

namespace attn {

void set_amx_min_rows_for_testing(int rows) { amx_min_rows = rows; }

size_t scratch_floats(int rows, int head_dim) {
  const size_t Mp = round_up(rows, kRowAlign), Dp = round_up(head_dim, kRowAlign), D = head_dim;
  auto a = [](size_t n) { return (n + 16 + 15) / 16 * 16; };  // kL slack, 64-byte multiple
  return a(D * Mp) + a(Mp * Dp) + a(kBlockKeys * Mp) + a(kBlockKeys * D) + a(kBlockKeys * Dp) + a(Mp * Dp) +
         5 * a(Mp);
}

Scratch scratch_layout(float* base, int rows, int head_dim) {
  const size_t Mp = round_up(rows, kRowAlign), Dp = round_up(head_dim, kRowAlign), D = head_dim;
  auto a = [](size_t n) { return (n + 16 + 15) / 16 * 16; };
  Scratch s;
  float* p = base;
  auto take = [&](size_t n) {
    float* r = p;
    p += a(n);
    return r;
  };
  s.qt = take(D * Mp);
  s.qs = take(Mp * Dp);
  s.s = take(kBlockKeys * Mp);
  s.kf = take(kBlockKeys * D);
  s.vf = take(kBlockKeys * Dp);
  s.o = take(Mp * Dp);
  s.m = take(Mp);
  s.l = take(Mp);
  s.alpha = take(Mp);
  s.first = reinterpret_cast<int*>(take(Mp));
  s.last = reinterpret_cast<int*>(take(Mp));
  return s;
}

}  // namespace attn

namespace {

using TileFn = void (*)(const attn::Tile&, const attn::Scratch&);

// Per-thread scratch that survives between calls (OpenMP keeps its threads), 64-byte aligned.
float* thread_scratch(size_t floats) {
  thread_local std::vector<float> buf;
  if (buf.size() < floats + 16) buf.assign(floats + 16, 0.0f);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((p + 63) & ~static_cast<uintptr_t>(63));
}

// Rows per tile (query positions x the r heads of a group): 64, or 32 for wide heads so the
// transposed queries (head_dim x rows) stay in L1.
int tile_rows(int head_dim) { return head_dim >= 160 ? 32 : 64; }

}  // namespace

void attention(const float* q, int T, int q_begin, const KVView& kv, int kv_len, const AttentionShape& shape,
               const AttentionMask& mask, float* out) {
  const KernelPath path = kernel_path();
  TileFn tile_fn = nullptr;
  if (path == KernelPath::Avx512 || path == KernelPath::Amx)
    tile_fn = attn::tile_avx512;
  else if (path == KernelPath::Avx2)
    tile_fn = attn::tile_avx2;
  // AMX tiles only in the bf16 mode (they round q, k, v and the probabilities to bf16; the f32
  // mode is bound to transformers at 1e-4) and with enough rows to fill 16-row tiles: decode
  // and short chunks stay on the f32 AVX-512 tile.
  const bool amx =
      path == KernelPath::Amx && precision() == Precision::BF16 && T >= amx_min_rows && cpu_features().avx512_bf16;
  if (!tile_fn) {
    attention_reference(q, T, q_begin, kv, kv_len, shape, mask, out);
    return;
  }
  check_args(kv, shape);
  if (T <= 0) return;
  const int H = shape.num_heads, KVH = shape.num_kv_heads, D = shape.head_dim, r = H / KVH;
  const int64_t row_stride = static_cast<int64_t>(H) * D;
  const size_t elem = kv.dtype == DType::BF16 ? 2 : 4;

  // Query blocks of Bq positions (Bq * r rows per tile) and the union of their key ranges.
  const int Bq = std::min(T, std::max(1, (amx ? attn::kAmxRows : tile_rows(D)) / r));
  const int M = Bq * r;
  const int nq = (T + Bq - 1) / Bq;
  std::vector<int> qlo(nq), qhi(nq);
  int64_t work = 0;  // visible (query, key) pairs, per q head
  for (int b = 0; b < nq; ++b) {
    int lo = INT_MAX, hi = INT_MIN;
    for (int t = b * Bq; t < std::min(T, (b + 1) * Bq); ++t) {
      int f, l;
      attention_key_range(q_begin + t, kv_len, mask, &f, &l);
      if (l > f) {
        lo = std::min(lo, f);
        hi = std::max(hi, l);
        work += l - f;
      }
    }
    if (lo >= hi) lo = hi = 0;
    qlo[b] = lo;
    qhi[b] = hi;
  }

  // Too few (kv head, query block) items for the threads (decode): split each block's keys into
  // chunks of whole key blocks, computed independently and merged (max, sum, acc) afterwards.
  // Below ~0.5 MFLOP the fork/join costs more than it saves: one thread, no split.
  const int nth = omp_get_max_threads();
  const bool threaded = nth > 1 && work * H * D * 4 > 500000;
  const int base = KVH * nq;
  int splits = 1;
  if (threaded && base < 2 * nth) {
    int longest = 0;
    for (int b = 0; b < nq; ++b) longest = std::max(longest, qhi[b] - qlo[b]);
    const int blocks = (longest + attn::kBlockKeys - 1) / attn::kBlockKeys;
    splits = std::max(1, std::min((2 * nth + base - 1) / base, blocks));
  }
  const int items = base * splits;
  std::vector<float> part_o, part_ml;
  if (splits > 1) {
    part_o.resize(static_cast<size_t>(items) * M * D);
    part_ml.resize(static_cast<size_t>(items) * M * 2);
  }
  const bool parallel = threaded && items > 1;
  const size_t scratch_size = attn::scratch_floats(M, D);

  // AMX: K and V of every kv head packed once into tile layout (the 32-key chunks covering
  // the keys any query block visits), shared by all the query blocks of the head.
  thread_local AlignedBuffer<uint16_t> kpack, vpack;
  int64_t pack_elems = 0;
  int chunk_lo = 0, chunk_hi = 0;
  if (amx) {
    int lo = INT_MAX, hi = 0;
    for (int b = 0; b < nq; ++b)
      if (qhi[b] > qlo[b]) {
        lo = std::min(lo, qlo[b]);
        hi = std::max(hi, qhi[b]);
      }
    if (hi > 0) {
      chunk_lo = lo / 32;
      chunk_hi = (hi + 31) / 32;
    }
    pack_elems = attn::amx_pack_elems(kv_len, D);
    const size_t need = static_cast<size_t>(pack_elems) * KVH;
    if (kpack.size() < need) {
      kpack.resize(need);
      vpack.resize(need);
    }
  }
  // Raw pointers: inside the parallel region the thread_local names would be each thread's own.
  uint16_t* const kp = amx ? kpack.data() : nullptr;
  uint16_t* const vp = amx ? vpack.data() : nullptr;
  constexpr int kPackChunks = 8;  // 32-key chunks per packing work item
  const int pack_per_head = (chunk_hi - chunk_lo + kPackChunks - 1) / kPackChunks;

#pragma omp parallel if (parallel)
  {
    if (amx) {
#pragma omp for schedule(dynamic, 1)
      for (int w = 0; w < KVH * pack_per_head; ++w) {
        const int g = w / pack_per_head, c0 = chunk_lo + (w % pack_per_head) * kPackChunks;
        const int64_t head_off = static_cast<int64_t>(g) * kv.stride * D * static_cast<int64_t>(elem);
        attn::amx_pack_kv(static_cast<const char*>(kv.k) + head_off, static_cast<const char*>(kv.v) + head_off,
                          kv.dtype == DType::BF16, kv_len, D, c0, std::min(chunk_hi, c0 + kPackChunks),
                          kp + g * pack_elems, vp + g * pack_elems);
      }
    }
    const attn::Scratch sc = attn::scratch_layout(thread_scratch(scratch_size), M, D);
    const int Mp = attn::round_up(M, attn::kRowAlign);
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < items; ++it) {
      // kv head major (its K/V stay in cache across consecutive items), latest query blocks
      // first within a head: under a causal mask they see the most keys.
      const int grp = it / splits, s = it % splits;
      const int g = grp / nq, b = nq - 1 - grp % nq;
      const int t0 = b * Bq, tn = std::min(Bq, T - t0);
      const int nblk = (qhi[b] - qlo[b] + attn::kBlockKeys - 1) / attn::kBlockKeys;
      const int per = (nblk + splits - 1) / splits;
      const int c_lo = std::min(qhi[b], qlo[b] + s * per * attn::kBlockKeys);
      const int c_hi = std::min(qhi[b], qlo[b] + (s + 1) * per * attn::kBlockKeys);
      int key_lo = INT_MAX, key_hi = INT_MIN;
      for (int t = 0; t < tn; ++t) {
        int f, l;
        attention_key_range(q_begin + t0 + t, kv_len, mask, &f, &l);
        f = std::max(f, c_lo);
        l = std::min(l, c_hi);
        if (l <= f) f = l = c_lo;  // nothing visible in this chunk
        else {
          key_lo = std::min(key_lo, f);
          key_hi = std::max(key_hi, l);
        }
        for (int h = 0; h < r; ++h) {
          sc.first[t * r + h] = f;
          sc.last[t * r + h] = l;
        }
      }
      for (int i = tn * r; i < Mp; ++i) sc.first[i] = sc.last[i] = 0;
      if (key_lo >= key_hi) key_lo = key_hi = 0;

      attn::Tile tile;
      tile.q = q + t0 * row_stride + static_cast<int64_t>(g) * r * D;
      tile.q_stride = row_stride;
      tile.rows = tn * r;
      tile.r = r;
      tile.head_dim = D;
      tile.first = sc.first;
      tile.last = sc.last;
      tile.key_lo = key_lo;
      tile.key_hi = key_hi;
      const int64_t head_off = static_cast<int64_t>(g) * kv.stride * D * static_cast<int64_t>(elem);
      tile.k = static_cast<const char*>(kv.k) + head_off;
      tile.v = static_cast<const char*>(kv.v) + head_off;
      tile.bf16 = kv.dtype == DType::BF16;
      tile.scale = shape.scale;
      tile.softcap = shape.softcap;
      if (splits > 1) {
        tile.part_o = part_o.data() + static_cast<size_t>(it) * M * D;
        tile.part_m = part_ml.data() + static_cast<size_t>(it) * M * 2;
        tile.part_l = tile.part_m + M;
      } else {
        tile.out = out + t0 * row_stride + static_cast<int64_t>(g) * r * D;
        tile.out_stride = row_stride;
      }
      if (amx)
        attn::tile_amx(tile, kp + g * pack_elems, vp + g * pack_elems);
      else
        tile_fn(tile, sc);
    }

    if (splits > 1) {  // merge: out = sum_s e^(m_s - m) o_s / sum_s e^(m_s - m) l_s
#pragma omp for schedule(static)
      for (int w = 0; w < base * M; ++w) {
        const int i = w % M, grp = w / M;  // grp = item / splits, as above
        const int g = grp / nq, b = nq - 1 - grp % nq;
        const int t0 = b * Bq;
        if (i >= std::min(Bq, T - t0) * r) continue;
        float* dst = out + (t0 + i / r) * row_stride + static_cast<int64_t>(g * r + i % r) * D;
        float mx = -INFINITY;
        for (int s = 0; s < splits; ++s) mx = std::max(mx, part_ml[(static_cast<size_t>(grp) * splits + s) * M * 2 + i]);
        std::fill(dst, dst + D, 0.0f);
        if (mx == -INFINITY) continue;
        float lsum = 0.0f;
        for (int s = 0; s < splits; ++s) {
          const size_t item = static_cast<size_t>(grp) * splits + s;
          const float ms = part_ml[item * M * 2 + i];
          if (ms == -INFINITY) continue;
          const float wgt = std::exp(ms - mx);
          lsum += wgt * part_ml[item * M * 2 + M + i];
          const float* o = part_o.data() + (item * M + i) * D;
          for (int d = 0; d < D; ++d) dst[d] += wgt * o[d];
        }
        const float inv = 1.0f / lsum;
        for (int d = 0; d < D; ++d) dst[d] *= inv;
      }
    }
  }
}

}  // namespace pg::kernels
