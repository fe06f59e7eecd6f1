#include "train/layers.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/random.h"
#include "kernels/ops.h"
#include "paligemma/error.h"
#include "paligemma/profile.h"

namespace pg::train {
namespace {

// C[M, N] (+)= alpha op(A) op(B) through OpenBLAS, in the element type. Profiled (PG_PROFILE=1) so
// that a training step's report shows what the f32 products cost beside the bf16 kernels.
void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
          float beta, float* C, int ldc) {
  profile::Scope scope("train.sgemm", 2.0 * M * N * K, 4.0 * (double(M) * K + double(K) * N + double(M) * N));
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}
void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B, int ldb,
          double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

template <typename T>
T gelu_tanh(T x) {
  const T u = static_cast<T>(kSqrt2OverPi) * (x + static_cast<T>(kGeluCubic) * x * x * x);
  return static_cast<T>(0.5) * x * (static_cast<T>(1) + std::tanh(u));
}
// d/dx 0.5 x (1 + tanh u) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u',  u' = c (1 + 3 a x^2).
template <typename T>
T gelu_tanh_grad(T x) {
  const T u = static_cast<T>(kSqrt2OverPi) * (x + static_cast<T>(kGeluCubic) * x * x * x);
  const T t = std::tanh(u);
  const T du = static_cast<T>(kSqrt2OverPi) * (static_cast<T>(1) + static_cast<T>(3 * kGeluCubic) * x * x);
  return static_cast<T>(0.5) * (static_cast<T>(1) + t) + static_cast<T>(0.5) * x * (static_cast<T>(1) - t * t) * du;
}
template <typename T>
T gelu_erf(T x) {
  return static_cast<T>(0.5) * x * (static_cast<T>(1) + std::erf(x / static_cast<T>(std::sqrt(2.0))));
}
// d/dx x Phi(x) = Phi(x) + x phi(x).
template <typename T>
T gelu_erf_grad(T x) {
  const T cdf = static_cast<T>(0.5) * (static_cast<T>(1) + std::erf(x / static_cast<T>(std::sqrt(2.0))));
  const T pdf = std::exp(-x * x / static_cast<T>(2)) / static_cast<T>(std::sqrt(2.0 * M_PI));
  return cdf + x * pdf;
}

}  // namespace

template <typename T>
void linear_forward(const T* x, int M, int K, const T* w, const T* b, int N, T* y) {
  gemm(false, true, M, N, K, T(1), x, K, w, K, T(0), y, N);
  if (b)
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) y[static_cast<int64_t>(m) * N + n] += b[n];
}

template <typename T>
void linear_backward(const T* dy, const T* x, const T* w, int M, int K, int N, T* dx, T* dw, T* db) {
  if (dx) gemm(false, false, M, K, N, T(1), dy, N, w, K, T(1), dx, K);  // [M,N] x [N,K]
  if (dw) gemm(true, false, N, K, M, T(1), dy, N, x, K, T(1), dw, K);   // [N,M] x [M,K]
  if (db)
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) db[n] += dy[static_cast<int64_t>(m) * N + n];
}

template <typename T>
void layer_norm_forward(const T* x, int rows, int n, const T* w, const T* b, T eps, T* y, T* mean, T* rstd) {
  for (int r = 0; r < rows; ++r) {
    const T* v = x + static_cast<int64_t>(r) * n;
    T* o = y + static_cast<int64_t>(r) * n;
    double sum = 0.0;
    for (int i = 0; i < n; ++i) sum += v[i];
    const T mu = static_cast<T>(sum / n);
    double sq = 0.0;
    for (int i = 0; i < n; ++i) sq += static_cast<double>(v[i] - mu) * (v[i] - mu);
    const T rs = static_cast<T>(1) / std::sqrt(static_cast<T>(sq / n) + eps);
    for (int i = 0; i < n; ++i) o[i] = (v[i] - mu) * rs * w[i] + b[i];
    mean[r] = mu;
    rstd[r] = rs;
  }
}

