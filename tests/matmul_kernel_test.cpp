// Every matmul path forced in turn (reference, AVX2, AVX-512, AMX; f32 and bf16 precision)
// against a double-precision product of the same operands, for every weight format and for
// shapes that hit every tail (rows not a multiple of 16/32, K not a multiple of 16/32).
//
// The yardstick mirrors what each path is specified to compute: f32-precision paths use the
// exact dequantised weights and f32 activations; bf16-precision paths round the activations,
// and the weights they widen (every format but int8, whose integers are exact in bf16 and
// whose scale is applied after the sum), to bf16 first; bf16-precision decoding (few rows)
// with int8 / q4 weights on VNNI rounds the activations to int8 in blocks of 32. What remains is accumulation error,
// so the tolerance is tight (relative to sum |w x|) and any layout mistake shows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <random>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/quantize.h"
#include "paligemma/backend.h"
#include "paligemma/error.h"
#include "test_util.h"

namespace {

using pg::KernelPath;
using pg::Precision;
using pg::kernels::WeightFormat;
using pg::kernels::WeightMatrix;

struct OwnedWeight {
  WeightMatrix view;
  std::vector<uint8_t> storage;
  std::vector<uint8_t> scales;
};

// The data starts `misalign` bytes past a cache line: safetensors aligns tensors to 8 bytes
// only, and the AMX path reads aligned bf16 rows in place but copies misaligned ones.
OwnedWeight make_weight(WeightFormat format, int64_t N, int64_t K, std::mt19937& rng, int misalign) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> w(N * K);
  for (float& v : w) v = dist(rng);
  OwnedWeight o;
  o.view.name = "test";
  o.view.format = format;
  o.view.rows = N;
  o.view.cols = K;
  o.storage.resize(N * o.view.row_bytes() + 128);
  const auto address = reinterpret_cast<std::uintptr_t>(o.storage.data());
  uint8_t* data = o.storage.data() + (64 - address % 64) % 64 + misalign;
  for (int64_t n = 0; n < N; ++n) {
    const float* row = w.data() + n * K;
    uint8_t* dst = data + n * o.view.row_bytes();
    switch (format) {
      case WeightFormat::F32: std::memcpy(dst, row, K * 4); break;
      case WeightFormat::BF16:
        for (int64_t k = 0; k < K; ++k) reinterpret_cast<uint16_t*>(dst)[k] = pg::f32_to_bf16(row[k]);
        break;
      case WeightFormat::F16:
        for (int64_t k = 0; k < K; ++k) reinterpret_cast<uint16_t*>(dst)[k] = pg::f32_to_f16(row[k]);
        break;
      case WeightFormat::Int8:
        o.scales.resize(N * 4);
        pg::kernels::quantize_row_int8(row, K, reinterpret_cast<int8_t*>(dst),
                                       reinterpret_cast<float*>(o.scales.data()) + n);
        break;
      case WeightFormat::Q4:
        o.scales.resize(N * pg::kernels::q4_blocks(K) * 2);
        pg::kernels::quantize_row_q4(row, K, dst,
                                     reinterpret_cast<uint16_t*>(o.scales.data()) + n * pg::kernels::q4_blocks(K));
        break;
    }
  }
  o.view.data = data;
  o.view.scales = o.scales.empty() ? nullptr : o.scales.data();
  return o;
}

float round_bf16(float v) { return pg::bf16_to_f32(pg::f32_to_bf16(v)); }

enum class Inputs { F32, Bf16, Int8Blocks };

// x on the int8 grid of its 32-column blocks (scale = max|x| / 127), as gemv_vnni.cpp does.
std::vector<float> int8_blocks(const std::vector<float>& x, int M, int64_t K) {
  std::vector<float> out(x.size());
  for (int m = 0; m < M; ++m)
    for (int64_t b = 0; b < K; b += 32) {
      const int64_t e = std::min(K, b + 32);
      float amax = 0;
      for (int64_t k = b; k < e; ++k) amax = std::max(amax, std::fabs(x[m * K + k]));
      const float inv = amax > 0 ? 127.0f / amax : 0.0f, scale = amax / 127.0f;
      for (int64_t k = b; k < e; ++k) out[m * K + k] = std::nearbyint(x[m * K + k] * inv) * scale;
    }
  return out;
}

