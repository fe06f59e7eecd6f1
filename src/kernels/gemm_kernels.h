#pragma once
// The per-path matrix-product kernels behind kernels::matmul (src/kernels/matmul.cpp picks
// one). Each computes y[m, n] = sum_k x[m, k] * W[n, k] for the weight rows [n0, n1) and all
// M rows of x, on the calling thread only: the dispatcher splits the rows across threads.
// y has row stride ldy (>= N); bias is added by the dispatcher.
#include <cstdint>
#include <vector>

#include "kernels/weight_matrix.h"

namespace pg::kernels::detail {

// Plain C++ loops, f32 (the yardstick).
void gemm_reference(const float* x, int M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y, int64_t ldy);

// Few rows of x (M <= kSmallRows): read each weight once, widen it, dot it with every row of
// x in f32. Bound by memory bandwidth. x has row stride ldx: K, or for Q4 weights
// q4_blocks(K) * 32 with the columns past K zero (the dispatcher pads).
void gemv_avx2(const float* x, int64_t ldx, int M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
               int64_t ldy);
void gemv_avx512(const float* x, int64_t ldx, int M, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                 int64_t ldy);

// Few rows with int8 / q4 weights on AVX-512 VNNI (Precision::BF16): activations quantised to
// int8 in blocks of 32, integer dot products (see gemv_vnni.cpp for the layouts).
struct QuantizedActivations {
  int M = 0;
  int64_t K = 0, chunks = 0;  // chunks of 64 columns (int8 weights) or 128 (q4)
  bool q4_order = false;      // x laid out for q4 weights' nibble layout
  std::vector<int8_t> q;            // [M][chunks][64 or 128]
  std::vector<float> lane_scale;    // [M][chunks][16]
  std::vector<int32_t> lane_corr;   // [M][chunks][16], q4 only
};
void quantize_activations_vnni(const float* x, int M, int64_t K, bool q4_order, QuantizedActivations& out);
void gemv_vnni(const QuantizedActivations& x, const WeightMatrix& w, int64_t n0, int64_t n1, float* y, int64_t ldy);

// Many rows, f32: weights widened one panel at a time, multiplied by OpenBLAS sgemm (which
// threads itself). Covers all N rows.
void gemm_f32_blas(const float* x, int M, const WeightMatrix& w, float* y);
// The transposed product for backward passes: dx[M, K] += dy[M, N] W[N, K], f32, W widened
// one panel at a time.
void gemm_f32_blas_transposed_add(const float* dy, int M, const WeightMatrix& w, float* dx);

// Many rows, bf16 products with f32 accumulation. The activations are prepared once per
// call by the dispatcher (PackedActivations), then every thread multiplies its weight rows.
// K padded to the 32-column granule of the bf16 kernels.
inline int64_t round_up32(int64_t k) { return (k + 31) / 32 * 32; }

struct PackedActivations {
  int M = 0;
  int64_t K = 0, Kp = 0;          // Kp: K rounded up to 32 (zero padded)
  const uint16_t* data = nullptr;  // layout depends on the kernel, see below
};
// AVX-512 BF16: data is [M][Kp] bf16 row-major.
int64_t pack_rows_bf16_size(int M, int64_t K);
void pack_rows_bf16(const float* x, int M, int64_t K, uint16_t* out);
void gemm_avx512_bf16(const PackedActivations& x, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                      int64_t ldy);
// AMX: data is AMX "B" tiles: [ceil(M/16)][Kp/32] tiles of [16 k-pairs][16 rows][2].
int64_t pack_amx_size(int M, int64_t K);
void pack_amx(const float* x, int M, int64_t K, uint16_t* out);
void gemm_amx_bf16(const PackedActivations& x, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                   int64_t ldy);
// Enables AMX tile use for the calling thread (tile configuration); cheap after the first.
void amx_thread_init();

// Rows [n0, n0 + nrows), columns [k0, k0 + kn) of any format as bf16 into out, zero past the
// matrix; k0 and kn are multiples of 32. Rows: [nrows_padded][kn] (row stride kn). AmxTiles:
// AMX A tiles of 16 rows x 32 columns, each a contiguous 1 KiB, tile (r / 16, j / 32) at
// ((r / 16) * (kn / 32) + j / 32) * 512 (nrows_padded a multiple of 16).
enum class WeightLayout { Rows, AmxTiles };
void weight_rows_bf16(const WeightMatrix& w, int64_t n0, int64_t nrows, int64_t nrows_padded, int64_t k0,
                      int64_t kn, uint16_t* out, WeightLayout layout = WeightLayout::Rows);

// dst[k][r] = src[r][k] for a 32 x 32 block of 16-bit values (strides in elements; AVX-512BW).
void transpose_bf16_32x32(const uint16_t* src, int64_t src_stride, uint16_t* dst, int64_t dst_stride);

}  // namespace pg::kernels::detail