template <typename T>
void layer_norm_backward(const T* dy, const T* x, int rows, int n, const T* w, const T* mean, const T* rstd, T* dx,
                         T* dw, T* db) {
  for (int r = 0; r < rows; ++r) {
    const T* v = x + static_cast<int64_t>(r) * n;
    const T* g = dy + static_cast<int64_t>(r) * n;
    double mean_g = 0.0, mean_gx = 0.0;
    for (int i = 0; i < n; ++i) {
      const double xhat = (v[i] - mean[r]) * rstd[r];
      const double gi = static_cast<double>(g[i]) * w[i];
      mean_g += gi;
      mean_gx += gi * xhat;
      if (dw) dw[i] += static_cast<T>(g[i] * xhat);
      if (db) db[i] += g[i];
    }
    mean_g /= n;
    mean_gx /= n;
    if (!dx) continue;
    T* d = dx + static_cast<int64_t>(r) * n;
    for (int i = 0; i < n; ++i) {
      const double xhat = (v[i] - mean[r]) * rstd[r];
      d[i] += static_cast<T>(rstd[r] * (static_cast<double>(g[i]) * w[i] - mean_g - xhat * mean_gx));
    }
  }
}

template <typename T>
void rms_norm_forward(const T* x, int rows, int n, const T* w, T eps, T* y, T* rstd) {
  for (int r = 0; r < rows; ++r) {
    const T* v = x + static_cast<int64_t>(r) * n;
    T* o = y + static_cast<int64_t>(r) * n;
    double sq = 0.0;
    for (int i = 0; i < n; ++i) sq += static_cast<double>(v[i]) * v[i];
    const T rs = static_cast<T>(1) / std::sqrt(static_cast<T>(sq / n) + eps);
    for (int i = 0; i < n; ++i) o[i] = (v[i] * rs) * (static_cast<T>(1) + w[i]);
    rstd[r] = rs;
  }
}

template <typename T>
void rms_norm_backward(const T* dy, const T* x, int rows, int n, const T* w, const T* rstd, T* dx, T* dw) {
  for (int r = 0; r < rows; ++r) {
    const T* v = x + static_cast<int64_t>(r) * n;
    const T* g = dy + static_cast<int64_t>(r) * n;
    const double rs = rstd[r];
    double mean_gx = 0.0;
    for (int i = 0; i < n; ++i) {
      mean_gx += static_cast<double>(g[i]) * (1.0 + w[i]) * v[i];
      if (dw) dw[i] += static_cast<T>(g[i] * v[i] * rs);
    }
    mean_gx /= n;
    if (!dx) continue;
    T* d = dx + static_cast<int64_t>(r) * n;
    for (int i = 0; i < n; ++i)
      d[i] += static_cast<T>(rs * (static_cast<double>(g[i]) * (1.0 + w[i]) - v[i] * rs * rs * mean_gx));
  }
}

namespace {

// tanh(u(x)) for the tanh GELU, u = c (x + a x^3): in float through the vectorised tanh of
// the inference kernels (absolute error ~1e-7), in double exactly.
template <typename T>
std::vector<T> gelu_inner_tanh(const T* x, int64_t n) {
  std::vector<T> t(n);
  for (int64_t i = 0; i < n; ++i)
    t[i] = static_cast<T>(kSqrt2OverPi) * (x[i] + static_cast<T>(kGeluCubic) * x[i] * x[i] * x[i]);
  if constexpr (std::is_same_v<T, float>) {
    kernels::soft_cap(t.data(), n, 1.0f);
  } else {
    for (T& v : t) v = std::tanh(v);
  }
  return t;
}
// The tanh GELU and its derivative from t = tanh(u(x)) (see gelu_tanh / gelu_tanh_grad).
template <typename T>
T gelu_from_tanh(T x, T t) {
  return static_cast<T>(0.5) * x * (static_cast<T>(1) + t);
}
template <typename T>
T gelu_grad_from_tanh(T x, T t) {
  const T du = static_cast<T>(kSqrt2OverPi) * (static_cast<T>(1) + static_cast<T>(3 * kGeluCubic) * x * x);
  return static_cast<T>(0.5) * (static_cast<T>(1) + t) + static_cast<T>(0.5) * x * (static_cast<T>(1) - t * t) * du;
}

}  // namespace

