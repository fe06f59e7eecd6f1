#pragma once
// Linear layers: y[M,N] = x[M,K] * W[N,K]^T (+ bias[N]), W in PyTorch's Linear layout and in
// its stored format (f32 / bf16 / f16 from safetensors, or int8 / q4 from `paligemma
// quantize`). This is the one entry point of the hot loop; it picks the kernel for the
// active path (include/paligemma/backend.h) and the number of rows:
//   few rows (decoding):  a fused read-widen-dot over the weight, f32 activations, bound by
//                         memory bandwidth;
//   many rows (prefill, image): compute-bound products, AMX / AVX-512 BF16 tiles with bf16
//                         activations (Precision::BF16) or f32 sgemm (Precision::F32).
#include "kernels/weight_matrix.h"

namespace pg::kernels {

// x: [M, K] f32 row-major; y: [M, N] f32 row-major; bias: null or [N] f32. `region` names the
// call in the profiler (include/paligemma/profile.h); by default the kernel taken names it.
void matmul(const float* x, int M, const WeightMatrix& weight, const float* bias, float* y,
            const char* region = nullptr);

// dx[M, K] += dy[M, N] W[N, K] for a weight of any format, in f32 (the input gradient of a
// linear layer whose weight is frozen in the checkpoint; training's backward pass).
void matmul_transposed_add(const float* dy, int M, const WeightMatrix& weight, float* dx);

// Rows at or below this count take the bandwidth-bound (decode) kernels.
constexpr int kSmallRows = 8;

}  // namespace pg::kernels
