#pragma once
// The convolutions of the mask VQ-VAE (include/paligemma/mask_codec.h) with their backward
// passes, for training (src/seg/vae_train.cpp). Activations are NHWC ([batch, h, w, channels]
// row-major) so that a 1x1 convolution is a plain matrix product and im2col copies whole
// channel runs. Weights stay in PyTorch's layout (what vae-oid.npz stores and what the
// optimiser updates); each call permutes them into the GEMM layout, which costs nothing next to
// the products. Every convolution is im2col + OpenBLAS sgemm; every backward ADDS into its
// gradient outputs (dx, dw, db; null: not wanted), as train/layers.h does.
// The copies run on one thread: they are short and memory-bound, and OpenMP regions around
// them cost far more than they save on a shared 2-core machine (a 32-mask step took 0.37 s
// with them, 0.044 s without); OpenBLAS threads the products itself.
#include <cstddef>
#include <vector>

namespace pg::seg {

// One cross-correlation: output pixel (oy, ox) reads input row oy * stride - pad_top + ky and
// column ox * stride - pad_left + kx, ky, kx in [0, kernel); taps outside the input read 0.
struct ConvGeometry {
  int in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int kernel = 1, stride = 1, pad_top = 0, pad_left = 0;
  int in_pixels() const { return in_h * in_w; }
  int out_pixels() const { return out_h * out_w; }
};

// TensorFlow's 'SAME' padding (the encoder, big_vision's _conv_tf): out = ceil(in / stride),
// the odd padding pixel after.
ConvGeometry same_geometry(int in_h, int in_w, int kernel, int stride);

// PyTorch ConvTranspose2d(kernel, stride, padding) maps in_h x in_w to
// (in - 1) * stride - 2 * padding + kernel. It is the transpose of the convolution returned
// here, whose *input* is the transposed conv's output and whose output grid is its input.
ConvGeometry transposed_geometry(int in_h, int in_w, int kernel, int stride, int padding);

// cols[batch * out_pixels, kernel * kernel * channels], each row ordered (ky, kx, c).
void im2col(const float* x, int batch, int channels, const ConvGeometry& g, float* cols);
// The adjoint: x[batch, in_h, in_w, channels] += the columns scattered back.
void col2im_add(const float* cols, int batch, int channels, const ConvGeometry& g, float* x);

// Conv2d with weight (cout, cin, k, k) and bias (cout): x [batch, in_h, in_w, cin] ->
// y [batch, out_h, out_w, cout] (overwritten).
void conv2d_forward(const float* x, int batch, int cin, int cout, const ConvGeometry& g, const float* weight,
                    const float* bias, float* y);
void conv2d_backward(const float* dy, const float* x, int batch, int cin, int cout, const ConvGeometry& g,
                     const float* weight, float* dx, float* dweight, float* dbias);

// ConvTranspose2d with weight (cin, cout, k, k) and bias (cout), g from transposed_geometry:
// x [batch, g.out_h, g.out_w, cin] -> y [batch, g.in_h, g.in_w, cout] (overwritten).
void conv_transpose2d_forward(const float* x, int batch, int cin, int cout, const ConvGeometry& g, const float* weight,
                              const float* bias, float* y);
void conv_transpose2d_backward(const float* dy, const float* x, int batch, int cin, int cout, const ConvGeometry& g,
                               const float* weight, float* dx, float* dweight, float* dbias);

void relu_inplace(float* x, size_t n);
// dy *= (y > 0), with y the ReLU's output.
void relu_backward_inplace(float* dy, const float* y, size_t n);

}  // namespace pg::seg
