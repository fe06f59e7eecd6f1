#include "paligemma/tensor.h"

#include <cstring>
#include <limits>

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

#include "paligemma/error.h"

namespace pg {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I8: return 1;
    case DType::U8: return 1;
  }
  throw Error("dtype_size: invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
  }
  return "INVALID";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  out += "]";
  return out;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- scalar conversions ----------------------------------------------------------------

static inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

static inline uint32_t float_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

float bf16_to_f32(uint16_t bits) { return bits_to_float(static_cast<uint32_t>(bits) << 16); }

uint16_t f32_to_bf16(float value) {
  // As c10::BFloat16 (round_to_nearest_even): NaN becomes the canonical quiet NaN 0x7FC0.
  if (value != value) return 0x7FC0;
  uint32_t u = float_to_bits(value);
  uint32_t rounding_bias = ((u >> 16) & 1u) + 0x7FFFu;
  return static_cast<uint16_t>((u + rounding_bias) >> 16);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0x1F) {
    // Inf / NaN: keep the payload (shifted into the top of the f32 mantissa). Signalling
    // NaNs come out quiet, exactly as the F16C instruction (vcvtph2ps) used for bulk
    // conversion does, so scalar and vector paths agree bit for bit.
    bits = sign | 0x7F800000u | (mantissa << 13);
    if (mantissa != 0) bits |= 0x00400000u;
  } else if (exponent != 0) {
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;  // +-0
  } else {
    // Subnormal: value = mantissa * 2^-24. Normalise.
    int e = -1;
    do {
      mantissa <<= 1;
      ++e;
    } while ((mantissa & 0x400u) == 0);
    mantissa &= 0x3FFu;
    bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mantissa << 13);
  }
  return bits_to_float(bits);
}

uint16_t f32_to_f16(float value) {
  const uint32_t u = float_to_bits(value);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) {
    // NaN: keep it quiet, keep the top payload bits.
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
  }
  if (abs >= 0x477FF000u) {
    // >= 65520 (the midpoint between the largest half 65504 and 2^16) rounds to inf.
    return static_cast<uint16_t>(sign | 0x7C00u);
  }
  if (abs >= 0x38800000u) {
    // Normal half (>= 2^-14): rebias, round to nearest even on the 13 dropped bits.
    uint32_t v = abs - ((127u - 15u) << 23);
    v += 0x0FFFu + ((v >> 13) & 1u);
    return static_cast<uint16_t>(sign | (v >> 13));
  }
  if (abs < 0x33000000u) {
    return sign;  // < 2^-25 (half of the smallest subnormal, tie goes to even 0)
  }
  // Subnormal half: value / 2^-24, rounded to nearest even.
  const uint32_t exponent = abs >> 23;             // 102 .. 112
  const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - exponent;          // 14 .. 24
  uint32_t result = mantissa >> shift;
  const uint32_t remainder = mantissa & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (remainder > halfway || (remainder == halfway && (result & 1u))) ++result;
  return static_cast<uint16_t>(sign | result);
}

// ---- bulk conversion -------------------------------------------------------------------

static void bf16_block_to_f32(const uint16_t* src, size_t count, float* dst) {
  size_t i = 0;
#if defined(__AVX2__)
  for (; i + 16 <= count; i += 16) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(a));
    __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(a, 1));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(lo, 16)));
    _mm256_storeu_ps(dst + i + 8, _mm256_castsi256_ps(_mm256_slli_epi32(hi, 16)));
  }
#endif
  for (; i < count; ++i) dst[i] = bf16_to_f32(src[i]);
}

static void f16_block_to_f32(const uint16_t* src, size_t count, float* dst) {
  size_t i = 0;
#if defined(__F16C__) && defined(__AVX__)
  for (; i + 16 <= count; i += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 8));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(a));
    _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(b));
  }
  for (; i + 8 <= count; i += 8) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(a));
  }
#endif
  for (; i < count; ++i) dst[i] = f16_to_f32(src[i]);
}

void convert_to_f32(DType dtype, const void* src, size_t offset, size_t count, float* dst) {
  if (count == 0) return;
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, static_cast<const float*>(src) + offset, count * sizeof(float));
      return;
    case DType::BF16:
      bf16_block_to_f32(static_cast<const uint16_t*>(src) + offset, count, dst);
      return;
    case DType::F16:
      f16_block_to_f32(static_cast<const uint16_t*>(src) + offset, count, dst);
      return;
    case DType::I8:
      for (size_t i = 0; i < count; ++i) dst[i] = static_cast<const int8_t*>(src)[offset + i];
      return;
    case DType::U8:
      for (size_t i = 0; i < count; ++i) dst[i] = static_cast<const uint8_t*>(src)[offset + i];
      return;
  }
  throw Error("convert_to_f32: invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

}  // namespace pg
