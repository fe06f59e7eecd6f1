#pragma once
// Weight quantisation: the two formats `paligemma quantize` writes and the kernels read.
//
// Int8: per output row, symmetric. scale = max|w| / 127, q = round(w / scale) in [-127, 127],
//   w ~= q * scale. (A zero row has scale 0.)
// Q4: per row, blocks of 32 consecutive columns (cols padded with zeros to a multiple of 32).
//   Each block has an f16 scale d and 16 bytes of nibbles: byte j holds element j of the block
//   in its low nibble and element j + 16 in its high nibble; w = (nibble - 8) * d. d is chosen
//   as ggml's Q4_0 does: the element of largest magnitude m maps to nibble 0 (d = m / -8), so
//   the grid covers [-8d, 7d] with the extreme exactly representable.
#include <cstdint>

#include "kernels/weight_matrix.h"

namespace pg::kernels {

constexpr int64_t kQ4Block = 32;
constexpr int64_t kQ4BlockBytes = 16;
inline int64_t q4_blocks(int64_t cols) { return (cols + kQ4Block - 1) / kQ4Block; }
inline int64_t q4_row_bytes(int64_t cols) { return q4_blocks(cols) * kQ4BlockBytes; }

// One row of `cols` floats -> the format's data and scale(s).
void quantize_row_int8(const float* w, int64_t cols, int8_t* q, float* scale);
void quantize_row_q4(const float* w, int64_t cols, uint8_t* q, uint16_t* scales);

// Rows [row0, row0 + nrows) of any format, widened to f32: out is [nrows, w.cols].
void dequantize_rows_f32(const WeightMatrix& w, int64_t row0, int64_t nrows, float* out);

}  // namespace pg::kernels
