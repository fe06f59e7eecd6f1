#include "seg/conv_layers.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "paligemma/error.h"

namespace pg::seg {

namespace {

// C[M, N] = alpha op(A) op(B) + beta C, row-major.
void sgemm(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float beta,
           float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B,
              ldb, beta, C, ldc);
}

// PyTorch (a, b, k, k) -> [a][(ky, kx, b)], the column order of im2col.
std::vector<float> kernel_to_gemm(const float* w, int a, int b, int k) {
  std::vector<float> out(static_cast<size_t>(a) * b * k * k);
  for (int i = 0; i < a; ++i)
    for (int j = 0; j < b; ++j)
      for (int t = 0; t < k * k; ++t)
        out[(static_cast<size_t>(i) * k * k + t) * b + j] = w[(static_cast<size_t>(i) * b + j) * k * k + t];
  return out;
}

void gemm_to_kernel_add(const std::vector<float>& g, int a, int b, int k, float* w) {
  for (int i = 0; i < a; ++i)
    for (int j = 0; j < b; ++j)
      for (int t = 0; t < k * k; ++t)
        w[(static_cast<size_t>(i) * b + j) * k * k + t] += g[(static_cast<size_t>(i) * k * k + t) * b + j];
}

// db[c] += sum over rows of dy[rows, c] (serial per channel: the same sums on every run).
void bias_grad_add(const float* dy, int64_t rows, int channels, float* db) {
  std::vector<double> acc(channels, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int c = 0; c < channels; ++c) acc[c] += dy[r * channels + c];
  for (int c = 0; c < channels; ++c) db[c] += static_cast<float>(acc[c]);
}

void check_geometry(const ConvGeometry& g) {
  if (g.in_h <= 0 || g.in_w <= 0 || g.out_h <= 0 || g.out_w <= 0 || g.kernel <= 0 || g.stride <= 0)
    throw Error("convolution: empty geometry");
}

}  // namespace

ConvGeometry same_geometry(int in_h, int in_w, int kernel, int stride) {
  ConvGeometry g;
  g.in_h = in_h;
  g.in_w = in_w;
  g.kernel = kernel;
  g.stride = stride;
  g.out_h = (in_h + stride - 1) / stride;
  g.out_w = (in_w + stride - 1) / stride;
  g.pad_top = std::max((g.out_h - 1) * stride + kernel - in_h, 0) / 2;
  g.pad_left = std::max((g.out_w - 1) * stride + kernel - in_w, 0) / 2;
  check_geometry(g);
  return g;
}

ConvGeometry transposed_geometry(int in_h, int in_w, int kernel, int stride, int padding) {
  ConvGeometry g;
  g.out_h = in_h;
  g.out_w = in_w;
  g.in_h = (in_h - 1) * stride - 2 * padding + kernel;
  g.in_w = (in_w - 1) * stride - 2 * padding + kernel;
  g.kernel = kernel;
  g.stride = stride;
  g.pad_top = g.pad_left = padding;
  check_geometry(g);
  return g;
}

void im2col(const float* x, int batch, int channels, const ConvGeometry& g, float* cols) {
  const int k = g.kernel;
  const size_t row = static_cast<size_t>(k) * k * channels;
  for (int by = 0; by < batch * g.out_h; ++by) {
    const int b = by / g.out_h, oy = by % g.out_h;
    const float* xb = x + static_cast<size_t>(b) * g.in_pixels() * channels;
    for (int ox = 0; ox < g.out_w; ++ox) {
      float* dst = cols + (static_cast<size_t>(by) * g.out_w + ox) * row;
      for (int ky = 0; ky < k; ++ky) {
        const int iy = oy * g.stride - g.pad_top + ky;
        for (int kx = 0; kx < k; ++kx, dst += channels) {
          const int ix = ox * g.stride - g.pad_left + kx;
          if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w)
            std::memset(dst, 0, sizeof(float) * channels);
          else
            std::memcpy(dst, xb + (static_cast<size_t>(iy) * g.in_w + ix) * channels, sizeof(float) * channels);
        }
      }
    }
  }
}

void col2im_add(const float* cols, int batch, int channels, const ConvGeometry& g, float* x) {
  const int k = g.kernel;
  const size_t row = static_cast<size_t>(k) * k * channels;
  // A fixed summation order: bit-identical runs, which resuming relies on.
  for (int b = 0; b < batch; ++b) {
    float* xb = x + static_cast<size_t>(b) * g.in_pixels() * channels;
    for (int oy = 0; oy < g.out_h; ++oy)
      for (int ox = 0; ox < g.out_w; ++ox) {
        const float* src = cols + ((static_cast<size_t>(b) * g.out_h + oy) * g.out_w + ox) * row;
        for (int ky = 0; ky < k; ++ky) {
          const int iy = oy * g.stride - g.pad_top + ky;
          for (int kx = 0; kx < k; ++kx, src += channels) {
            const int ix = ox * g.stride - g.pad_left + kx;
            if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
            float* dst = xb + (static_cast<size_t>(iy) * g.in_w + ix) * channels;
            for (int c = 0; c < channels; ++c) dst[c] += src[c];
          }
        }
      }
  }
}

