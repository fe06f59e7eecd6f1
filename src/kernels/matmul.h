#pragma once
// Linear layers: y[M,N] = x[M,K] * W[N,K]^T (+ bias[N]), W in PyTorch's Linear layout and
// in its stored dtype. This is the one place the hot loop lives, so faster paths (AMX, int8,
// 4-bit) replace the body of matmul() without touching the model code.
#include "paligemma/tensor.h"

namespace pg::kernels {

// `weight` is [N, K] (any supported dtype); `bias` is empty or [N]. `x` and `y` are f32,
// row-major, x with row stride K and y with row stride N.
void matmul(const float* x, int M, const TensorView& weight, const TensorView* bias, float* y);

}  // namespace pg::kernels
