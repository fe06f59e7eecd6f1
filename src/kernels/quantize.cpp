#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "paligemma/error.h"

namespace pg::kernels {

void quantize_row_int8(const float* w, int64_t cols, int8_t* q, float* scale) {
  float amax = 0.0f;
  for (int64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(w[i]));
  const float s = amax / 127.0f;
  *scale = s;
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;
  for (int64_t i = 0; i < cols; ++i) {
    const float r = std::nearbyint(w[i] * inv);
    // NaN (which callers refuse before this) maps to 0 rather than to an undefined cast.
    q[i] = r == r ? static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f)) : 0;
  }
}

void quantize_row_q4(const float* w, int64_t cols, uint8_t* q, uint16_t* scales) {
  const int64_t blocks = q4_blocks(cols);
  for (int64_t b = 0; b < blocks; ++b) {
    float block[kQ4Block] = {};
    const int64_t n = std::min(kQ4Block, cols - b * kQ4Block);
    std::memcpy(block, w + b * kQ4Block, n * sizeof(float));
    float m = 0.0f;  // the element of largest magnitude, with its sign
    for (int i = 0; i < kQ4Block; ++i)
      if (std::fabs(block[i]) > std::fabs(m)) m = block[i];
    // Levels l in [-8, 7], w ~ l * d. Try grids that map m to -8 +- 0.9 (so m may clip to -8
    // when that lowers the error of the rest), fit d to each grid's levels by least squares,
    // keep the grid with the smallest squared error (as ggml's make_qx_quants). The plain
    // d = m / -8 is the is = 0 candidate, so this is never worse than it.
    int8_t levels[kQ4Block] = {};
    float best_d = 0.0f;
    if (m != 0.0f) {
      // The plain rule first (d = m / -8): the result when its scale overflows f16 (then the
      // caller sees an inf scale) or when no refit is better.
      best_d = f16_to_f32(f32_to_f16(m / -8.0f));
      double best_err = 0;
      for (int i = 0; i < kQ4Block; ++i) {
        const float r = std::nearbyint(block[i] / best_d);
        levels[i] = static_cast<int8_t>(r == r ? std::clamp(r, -8.0f, 7.0f) : 0.0f);
        const double e = block[i] - static_cast<double>(levels[i]) * best_d;
        best_err += e * e;
      }
      int8_t trial[kQ4Block];
      for (int is = -9; is <= 9 && std::isfinite(best_d); ++is) {
        const float id = (-8.0f + 0.1f * static_cast<float>(is)) / m;
        double sum_lx = 0, sum_ll = 0;
        for (int i = 0; i < kQ4Block; ++i) {
          const float r = std::nearbyint(block[i] * id);
          const int l = r == r ? static_cast<int>(std::clamp(r, -8.0f, 7.0f)) : 0;
          trial[i] = static_cast<int8_t>(l);
          sum_lx += static_cast<double>(l) * block[i];
          sum_ll += static_cast<double>(l) * l;
        }
        if (sum_ll <= 0) continue;
        // Rounded to f16 first: the error is measured for the scale the kernels read.
        const float d = f16_to_f32(f32_to_f16(static_cast<float>(sum_lx / sum_ll)));
        if (!std::isfinite(d)) continue;
        double err = 0;
        for (int i = 0; i < kQ4Block; ++i) {
          const double e = block[i] - static_cast<double>(trial[i]) * d;
          err += e * e;
        }
        if (err < best_err) {
          best_err = err;
          best_d = d;
          std::memcpy(levels, trial, sizeof levels);
        }
      }
    }
    scales[b] = f32_to_f16(best_d);  // callers keep |w| <= 8 * 65504 so that it is finite
    uint8_t* out = q + b * kQ4BlockBytes;
    for (int j = 0; j < 16; ++j)
      out[j] = static_cast<uint8_t>((levels[j] + 8) | ((levels[j + 16] + 8) << 4));
  }
}

void dequantize_rows_f32(const WeightMatrix& w, int64_t row0, int64_t nrows, float* out) {
  if (row0 < 0 || nrows < 0 || row0 + nrows > w.rows)
    throw Error("dequantize: rows [" + std::to_string(row0) + ", " + std::to_string(row0 + nrows) +
                ") outside weight " + w.name + " with " + std::to_string(w.rows) + " rows");
  const int64_t K = w.cols;
  switch (w.format) {
    case WeightFormat::F32:
      convert_to_f32(DType::F32, w.data, row0 * K, nrows * K, out);
      return;
    case WeightFormat::BF16:
      convert_to_f32(DType::BF16, w.data, row0 * K, nrows * K, out);
      return;
    case WeightFormat::F16:
      convert_to_f32(DType::F16, w.data, row0 * K, nrows * K, out);
      return;
    case WeightFormat::Int8: {
      const int8_t* q = static_cast<const int8_t*>(w.data);
      const float* s = static_cast<const float*>(w.scales);
      for (int64_t r = 0; r < nrows; ++r) {
        const int8_t* row = q + (row0 + r) * K;
        const float scale = s[row0 + r];
        float* o = out + r * K;
        for (int64_t k = 0; k < K; ++k) o[k] = static_cast<float>(row[k]) * scale;
      }
      return;
    }
    case WeightFormat::Q4: {
      const uint8_t* q = static_cast<const uint8_t*>(w.data);
      const uint16_t* s = static_cast<const uint16_t*>(w.scales);
      const int64_t blocks = q4_blocks(K), row_bytes = q4_row_bytes(K);
      for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t* row = q + (row0 + r) * row_bytes;
        const uint16_t* rs = s + (row0 + r) * blocks;
        float* o = out + r * K;
        for (int64_t b = 0; b < blocks; ++b) {
          const float d = f16_to_f32(rs[b]);
          const uint8_t* blk = row + b * kQ4BlockBytes;
          for (int j = 0; j < 32; ++j) {
            const int64_t k = b * kQ4Block + j;
            if (k >= K) break;
            const int nib = j < 16 ? (blk[j] & 0xF) : (blk[j - 16] >> 4);
            o[k] = static_cast<float>(nib - 8) * d;
          }
        }
      }
      return;
    }
  }
}

}  // namespace pg::kernels