template <typename T>
void gelu_tanh_forward(const T* x, int64_t n, T* y) {
  const std::vector<T> t = gelu_inner_tanh(x, n);
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_from_tanh(x[i], t[i]);
}
template <typename T>
void gelu_tanh_backward(const T* dy, const T* x, int64_t n, T* dx) {
  const std::vector<T> t = gelu_inner_tanh(x, n);
  for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * gelu_grad_from_tanh(x[i], t[i]);
}
template <typename T>
void gelu_erf_forward(const T* x, int64_t n, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = gelu_erf(x[i]);
}
template <typename T>
void gelu_erf_backward(const T* dy, const T* x, int64_t n, T* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * gelu_erf_grad(x[i]);
}

template <typename T>
void geglu_forward(const T* gate, const T* up, int64_t n, bool exact, T* h) {
  if (exact) {
    for (int64_t i = 0; i < n; ++i) h[i] = gelu_erf(gate[i]) * up[i];
    return;
  }
  const std::vector<T> t = gelu_inner_tanh(gate, n);
  for (int64_t i = 0; i < n; ++i) h[i] = gelu_from_tanh(gate[i], t[i]) * up[i];
}
template <typename T>
void geglu_backward(const T* dh, const T* gate, const T* up, int64_t n, bool exact, T* dgate, T* dup) {
  if (exact) {
    for (int64_t i = 0; i < n; ++i) {
      if (dgate) dgate[i] += dh[i] * up[i] * gelu_erf_grad(gate[i]);
      if (dup) dup[i] += dh[i] * gelu_erf(gate[i]);
    }
    return;
  }
  const std::vector<T> t = gelu_inner_tanh(gate, n);
  for (int64_t i = 0; i < n; ++i) {
    if (dgate) dgate[i] += dh[i] * up[i] * gelu_grad_from_tanh(gate[i], t[i]);
    if (dup) dup[i] += dh[i] * gelu_from_tanh(gate[i], t[i]);
  }
}

template <typename T>
void soft_cap_forward(const T* x, int64_t n, T cap, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = cap * std::tanh(x[i] / cap);
}
template <typename T>
void soft_cap_backward(const T* dy, const T* y, int64_t n, T cap, T* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const T t = y[i] / cap;
    dx[i] += dy[i] * (static_cast<T>(1) - t * t);
  }
}

namespace {
template <typename T>
void rotate(T* x, int rows, int heads, int head_dim, const T* cos_t, const T* sin_t, T sign) {
  const int half = head_dim / 2;
  for (int r = 0; r < rows; ++r) {
    const T* c = cos_t + static_cast<int64_t>(r) * half;
    const T* s = sin_t + static_cast<int64_t>(r) * half;
    for (int h = 0; h < heads; ++h) {
      T* v = x + (static_cast<int64_t>(r) * heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const T a = v[i], b = v[i + half], si = sign * s[i];
        // x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1)
        v[i] = a * c[i] - b * si;
        v[i + half] = b * c[i] + a * si;
      }
    }
  }
}
}  // namespace

template <typename T>
void rope_forward(T* x, int rows, int heads, int head_dim, const T* cos_t, const T* sin_t) {
  rotate(x, rows, heads, head_dim, cos_t, sin_t, static_cast<T>(1));
}
template <typename T>
void rope_backward(T* dx, int rows, int heads, int head_dim, const T* cos_t, const T* sin_t) {
  rotate(dx, rows, heads, head_dim, cos_t, sin_t, static_cast<T>(-1));
}

