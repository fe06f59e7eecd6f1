// Many-row products on AMX tiles (bf16 in, f32 accumulate). The product is computed
// transposed, C^T[n, m] = W[n, :] . x[m, :], so that the WEIGHT is the tile "A" operand:
// an A tile is 16 consecutive weight rows x 32 columns, which is exactly the row-major
// safetensors layout, read in place from the mapped file with a stride of one row when the
// tensor is cache-line aligned (else copied per block into contiguous tiles, see below).
// The activations are repacked (once per call, pack_amx) into the "B" layout of k-pairs.
//
// Blocking: 32 weight rows x 32 activation rows per step = 2 A tiles, 2 B tiles, 4 C tiles
// (tmm0-3 accumulate, tmm4-5 hold A, tmm6-7 hold B). Each C tile is stored, transposed and
// written to y, with the int8 row scales applied there.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/aligned_buffer.h"
#include "kernels/gemm_kernels.h"

#define PG_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq")))

namespace pg::kernels::detail {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// One 32 x 32 (or smaller) block of C^T over `steps` k-steps of 32; the A tiles of k-step kc
// start at a0 / a1 + kc * a_step with rows a_stride_bytes apart. C tile (i, j) covers
// weight rows 16i.. and activation rows 16j.., at c + 16i * ldc + 16j (ldc in floats). With
// `accumulate` the tiles start from what c holds, else from zero.
template <int NA, int NB>
PG_AMX void tile_block(const uint16_t* a0, const uint16_t* a1, int64_t a_stride_bytes, int64_t a_step,
                       const uint16_t* b0, const uint16_t* b1, int64_t steps, float* c, int64_t ldc,
                       bool accumulate) {
  const int64_t cs = ldc * 4;
  float* c01 = c + 16;
  float* c10 = c + 16 * ldc;
  float* c11 = c10 + 16;
  if (accumulate) {
    _tile_loadd(0, c, cs);
    if constexpr (NB == 2) _tile_loadd(1, c01, cs);
    if constexpr (NA == 2) _tile_loadd(2, c10, cs);
    if constexpr (NA == 2 && NB == 2) _tile_loadd(3, c11, cs);
  } else {
    _tile_zero(0);
    if constexpr (NB == 2) _tile_zero(1);
    if constexpr (NA == 2) _tile_zero(2);
    if constexpr (NA == 2 && NB == 2) _tile_zero(3);
  }
  for (int64_t kc = 0; kc < steps; ++kc) {
    _tile_loadd(4, a0 + kc * a_step, a_stride_bytes);
    _tile_loadd(6, b0 + kc * 512, 64);
    if constexpr (NB == 2) _tile_loadd(7, b1 + kc * 512, 64);
    if constexpr (NA == 2) _tile_loadd(5, a1 + kc * a_step, a_stride_bytes);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NB == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (NA == 2) _tile_dpbf16ps(2, 5, 6);
    if constexpr (NA == 2 && NB == 2) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, cs);
  if constexpr (NB == 2) _tile_stored(1, c01, cs);
  if constexpr (NA == 2) _tile_stored(2, c10, cs);
  if constexpr (NA == 2 && NB == 2) _tile_stored(3, c11, cs);
}

PG_AMX void tile_block_any(int na, int nb, const uint16_t* a0, const uint16_t* a1, int64_t a_stride_bytes,
                           int64_t a_step, const uint16_t* b0, const uint16_t* b1, int64_t steps, float* c,
                           int64_t ldc, bool accumulate) {
  if (na == 2 && nb == 2) tile_block<2, 2>(a0, a1, a_stride_bytes, a_step, b0, b1, steps, c, ldc, accumulate);
  else if (na == 2) tile_block<2, 1>(a0, a1, a_stride_bytes, a_step, b0, b1, steps, c, ldc, accumulate);
  else if (nb == 2) tile_block<1, 2>(a0, a1, a_stride_bytes, a_step, b0, b1, steps, c, ldc, accumulate);
  else tile_block<1, 1>(a0, a1, a_stride_bytes, a_step, b0, b1, steps, c, ldc, accumulate);
}

// C^T rows (weight rows n .. n + rows) x columns (activation rows m .. m + cols) -> y.
inline void scatter(const float* c, int64_t ldc, int64_t n, int rows, int m, int cols, const float* scales, float* y,
                    int64_t ldy) {
  for (int t = 0; t < cols; ++t) {
    float* yr = y + static_cast<int64_t>(m + t) * ldy + n;
    if (scales)
      for (int r = 0; r < rows; ++r) yr[r] = c[r * ldc + t] * scales[n + r];
    else
      for (int r = 0; r < rows; ++r) yr[r] = c[r * ldc + t];
  }
}

// K is split into chunks of about this many columns when longer, so that the chunk of packed
// activations a thread sweeps over all its weight rows (M x chunk bf16) stays in L2.
constexpr int64_t kChunkSteps = 64;  // x 32 columns

}  // namespace

