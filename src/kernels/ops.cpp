#include "kernels/ops.h"

#include "kernels/ops_vector.h"
#include "paligemma/backend.h"
#include "paligemma/profile.h"

#include <algorithm>
#include <cmath>

namespace pg::kernels {

void layer_norm(float* x, int rows, int n, const float* w, const float* b, float eps) {
  profile::Scope scope("ops.layer_norm");
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int r = 0; r < rows; ++r) {
    float* v = x + static_cast<int64_t>(r) * n;
    double sum = 0.0;
    for (int i = 0; i < n; ++i) sum += v[i];
    const float mean = static_cast<float>(sum / n);
    double sq = 0.0;
    for (int i = 0; i < n; ++i) {
      const double d = v[i] - mean;
      sq += d * d;
    }
    const float inv = 1.0f / std::sqrt(static_cast<float>(sq / n) + eps);
    for (int i = 0; i < n; ++i) v[i] = (v[i] - mean) * inv * w[i] + b[i];
  }
}

void rms_norm(const float* x, float* out, int rows, int n, const float* w, float eps) {
  profile::Scope scope("ops.rms_norm");
#pragma omp parallel for schedule(static) if (rows > 16)
  for (int r = 0; r < rows; ++r) {
    const float* v = x + static_cast<int64_t>(r) * n;
    float* o = out + static_cast<int64_t>(r) * n;
    double sq = 0.0;
    for (int i = 0; i < n; ++i) sq += static_cast<double>(v[i]) * v[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(sq / n) + eps);
    for (int i = 0; i < n; ++i) o[i] = (v[i] * inv) * (1.0f + w[i]);
  }
}

namespace {

// Runs fn(begin, count) over [0, n) in chunks, in parallel when n is large.
template <typename Fn>
void chunked(int64_t n, Fn&& fn) {
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) fn(c * kChunk, std::min(kChunk, n - c * kChunk));
}

bool use_avx512() { return kernel_path() == KernelPath::Avx512 || kernel_path() == KernelPath::Amx; }

}  // namespace

void gelu_tanh(float* x, int64_t n) {
  profile::Scope scope("ops.gelu");
  if (kernel_path() != KernelPath::Reference) {
    const bool wide = use_avx512();
    chunked(n, [&](int64_t i, int64_t count) {
      if (wide)
        detail::gelu_tanh_avx512(x + i, count);
      else
        detail::gelu_tanh_avx2(x + i, count);
    });
    return;
  }
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void gelu_erf(float* x, int64_t n) {
  profile::Scope scope("ops.gelu");
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));
}

void soft_cap(float* x, int64_t n, float cap) {
  if (kernel_path() != KernelPath::Reference) {
    const bool wide = use_avx512();
    chunked(n, [&](int64_t i, int64_t count) {
      if (wide)
        detail::soft_cap_avx512(x + i, count, cap);
      else
        detail::soft_cap_avx2(x + i, count, cap);
    });
    return;
  }
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] / cap) * cap;
}

void multiply(float* a, const float* b, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) a[i] *= b[i];
}

void add(float* y, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void rope(float* x, int heads, int head_dim, const float* cos_half, const float* sin_half) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[i];
      const float b = v[i + half];
      // q * cos + rotate_half(q) * sin, rotate_half(q) = cat(-q2, q1)
      v[i] = a * cos_half[i] - b * sin_half[i];
      v[i + half] = b * cos_half[i] + a * sin_half[i];
    }
  }
}

void rope_angles(int position, int head_dim, float theta, float* cos_half, float* sin_half) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float inv_freq = 1.0f / std::pow(theta, exponent);
    const float angle = static_cast<float>(position) * inv_freq;
    cos_half[i] = std::cos(angle);
    sin_half[i] = std::sin(angle);
  }
}

void patchify(const float* pixels, int C, int S, int P, float* out) {
  const int side = S / P, patch_len = C * P * P;
  for (int py = 0; py < side; ++py)
    for (int px = 0; px < side; ++px) {
      float* dst = out + static_cast<int64_t>(py * side + px) * patch_len;
      for (int c = 0; c < C; ++c)
        for (int ky = 0; ky < P; ++ky)
          std::copy_n(pixels + (static_cast<int64_t>(c) * S + py * P + ky) * S + px * P, P, dst + (c * P + ky) * P);
    }
}

void exp_shifted(float* x, int64_t n, float shift) {
  if (kernel_path() == KernelPath::Reference) {
    for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i] - shift);
  } else if (use_avx512()) {
    detail::exp_shifted_avx512(x, n, shift);
  } else {
    detail::exp_shifted_avx2(x, n, shift);
  }
}

void softmax(float* x, int n) {
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -INFINITY) {
    for (int i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void to_f32(const TensorView& t, float* out) { convert_to_f32(t.dtype, t.data, 0, t.numel(), out); }

}  // namespace pg::kernels