// Expected y and the scale sum |w x| per element, in double.
void expected(const std::vector<float>& x_in, int M, const WeightMatrix& w, Inputs inputs, std::vector<double>* y,
              std::vector<double>* mag) {
  const int64_t N = w.rows, K = w.cols;
  const bool bf16_inputs = inputs == Inputs::Bf16;
  const std::vector<float> x = inputs == Inputs::Int8Blocks ? int8_blocks(x_in, M, K) : x_in;
  std::vector<float> wf(N * K);
  pg::kernels::dequantize_rows_f32(w, 0, N, wf.data());
  y->assign(M * N, 0.0);
  mag->assign(M * N, 0.0);
  for (int m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0, a = 0;
      for (int64_t k = 0; k < K; ++k) {
        double xv = x[m * K + k], wv = wf[n * K + k];
        if (bf16_inputs) {
          xv = round_bf16(static_cast<float>(xv));
          if (w.format != WeightFormat::Int8) wv = round_bf16(static_cast<float>(wv));
        }
        acc += xv * wv;
        a += std::fabs(xv * wv);
      }
      (*y)[m * N + n] = acc;
      (*mag)[m * N + n] = a;
    }
}

struct Case {
  int M;
  int64_t N, K;
};

void check_all_formats(KernelPath path, Precision precision, const std::vector<Case>& cases) {
  pg::test::BackendGuard guard;
  pg::set_kernel_path(path);
  pg::set_precision(precision);
  std::mt19937 rng(1234);
  for (WeightFormat format :
       {WeightFormat::F32, WeightFormat::BF16, WeightFormat::F16, WeightFormat::Int8, WeightFormat::Q4}) {
    for (const Case& c : cases)
      for (int misalign : {0, 24}) {
        OwnedWeight w = make_weight(format, c.N, c.K, rng, misalign);
        std::normal_distribution<float> dist(0.0f, 1.0f);
        std::vector<float> x(c.M * c.K);
        for (float& v : x) v = dist(rng);
        std::vector<float> bias(c.N);
        for (float& v : bias) v = dist(rng);
        std::vector<float> y(c.M * c.N, -777.0f);
        pg::kernels::matmul(x.data(), c.M, w.view, bias.data(), y.data());
        // The reference path is always f32; few rows take the f32 decode kernels, except for
        // int8 / q4 weights on VNNI in bf16 precision.
        const bool fast = precision == Precision::BF16 && path != KernelPath::Reference;
        const bool vnni = fast && c.M <= pg::kernels::kSmallRows && pg::cpu_features().avx512_vnni &&
                          (path == KernelPath::Avx512 || path == KernelPath::Amx) &&
                          (format == WeightFormat::Int8 || format == WeightFormat::Q4);
        const Inputs inputs = vnni                                      ? Inputs::Int8Blocks
                              : (fast && c.M > pg::kernels::kSmallRows) ? Inputs::Bf16
                                                                        : Inputs::F32;
        std::vector<double> want, mag;
        expected(x, c.M, w.view, inputs, &want, &mag);
        double worst = 0;
        for (int64_t i = 0; i < c.M * c.N; ++i) {
          const double err = std::fabs(y[i] - bias[i % c.N] - want[i]);
          const double tol = 2e-6 * mag[i] + 1e-5;
          worst = std::max(worst, err / tol);
          ASSERT_LE(err, tol) << pg::kernel_path_name(path) << "/" << pg::precision_name(precision) << " "
                              << pg::kernels::weight_format_name(format) << " M=" << c.M << " N=" << c.N << " K=" << c.K
                              << " misalign " << misalign << " element " << i << ": got " << y[i] - bias[i % c.N]
                              << " want " << want[i];
        }
      }
  }
}

const std::vector<Case> kCases = {
    // clang-format off
    {1, 1, 7},   {1, 9, 64},   {2, 5, 96},   {5, 7, 130},   {8, 40, 2304}, {1, 37, 100},  {2, 16, 32},  {3, 5, 64},
    {4, 64, 48}, {8, 33, 588}, {9, 17, 33},  {16, 32, 64},  {17, 48, 96},  {33, 64, 100}, {40, 70, 588},
    {64, 96, 1152},
    // K long enough that the AMX kernel splits it into chunks (and SigLIP's fc2 K = 4304).
    {20, 40, 4304}, {33, 33, 9216},
    // More rows than one pass of the bf16 kernels holds (kMaxRowsPerPass).
    {700, 33, 96},
    // clang-format on
};

std::vector<KernelPath> supported_paths() {
  std::vector<KernelPath> out;
  for (KernelPath p : {KernelPath::Reference, KernelPath::Avx2, KernelPath::Avx512, KernelPath::Amx})
    if (pg::kernel_path_supported(p)) out.push_back(p);
  return out;
}

TEST(MatmulKernels, EveryPathF32) {
  for (KernelPath p : supported_paths()) check_all_formats(p, Precision::F32, kCases);
}

