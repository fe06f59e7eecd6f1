// Scalar and bulk dtype conversions, checked exhaustively against straightforward
// reference implementations written from the IEEE / bfloat16 definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "paligemma/error.h"
#include "paligemma/tensor.h"

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bfloat16: 1 sign, 8 exponent (bias 127), 7 mantissa bits.
double ref_bf16_value(uint16_t b) {
  const int sign = b >> 15, e = (b >> 7) & 0xFF, m = b & 0x7F;
  double v;
  if (e == 0xFF) v = m ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
  else if (e == 0) v = std::ldexp(m, -126 - 7);
  else v = std::ldexp(128 + m, e - 127 - 7);
  return sign ? -v : v;
}

// IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
double ref_f16_value(uint16_t h) {
  const int sign = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
  double v;
  if (e == 0x1F) v = m ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
  else if (e == 0) v = std::ldexp(m, -24);
  else v = std::ldexp(1024 + m, e - 25);
  return sign ? -v : v;
}

bool is_bf16_nan(uint16_t b) { return (b & 0x7F80) == 0x7F80 && (b & 0x7F); }
bool is_f16_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF); }

// Round-to-nearest-even of a finite float onto a sorted grid of non-negative values
// (grid[i] is the value of bit pattern i; the last entry stands in for infinity as
// the next power of two, which is how IEEE overflow rounding behaves).
uint16_t ref_round(double magnitude, const std::vector<double>& grid) {
  auto it = std::upper_bound(grid.begin(), grid.end(), magnitude);
  if (it == grid.end()) return static_cast<uint16_t>(grid.size() - 1);  // beyond: inf
  size_t hi = static_cast<size_t>(it - grid.begin());
  size_t lo = hi - 1;  // grid[lo] <= magnitude < grid[hi]
  double dlo = magnitude - grid[lo], dhi = grid[hi] - magnitude;
  if (dlo < dhi) return static_cast<uint16_t>(lo);
  if (dhi < dlo) return static_cast<uint16_t>(hi);
  return static_cast<uint16_t>((lo & 1) ? hi : lo);
}

std::vector<double> bf16_grid() {  // patterns 0 .. 0x7F80 (inf as 2^128)
  std::vector<double> g;
  for (uint32_t b = 0; b < 0x7F80; ++b) g.push_back(ref_bf16_value(static_cast<uint16_t>(b)));
  g.push_back(std::ldexp(1.0, 128));
  return g;
}
std::vector<double> f16_grid() {  // patterns 0 .. 0x7C00 (inf as 2^16)
  std::vector<double> g;
  for (uint32_t h = 0; h < 0x7C00; ++h) g.push_back(ref_f16_value(static_cast<uint16_t>(h)));
  g.push_back(65536.0);
  return g;
}

uint16_t ref_f32_to_bf16(float x, const std::vector<double>& grid) {
  uint16_t mag = ref_round(std::fabs(static_cast<double>(x)), grid);
  return static_cast<uint16_t>(mag | (std::signbit(x) ? 0x8000 : 0));
}
uint16_t ref_f32_to_f16(float x, const std::vector<double>& grid) {
  uint16_t mag = ref_round(std::fabs(static_cast<double>(x)), grid);
  return static_cast<uint16_t>(mag | (std::signbit(x) ? 0x8000 : 0));
}

}  // namespace

TEST(Tensor, DtypeBasics) {
  EXPECT_EQ(pg::dtype_size(pg::DType::F32), 4u);
  EXPECT_EQ(pg::dtype_size(pg::DType::BF16), 2u);
  EXPECT_EQ(pg::dtype_size(pg::DType::F16), 2u);
  EXPECT_STREQ(pg::dtype_name(pg::DType::F32), "F32");
  EXPECT_STREQ(pg::dtype_name(pg::DType::BF16), "BF16");
  EXPECT_STREQ(pg::dtype_name(pg::DType::F16), "F16");
  EXPECT_EQ(pg::shape_string({2048, 1152}), "[2048, 1152]");
  EXPECT_EQ(pg::shape_string({}), "[]");
  EXPECT_EQ(pg::shape_string({7}), "[7]");

  pg::TensorView v;
  EXPECT_TRUE(v.empty());
  v.shape = {};
  EXPECT_EQ(v.numel(), 1);  // a scalar
  v.shape = {3, 0, 2};
  EXPECT_EQ(v.numel(), 0);
  v.shape = {2, 3, 4};
  v.dtype = pg::DType::BF16;
  EXPECT_EQ(v.numel(), 24);
  EXPECT_EQ(v.nbytes(), 48u);
}