namespace {

// Threads pay off above ~1 M multiply-adds (the tiny test shapes stay on one thread).
bool worth_threads(int heads, int rows, int head_dim) {
  return static_cast<double>(heads) * rows * rows * head_dim > 1e6;
}

// One query row of a head, in place: the scaled scores s[0, rows) become the probabilities
// over the visible keys [first, last) and zeros elsewhere (the backward multiplies by them, so
// masked keys get no gradient). With a soft-cap the scores are capped first and capd gets
// d capped / d raw = 1 - tanh^2 on [first, last) (the caller zeroes the rest).
template <typename T>
void softmax_row(T* s, T* capd, int rows, int first, int last, float softcap) {
  if (last <= first) {  // a query that sees no key
    std::fill(s, s + rows, T(0));
    return;
  }
  std::fill(s, s + first, T(0));
  std::fill(s + last, s + rows, T(0));
  const int n = last - first;
  T* x = s + first;
  if (softcap > 0.0f) {
    if constexpr (std::is_same_v<T, float>) {  // the vector tanh of the inference kernels
      kernels::soft_cap(x, n, softcap);
    } else {
      for (int j = 0; j < n; ++j) x[j] = static_cast<T>(softcap) * std::tanh(x[j] / softcap);
    }
    for (int j = 0; j < n; ++j) {  // tanh = capped / cap
      const T th = x[j] / static_cast<T>(softcap);
      capd[first + j] = static_cast<T>(1) - th * th;
    }
  }
  const T mx = *std::max_element(x, x + n);
  double sum = 0.0;
  if constexpr (std::is_same_v<T, float>) {  // the vector exp of the inference kernels
    kernels::exp_shifted(x, n, mx);
    for (int j = 0; j < n; ++j) sum += x[j];
  } else {
    for (int j = 0; j < n; ++j) {
      x[j] = std::exp(x[j] - mx);
      sum += x[j];
    }
  }
  for (int j = 0; j < n; ++j) x[j] = static_cast<T>(x[j] / sum);
}

}  // namespace

// Per head three steps: the scores of all rows at once (one GEMM), the masked softmax row by
// row, the output (one GEMM). Head h of q / o is the column block at h * D of rows H * D wide,
// kv head g the block at g * D of rows KVH * D wide: the GEMMs read them in place through the
// leading dimension. OpenBLAS threads the GEMMs; the softmax rows of all heads are spread over
// OpenMP threads between the two GEMM steps. Heads in parallel with one-thread GEMMs (OpenBLAS
// set to one thread around the region, dk / dv copies per thread) measured no faster at the
// world model's shapes (bench/kernels/train_attention_bench.cpp), so the simpler order stays.
template <typename T>
void attention_forward(const T* q, const T* k, const T* v, int rows, const kernels::AttentionShape& shape,
                       const kernels::AttentionMask& mask, T* o, AttentionSaved<T>* saved) {
  const int H = shape.num_heads, KVH = shape.num_kv_heads, D = shape.head_dim, group = H / KVH;
  const int qs = H * D, ks = KVH * D;
  const int64_t TT = static_cast<int64_t>(rows) * rows;
  const bool cap = shape.softcap > 0.0f;
  saved->p.resize(H * TT);  // every entry is written: the score GEMM, then the softmax
  saved->capd.assign(cap ? H * TT : 0, T(0));
  if (rows == 0) return;  // BLAS rejects a leading dimension of 0
  for (int h = 0; h < H; ++h)
    gemm(false, true, rows, rows, D, static_cast<T>(shape.scale), q + h * D, qs, k + (h / group) * D, ks, T(0),
         saved->p.data() + h * TT, rows);
#pragma omp parallel for schedule(static) if (worth_threads(H, rows, D))
  for (int64_t hr = 0; hr < static_cast<int64_t>(H) * rows; ++hr) {
    const int t = static_cast<int>(hr % rows);
    int first, last;
    kernels::attention_key_range(t, rows, mask, &first, &last);
    softmax_row(saved->p.data() + hr * rows, cap ? saved->capd.data() + hr * rows : nullptr, rows, first, last,
                shape.softcap);
  }
  // o = p v (a query that sees no key has a zero row of p, so a zero output).
  for (int h = 0; h < H; ++h)
    gemm(false, false, rows, D, rows, T(1), saved->p.data() + h * TT, rows, v + (h / group) * D, ks, T(0), o + h * D,
         qs);
}