PG_AMX void amx_thread_init() {
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.rows[i] = 16;
    cfg.colsb[i] = 64;
  }
  // GCC 12 does not see _tile_loadconfig as reading the configuration and drops the stores
  // above as dead; an asm memory operand makes them happen.
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg) : "memory");
}

PG_AMX void gemm_amx_bf16(const PackedActivations& x, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                          int64_t ldy) {
  amx_thread_init();
  const int64_t Kp = x.Kp, KC = Kp / 32;
  const int M = x.M, MB = (M + 15) / 16;
  const float* scales = w.format == WeightFormat::Int8 ? static_cast<const float*>(w.scales) : nullptr;
  // bf16 rows are read in place when each tile row is one cache line. Safetensors aligns
  // tensors to 8 bytes only; such a weight is faster copied block by block into contiguous
  // tiles (measured ~12% slower than in place) than loaded across two cache lines by every
  // tile load (~40% slower). Other formats are widened into the same tile layout.
  const bool direct = w.format == WeightFormat::BF16 && w.cols == Kp && cache_line_aligned(w.data);
  // Chunks of k-steps: one when K is short, else equal chunks of at most ~kChunkSteps.
  const int64_t chunks = KC <= 2 * kChunkSteps ? 1 : (KC + kChunkSteps - 1) / kChunkSteps;
  const int64_t chunk = (KC + chunks - 1) / chunks;
  // With one chunk, each 32 x 32 block of C^T lives in a local buffer; with several, the
  // thread's whole C^T range accumulates in `acc` across the chunks.
  const int64_t Mp = static_cast<int64_t>(MB) * 16;
  AlignedBuffer<float> acc(chunks > 1 ? ((n1 - n0 + 31) / 32 * 32) * Mp : 0);
  AlignedBuffer<uint16_t> buf;  // weight tiles, when the rows cannot be read in place
  alignas(64) float local[32 * 32];
  for (int64_t c0 = 0; c0 < KC; c0 += chunk) {
    const int64_t steps = KC - c0 < chunk ? KC - c0 : chunk;
    const bool first = c0 == 0, last = c0 + steps == KC;
    for (int64_t n = n0; n < n1; n += 32) {
      const int rows = static_cast<int>(n1 - n < 32 ? n1 - n : 32);
      const int na = rows > 16 ? 2 : 1;
      const uint16_t *a, *a1;
      int64_t stride, a_step;
      if (direct && rows == 16 * na) {  // the matrix rows, one tile row per cache line
        a = static_cast<const uint16_t*>(w.data) + n * Kp + c0 * 32;
        a1 = a + 16 * Kp;
        stride = Kp * 2;
        a_step = 32;
      } else {  // contiguous 1 KiB tiles
        buf.resize(32 * chunk * 32);
        weight_rows_bf16(w, n, rows, 16 * na, c0 * 32, steps * 32, buf.data(), WeightLayout::AmxTiles);
        a = buf.data();
        a1 = a + steps * 512;
        stride = 64;
        a_step = 512;
      }
      for (int mb = 0; mb < MB; mb += 2) {
        const int nb = MB - mb >= 2 ? 2 : 1;
        const uint16_t* b0 = x.data + (static_cast<int64_t>(mb) * KC + c0) * 512;
        const uint16_t* b1 = b0 + KC * 512;
        float* c = chunks > 1 ? acc.data() + (n - n0) * Mp + mb * 16 : local;
        const int64_t ldc = chunks > 1 ? Mp : 32;
        tile_block_any(na, nb, a, a1, stride, a_step, b0, b1, steps, c, ldc, !first);
        if (!last) continue;
        const int m = mb * 16;
        const int cols = M - m < 32 ? M - m : 32;
        scatter(c, ldc, n, rows, m, cols, scales, y, ldy);
      }
    }
  }
}

}  // namespace pg::kernels::detail