TEST(Tensor, Bf16ToF32ExhaustiveExact) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t bits = static_cast<uint16_t>(b);
    const float got = pg::bf16_to_f32(bits);
    if (is_bf16_nan(bits)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << b;
      ASSERT_EQ(bits_of(got) >> 16, b) << "NaN payload/sign lost for 0x" << std::hex << b;
      continue;
    }
    const double want = ref_bf16_value(bits);
    ASSERT_EQ(static_cast<double>(got), want) << "bf16 0x" << std::hex << b;
    ASSERT_EQ(std::signbit(got), (b & 0x8000) != 0) << std::hex << b;
  }
}

TEST(Tensor, F16ToF32ExhaustiveExact) {
  int subnormals = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float got = pg::f16_to_f32(bits);
    if (is_f16_nan(bits)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << h;
      ASSERT_EQ(std::signbit(got), (h & 0x8000) != 0) << std::hex << h;
      // Payload kept in the top mantissa bits; quiet bit set (as vcvtph2ps).
      ASSERT_EQ(bits_of(got) & 0x003FE000u, (static_cast<uint32_t>(h) & 0x1FFu) << 13);
      ASSERT_TRUE(bits_of(got) & 0x00400000u);
      continue;
    }
    if ((h & 0x7C00) == 0 && (h & 0x3FF)) ++subnormals;
    const double want = ref_f16_value(bits);
    ASSERT_EQ(static_cast<double>(got), want) << "f16 0x" << std::hex << h;
    ASSERT_EQ(std::signbit(got), (h & 0x8000) != 0) << std::hex << h;
  }
  EXPECT_EQ(subnormals, 2 * 1023);
  EXPECT_EQ(pg::f16_to_f32(0x7C00), INFINITY);
  EXPECT_EQ(pg::f16_to_f32(0xFC00), -INFINITY);
  EXPECT_EQ(pg::f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(pg::f16_to_f32(0x7BFF), 65504.0f);
}