// The same three steps backwards: dp = do v^T (GEMM), ds row by row, then the products into
// dq, dk, dv (GEMMs with beta = 1: they add, and the q heads of a kv group add into the same
// kv head one after the other).
template <typename T>
void attention_backward(const T* dout, const T* q, const T* k, const T* v, int rows,
                        const kernels::AttentionShape& shape, const kernels::AttentionMask& mask,
                        const AttentionSaved<T>& saved, T* dq, T* dk, T* dv) {
  const int H = shape.num_heads, KVH = shape.num_kv_heads, D = shape.head_dim, group = H / KVH;
  const int qs = H * D, ks = KVH * D;
  const int64_t TT = static_cast<int64_t>(rows) * rows;
  const bool cap = shape.softcap > 0.0f;
  const T scale = static_cast<T>(shape.scale);
  if (rows == 0) return;  // BLAS rejects a leading dimension of 0
  // dv += p^T do
  if (dv)
    for (int h = 0; h < H; ++h)
      gemm(true, false, rows, D, rows, T(1), saved.p.data() + h * TT, rows, dout + h * D, qs, T(1),
           dv + (h / group) * D, ks);
  if (!dq && !dk) return;
  // ds [H][T][T], first holding dp = do v^T.
  std::vector<T> ds(H * TT);
  for (int h = 0; h < H; ++h)
    gemm(false, true, rows, rows, D, T(1), dout + h * D, qs, v + (h / group) * D, ks, T(0), ds.data() + h * TT, rows);
#pragma omp parallel for schedule(static) if (worth_threads(H, rows, D))
  for (int64_t hr = 0; hr < static_cast<int64_t>(H) * rows; ++hr) {
    const int t = static_cast<int>(hr % rows);
    int first, last;
    kernels::attention_key_range(t, rows, mask, &first, &last);
    T* d = ds.data() + hr * rows;
    const T* p = saved.p.data() + hr * rows;
    // Softmax: ds_j = p_j (dp_j - sum_i p_i dp_i); then the cap; then the scale. Masked keys: 0.
    double pdp = 0.0;
    for (int j = first; j < last; ++j) pdp += static_cast<double>(p[j]) * d[j];
    std::fill(d, d + std::min(first, rows), T(0));
    std::fill(d + std::max(first, last), d + rows, T(0));
    const T* capd = cap ? saved.capd.data() + hr * rows : nullptr;
    for (int j = first; j < last; ++j) {
      T ds_j = p[j] * (d[j] - static_cast<T>(pdp));
      if (cap) ds_j *= capd[j];
      d[j] = ds_j * scale;
    }
  }
  for (int h = 0; h < H; ++h) {
    const T* d = ds.data() + h * TT;
    const int g = h / group;
    if (dq) gemm(false, false, rows, D, rows, T(1), d, rows, k + g * D, ks, T(1), dq + h * D, qs);  // dq += ds k
    if (dk) gemm(true, false, rows, D, rows, T(1), d, rows, q + h * D, qs, T(1), dk + g * D, ks);   // dk += ds^T q
  }
}

std::vector<uint8_t> dropout_mask(int64_t n, float p, uint64_t seed) {
  std::vector<uint8_t> keep(n, 1);
  if (p <= 0.0f) return keep;
  // splitmix64: a fixed, platform-independent stream.
  uint64_t state = seed;
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(p) * 18446744073709551616.0);
  for (int64_t i = 0; i < n; ++i) keep[i] = splitmix64_next(state) >= threshold;
  return keep;
}