void conv2d_forward(const float* x, int batch, int cin, int cout, const ConvGeometry& g, const float* weight,
                    const float* bias, float* y) {
  const int64_t rows = static_cast<int64_t>(batch) * g.out_pixels();
  const int kkc = g.kernel * g.kernel * cin;
  const std::vector<float> w = kernel_to_gemm(weight, cout, cin, g.kernel);
  for (int64_t r = 0; r < rows; ++r) std::memcpy(y + r * cout, bias, sizeof(float) * cout);
  if (g.kernel == 1 && g.stride == 1 && g.pad_top == 0 && g.pad_left == 0) {  // a plain product
    sgemm(false, true, static_cast<int>(rows), cout, cin, x, cin, w.data(), cin, 1.0f, y, cout);
    return;
  }
  std::vector<float> cols(static_cast<size_t>(rows) * kkc);
  im2col(x, batch, cin, g, cols.data());
  sgemm(false, true, static_cast<int>(rows), cout, kkc, cols.data(), kkc, w.data(), kkc, 1.0f, y, cout);
}

void conv2d_backward(const float* dy, const float* x, int batch, int cin, int cout, const ConvGeometry& g,
                     const float* weight, float* dx, float* dweight, float* dbias) {
  const int64_t rows = static_cast<int64_t>(batch) * g.out_pixels();
  const int kkc = g.kernel * g.kernel * cin;
  const bool plain = g.kernel == 1 && g.stride == 1 && g.pad_top == 0 && g.pad_left == 0;
  std::vector<float> cols;
  const float* a = x;
  if (!plain) {
    cols.resize(static_cast<size_t>(rows) * kkc);
    im2col(x, batch, cin, g, cols.data());
    a = cols.data();
  }
  if (dweight) {  // dW[cout, kkc] = dy^T cols
    std::vector<float> dw(static_cast<size_t>(cout) * kkc);
    sgemm(true, false, cout, kkc, static_cast<int>(rows), dy, cout, a, kkc, 0.0f, dw.data(), kkc);
    gemm_to_kernel_add(dw, cout, cin, g.kernel, dweight);
  }
  if (dbias) bias_grad_add(dy, rows, cout, dbias);
  if (dx) {  // dcols = dy W
    const std::vector<float> w = kernel_to_gemm(weight, cout, cin, g.kernel);
    if (plain) {
      sgemm(false, false, static_cast<int>(rows), cin, cout, dy, cout, w.data(), cin, 1.0f, dx, cin);
    } else {
      sgemm(false, false, static_cast<int>(rows), kkc, cout, dy, cout, w.data(), kkc, 0.0f, cols.data(), kkc);
      col2im_add(cols.data(), batch, cin, g, dx);
    }
  }
}

void conv_transpose2d_forward(const float* x, int batch, int cin, int cout, const ConvGeometry& g, const float* weight,
                              const float* bias, float* y) {
  const int64_t rows = static_cast<int64_t>(batch) * g.out_pixels();  // input pixels of the transposed conv
  const int kkc = g.kernel * g.kernel * cout;
  const std::vector<float> w = kernel_to_gemm(weight, cin, cout, g.kernel);  // [cin][(ky, kx, cout)]
  std::vector<float> cols(static_cast<size_t>(rows) * kkc);
  sgemm(false, false, static_cast<int>(rows), kkc, cin, x, cin, w.data(), kkc, 0.0f, cols.data(), kkc);
  const int64_t out_rows = static_cast<int64_t>(batch) * g.in_pixels();
  for (int64_t r = 0; r < out_rows; ++r) std::memcpy(y + r * cout, bias, sizeof(float) * cout);
  col2im_add(cols.data(), batch, cout, g, y);
}

void conv_transpose2d_backward(const float* dy, const float* x, int batch, int cin, int cout, const ConvGeometry& g,
                               const float* weight, float* dx, float* dweight, float* dbias) {
  const int64_t rows = static_cast<int64_t>(batch) * g.out_pixels();
  const int kkc = g.kernel * g.kernel * cout;
  std::vector<float> cols(static_cast<size_t>(rows) * kkc);
  im2col(dy, batch, cout, g, cols.data());
  if (dweight) {  // dW[cin, kkc] = x^T im2col(dy)
    std::vector<float> dw(static_cast<size_t>(cin) * kkc);
    sgemm(true, false, cin, kkc, static_cast<int>(rows), x, cin, cols.data(), kkc, 0.0f, dw.data(), kkc);
    gemm_to_kernel_add(dw, cin, cout, g.kernel, dweight);
  }
  if (dbias) bias_grad_add(dy, static_cast<int64_t>(batch) * g.in_pixels(), cout, dbias);
  if (dx) {  // dx = im2col(dy) W^T
    const std::vector<float> w = kernel_to_gemm(weight, cin, cout, g.kernel);
    sgemm(false, true, static_cast<int>(rows), cin, kkc, cols.data(), kkc, w.data(), kkc, 1.0f, dx, cin);
  }
}

void relu_inplace(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = std::max(x[i], 0.0f);
}

void relu_backward_inplace(float* dy, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!(y[i] > 0.0f)) dy[i] = 0.0f;
}

}  // namespace pg::seg
