#pragma once
// A weight matrix as the kernels see it: [rows, cols] in PyTorch's Linear layout (one output
// feature per row), in its stored format, pointing into the mapped checkpoint. Float formats
// are read straight from safetensors; Int8 and Q4 come from `paligemma quantize` files
// (docs/QUANTIZATION.md) and carry their scales beside the data.
#include <cstdint>
#include <string>

#include "paligemma/tensor.h"

namespace pg::kernels {

enum class WeightFormat {
  F32,
  BF16,
  F16,
  Int8,  // int8 [rows, cols], symmetric per row: w = q * scale[row] (scales: f32 [rows])
  Q4     // 4-bit, blocks of 32 along a row (the last one zero-padded): see quantize.h
};

const char* weight_format_name(WeightFormat format);  // "f32", "bf16", "f16", "int8", "q4"

struct WeightMatrix {
  std::string name;
  WeightFormat format = WeightFormat::F32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;
  const void* scales = nullptr;  // Int8: float[rows]; Q4: uint16 (f16) [rows, q4_blocks(cols)]

  bool empty() const { return data == nullptr; }
  // Bytes of one row of `data` (the stride between rows).
  int64_t row_bytes() const;
  // Bytes of data + scales.
  int64_t total_bytes() const;
};

// A float-typed 2-D tensor view as a weight matrix (throws for other ranks or dtypes).
WeightMatrix weight_from_tensor(const TensorView& tensor);
// Same, reading a tensor of any rank as [shape[0], prod(rest)] (the patch-embedding kernel).
WeightMatrix weight_from_tensor_flat(const TensorView& tensor);

}  // namespace pg::kernels