template <typename T>
void apply_dropout(T* x, const std::vector<uint8_t>& keep, float p) {
  const T scale = static_cast<T>(1.0 / (1.0 - static_cast<double>(p)));
  for (size_t i = 0; i < keep.size(); ++i) x[i] = keep[i] ? x[i] * scale : T(0);
}

template <typename T>
double sigmoid_contrastive_loss(const T* img, const T* txt, int n, int dim, T t_prime, T bias, T* dimg, T* dtxt,
                                T* dt_prime, T* dbias) {
  // Unit rows and their norms (double: the sums of squares of a wide embedding).
  std::vector<double> x(static_cast<size_t>(n) * dim), y(x.size()), nx(n), ny(n);
  for (int i = 0; i < n; ++i) {
    double sx = 0, sy = 0;
    for (int d = 0; d < dim; ++d) {
      sx += static_cast<double>(img[i * dim + d]) * img[i * dim + d];
      sy += static_cast<double>(txt[i * dim + d]) * txt[i * dim + d];
    }
    nx[i] = std::sqrt(sx);
    ny[i] = std::sqrt(sy);
    if (nx[i] == 0 || ny[i] == 0) throw Error("sigmoid_contrastive_loss: an embedding is all zeros");
    for (int d = 0; d < dim; ++d) {
      x[i * dim + d] = img[i * dim + d] / nx[i];
      y[i * dim + d] = txt[i * dim + d] / ny[i];
    }
  }
  const double t = std::exp(static_cast<double>(t_prime));
  const bool grads = dimg || dtxt || dt_prime || dbias;
  std::vector<double> g(grads ? static_cast<size_t>(n) * n : 0);  // d loss / d logit_ij
  std::vector<double> cos(static_cast<size_t>(n) * n);
  double loss = 0, dt = 0, db = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double c = 0;
      for (int d = 0; d < dim; ++d) c += x[i * dim + d] * y[j * dim + d];
      cos[i * n + j] = c;
      const double label = i == j ? 1.0 : -1.0, u = label * (t * c + bias);
      // -log sigmoid(u) = softplus(-u), computed without overflow.
      loss += (u >= 0 ? std::log1p(std::exp(-u)) : -u + std::log1p(std::exp(u))) / n;
      if (!grads) continue;
      // d softplus(-u) / d logit = -label sigmoid(-u).
      const double s = u >= 0 ? std::exp(-u) / (1 + std::exp(-u)) : 1 / (1 + std::exp(u));
      const double gl = -label * s / n;
      g[i * n + j] = gl;
      dt += gl * c * t;
      db += gl;
    }
  if (!grads) return loss;
  if (dt_prime) *dt_prime += static_cast<T>(dt);
  if (dbias) *dbias += static_cast<T>(db);
  // d x_i = t sum_j g_ij y_j, d y_j = t sum_i g_ij x_i; then through the normalisation:
  // d img = (d x - x (x . d x)) / |img|.
  std::vector<double> dx(dim);
  for (int side = 0; side < 2; ++side) {
    T* out = side == 0 ? dimg : dtxt;
    if (!out) continue;
    const std::vector<double>& self = side == 0 ? x : y;
    const std::vector<double>& other = side == 0 ? y : x;
    const std::vector<double>& norm = side == 0 ? nx : ny;
    for (int i = 0; i < n; ++i) {
      std::fill(dx.begin(), dx.end(), 0.0);
      for (int j = 0; j < n; ++j) {
        const double gij = side == 0 ? g[i * n + j] : g[j * n + i];
        for (int d = 0; d < dim; ++d) dx[d] += t * gij * other[j * dim + d];
      }
      double proj = 0;
      for (int d = 0; d < dim; ++d) proj += self[i * dim + d] * dx[d];
      for (int d = 0; d < dim; ++d) out[i * dim + d] += static_cast<T>((dx[d] - self[i * dim + d] * proj) / norm[i]);
    }
  }
  return loss;
}