TEST(Tensor, F32ToBf16RoundsToNearestEven) {
  const std::vector<double> grid = bf16_grid();
  std::mt19937 rng(1234);
  const uint32_t lows[] = {0x0000, 0x0001, 0x3FFF, 0x7FFF, 0x8000, 0x8001, 0xC000, 0xFFFF};
  for (uint32_t hi = 0; hi < 65536; ++hi) {
    for (int k = 0; k < 10; ++k) {
      const uint32_t low = k < 8 ? lows[k] : (rng() & 0xFFFF);
      const uint32_t u = (hi << 16) | low;
      const float x = float_of(u);
      const uint16_t got = pg::f32_to_bf16(x);
      if (std::isnan(x)) {
        ASSERT_EQ(got, 0x7FC0) << std::hex << u;  // c10::BFloat16's canonical NaN
        continue;
      }
      ASSERT_EQ(got, ref_f32_to_bf16(x, grid)) << "f32 0x" << std::hex << u;
    }
  }
  // Exact round trip for every non-NaN bf16 value.
  for (uint32_t b = 0; b < 65536; ++b) {
    if (is_bf16_nan(static_cast<uint16_t>(b))) continue;
    ASSERT_EQ(pg::f32_to_bf16(pg::bf16_to_f32(static_cast<uint16_t>(b))), b) << std::hex << b;
  }
  // Spot checks: ties to even, overflow to infinity.
  EXPECT_EQ(pg::f32_to_bf16(float_of(0x3F808000)), 0x3F80);  // tie, even stays
  EXPECT_EQ(pg::f32_to_bf16(float_of(0x3F818000)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(pg::f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(pg::f32_to_bf16(-INFINITY), 0xFF80);
}

TEST(Tensor, F32ToF16RoundsToNearestEven) {
  const std::vector<double> grid = f16_grid();
  std::vector<float> inputs;
  // Every half value, every midpoint between neighbours, and one float ulp either side.
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    const float v = static_cast<float>(grid[i]);
    const float mid = static_cast<float>((grid[i] + grid[i + 1]) / 2);
    for (float x : {v, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
      inputs.push_back(x);
      inputs.push_back(-x);
    }
  }
  // Random floats over the whole range, and the tiny / huge edges.
  std::mt19937 rng(99);
  for (int i = 0; i < 400000; ++i) inputs.push_back(float_of(rng()));
  for (float x : {65504.0f, 65519.99f, 65520.0f, 65536.0f, 1e10f, std::ldexp(1.0f, -25),
                  std::nextafter(std::ldexp(1.0f, -25), 1.0f), std::ldexp(1.0f, -26),
                  std::ldexp(3.0f, -26), std::ldexp(1.0f, -14), std::ldexp(1.0f, -149),
                  INFINITY, -INFINITY, 0.0f, -0.0f})
    inputs.push_back(x);

  for (float x : inputs) {
    const uint16_t got = pg::f32_to_f16(x);
    if (std::isnan(x)) {
      ASSERT_TRUE(is_f16_nan(got)) << std::hex << bits_of(x);
      ASSERT_EQ((got & 0x8000) != 0, std::signbit(x));
      continue;
    }
    ASSERT_EQ(got, ref_f32_to_f16(x, grid)) << "f32 0x" << std::hex << bits_of(x) << " = " << x;
  }
  for (uint32_t h = 0; h < 65536; ++h) {
    if (is_f16_nan(static_cast<uint16_t>(h))) continue;
    ASSERT_EQ(pg::f32_to_f16(pg::f16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
  EXPECT_EQ(pg::f32_to_f16(65520.0f), 0x7C00);  // tie between 65504 (odd) and 2^16: inf
  EXPECT_EQ(pg::f32_to_f16(65519.0f), 0x7BFF);
  EXPECT_EQ(pg::f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even zero
  EXPECT_EQ(pg::f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // tie 1.5 ulp -> 2
}

// The bulk path (AVX2 / F16C blocks + scalar tails) must agree bit for bit with the
// scalar conversions, for every bit pattern and every offset / length split.
TEST(Tensor, ConvertToF32MatchesScalarForAllPatterns) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> out(65536);
  for (pg::DType dtype : {pg::DType::BF16, pg::DType::F16}) {
    pg::convert_to_f32(dtype, all.data(), 0, all.size(), out.data());
    for (uint32_t i = 0; i < 65536; ++i) {
      const float want = dtype == pg::DType::BF16 ? pg::bf16_to_f32(all[i]) : pg::f16_to_f32(all[i]);
      ASSERT_EQ(bits_of(out[i]), bits_of(want)) << pg::dtype_name(dtype) << " 0x" << std::hex << i;
    }
    // Offsets and odd counts exercise the vector tails.
    for (size_t offset = 0; offset < 5; ++offset) {
      for (size_t count = 0; count < 70; ++count) {
        std::vector<float> dst(count + 1, -7.0f);
        const size_t start = 0x3C00 + offset * 13;
        pg::convert_to_f32(dtype, all.data(), start, count, dst.data());
        for (size_t i = 0; i < count; ++i) {
          const uint16_t b = all[start + i];
          const float want = dtype == pg::DType::BF16 ? pg::bf16_to_f32(b) : pg::f16_to_f32(b);
          ASSERT_EQ(bits_of(dst[i]), bits_of(want));
        }
        ASSERT_EQ(dst[count], -7.0f) << "wrote past count";
      }
    }
  }
  std::vector<float> f32 = {1.0f, -2.5f, 3.25f, NAN, 5.0f};
  std::vector<float> dst(3);
  pg::convert_to_f32(pg::DType::F32, f32.data(), 1, 3, dst.data());
  EXPECT_EQ(dst[0], -2.5f);
  EXPECT_EQ(dst[1], 3.25f);
  EXPECT_TRUE(std::isnan(dst[2]));
}
