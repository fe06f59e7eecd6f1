#pragma once
// Tensors as the checkpoint stores them: a dtype, a shape and a pointer into a
// memory-mapped file. Weights stay in their stored dtype (no second copy); kernels
// convert on the fly, so bf16 / f16 / quantized weights all flow through the same views.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pg {

// I8 / U8 hold quantised weights (their meaning comes with their scales, see
// src/kernels/quantize.h); converting them to f32 gives the raw integers.
enum class DType { F32, BF16, F16, I8, U8 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // safetensors spelling: "F32", "BF16", "F16", "I8", "U8"

// Shape as text for messages: "[2048, 1152]".
std::string shape_string(const std::vector<int64_t>& shape);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool empty() const { return data == nullptr; }
};

// Scalar conversions shared by every kernel path.
float bf16_to_f32(uint16_t bits);
uint16_t f32_to_bf16(float value);  // round to nearest even, as torch
float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);  // round to nearest even, overflow to inf, NaN stays NaN

// Converts `count` elements of `src` (stored as `dtype`) starting at element `offset`
// into f32.
void convert_to_f32(DType dtype, const void* src, size_t offset, size_t count, float* dst);

}  // namespace pg