template <typename T>
double cross_entropy(const T* logits, int rows, int V, const int* targets, const T* weight, T label_smoothing,
                     T* dlogits) {
  double total = 0.0;
  const double eps = label_smoothing;
  for (int r = 0; r < rows; ++r) {
    const T* z = logits + static_cast<int64_t>(r) * V;
    T* dz = dlogits ? dlogits + static_cast<int64_t>(r) * V : nullptr;
    if (targets[r] < 0) {
      if (dz) std::fill(dz, dz + V, T(0));
      continue;
    }
    double mx = -INFINITY, sum_z = 0.0;
    for (int i = 0; i < V; ++i) {
      mx = std::max(mx, static_cast<double>(z[i]));
      sum_z += z[i];
    }
    double sum = 0.0;
    for (int i = 0; i < V; ++i) sum += std::exp(z[i] - mx);
    const double lse = mx + std::log(sum);
    // -sum_i q_i log p_i with q_target = 1 - eps, q_other = eps / (V - 1) (big_vision's
    // trainers/proj/paligemma/train.py), log p_i = z_i - lse.
    const double zt = z[targets[r]];
    const double loss = (1.0 - eps) * (lse - zt) + eps * (lse - (sum_z - zt) / (V - 1));
    total += weight[r] * loss;
    if (!dz) continue;
    for (int i = 0; i < V; ++i) {
      const double p = std::exp(z[i] - lse);
      const double q = i == targets[r] ? 1.0 - eps : eps / (V - 1);
      dz[i] = static_cast<T>(weight[r] * (p - q));
    }
  }
  return total;
}

#define PG_TRAIN_INSTANTIATE(T)                                                                                    \
  template void linear_forward<T>(const T*, int, int, const T*, const T*, int, T*);                                \
  template void linear_backward<T>(const T*, const T*, const T*, int, int, int, T*, T*, T*);                       \
  template void layer_norm_forward<T>(const T*, int, int, const T*, const T*, T, T*, T*, T*);                      \
  template void layer_norm_backward<T>(const T*, const T*, int, int, const T*, const T*, const T*, T*, T*, T*);    \
  template void rms_norm_forward<T>(const T*, int, int, const T*, T, T*, T*);                                      \
  template void rms_norm_backward<T>(const T*, const T*, int, int, const T*, const T*, T*, T*);                    \
  template void gelu_tanh_forward<T>(const T*, int64_t, T*);                                                       \
  template void gelu_tanh_backward<T>(const T*, const T*, int64_t, T*);                                            \
  template void gelu_erf_forward<T>(const T*, int64_t, T*);                                                        \
  template void gelu_erf_backward<T>(const T*, const T*, int64_t, T*);                                             \
  template void geglu_forward<T>(const T*, const T*, int64_t, bool, T*);                                           \
  template void geglu_backward<T>(const T*, const T*, const T*, int64_t, bool, T*, T*);                            \
  template void soft_cap_forward<T>(const T*, int64_t, T, T*);                                                     \
  template void soft_cap_backward<T>(const T*, const T*, int64_t, T, T*);                                          \
  template void rope_forward<T>(T*, int, int, int, const T*, const T*);                                            \
  template void rope_backward<T>(T*, int, int, int, const T*, const T*);                                           \
  template void attention_forward<T>(const T*, const T*, const T*, int, const kernels::AttentionShape&,            \
                                     const kernels::AttentionMask&, T*, AttentionSaved<T>*);                       \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, int, const kernels::AttentionShape&, \
                                      const kernels::AttentionMask&, const AttentionSaved<T>&, T*, T*, T*);        \
  template double cross_entropy<T>(const T*, int, int, const int*, const T*, T, T*);                               \
  template double sigmoid_contrastive_loss<T>(const T*, const T*, int, int, T, T, T*, T*, T*, T*);                 \
  template void apply_dropout<T>(T*, const std::vector<uint8_t>&, float);

PG_TRAIN_INSTANTIATE(float)
PG_TRAIN_INSTANTIATE(double)

}  // namespace pg::train