TEST(MatmulKernels, EveryPathBf16) {
  int tested = 0;
  for (KernelPath p : supported_paths()) {
    if (!pg::bf16_supported(p)) continue;
    check_all_formats(p, Precision::BF16, kCases);
    ++tested;
  }
  if (tested == 0) GTEST_SKIP() << "no bf16 hardware on this CPU: " << pg::cpu_features_string();
}

TEST(MatmulKernels, ReportsPaths) {
  // The machines this project targets have AVX2; say what else was exercised.
  EXPECT_TRUE(pg::kernel_path_supported(KernelPath::Reference));
  std::string paths;
  for (KernelPath p : supported_paths()) paths += std::string(pg::kernel_path_name(p)) + " ";
  RecordProperty("paths", paths);
  std::cout << "CPU: " << pg::cpu_features_string() << "; kernel paths tested: " << paths << "\n";
}

TEST(MatmulKernels, UnsupportedChoicesAreRefused) {
  pg::test::BackendGuard guard;
  EXPECT_THROW(pg::parse_kernel_path("sse9"), pg::Error);
  EXPECT_THROW(pg::parse_precision("fp8"), pg::Error);
  pg::set_kernel_path(KernelPath::Reference);
  EXPECT_THROW(pg::set_precision(Precision::BF16), pg::Error);
}

}  // namespace

// The training backward's dx += dy W (matmul_transposed_add) on every path, precision and
// weight format: f32 precision (or few rows) is exact sgemm on the dequantised weights; bf16
// precision with many rows rounds dy and the widened weights to bf16 (as the forward's
// products do) and sums in f32. dx starts non-zero: the product is added.
TEST(MatmulKernels, TransposedAddEveryPath) {
  // The last case has more weight rows than one block of the bf16 route (16 MiB of transpose).
  const std::vector<Case> cases = {{3, 40, 64}, {17, 33, 100}, {64, 70, 588}, {130, 96, 1152}, {70, 9000, 48},
                                   {64, 1100, 8200}};
  for (KernelPath path : supported_paths())
    for (Precision precision : {Precision::F32, Precision::BF16}) {
      if (precision == Precision::BF16 && !pg::bf16_supported(path)) continue;
      pg::test::BackendGuard guard;
      pg::set_kernel_path(path);
      pg::set_precision(precision);
      std::mt19937 rng(99);
      for (WeightFormat format :
           {WeightFormat::F32, WeightFormat::BF16, WeightFormat::F16, WeightFormat::Int8, WeightFormat::Q4})
        for (const Case& c : cases)
          for (int misalign : {0, 24}) {
            if (c.N * c.K > 1000000 &&  // the slow case once: bf16 on the best path, one format
                (format != WeightFormat::Q4 || misalign || precision != Precision::BF16 ||
                 path != supported_paths().back()))
              continue;
            OwnedWeight w = make_weight(format, c.N, c.K, rng, misalign);
            std::normal_distribution<float> dist(0.0f, 1.0f);
            std::vector<float> dy(c.M * c.N), dx(c.M * c.K);
            for (float& v : dy) v = dist(rng);
            for (float& v : dx) v = dist(rng);
            const std::vector<float> dx0 = dx;
            pg::kernels::matmul_transposed_add(dy.data(), c.M, w.view, dx.data());
            const bool bf16 = precision == Precision::BF16 && path != KernelPath::Reference && c.M >= 64;
            std::vector<float> wf(c.N * c.K);
            pg::kernels::dequantize_rows_f32(w.view, 0, c.N, wf.data());
            for (int m = 0; m < c.M; ++m)
              for (int64_t k = 0; k < c.K; ++k) {
                double want = 0, mag = 0;
                for (int64_t n = 0; n < c.N; ++n) {
                  double a = dy[m * c.N + n], b = wf[n * c.K + k];
                  if (bf16) {
                    a = round_bf16(static_cast<float>(a));
                    b = round_bf16(static_cast<float>(b));
                  }
                  want += a * b;
                  mag += std::fabs(a * b);
                }
                const double got = static_cast<double>(dx[m * c.K + k]) - dx0[m * c.K + k];
                ASSERT_NEAR(got, want, 2e-6 * mag + 1e-4)
                    << pg::kernel_path_name(path) << "/" << pg::precision_name(precision) << " "
                    << pg::kernels::weight_format_name(format) << " M=" << c.M << " N=" << c.N << " K=" << c.K
                    << " misalign " << misalign << " at " << m << "," << k;
              }
          }
    }
}
