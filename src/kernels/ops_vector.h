#pragma once
// ISA-specific bodies of element-wise ops (see ops.cpp for the dispatch and the reference).
#include <cstdint>

namespace pg::kernels::detail {

void gelu_tanh_avx512(float* x, int64_t n);
void gelu_tanh_avx2(float* x, int64_t n);
void soft_cap_avx512(float* x, int64_t n, float cap);
void soft_cap_avx2(float* x, int64_t n, float cap);
void exp_shifted_avx512(float* x, int64_t n, float shift);
void exp_shifted_avx2(float* x, int64_t n, float shift);

}  // namespace pg::kernels::detail
