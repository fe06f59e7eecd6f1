#include "kernels/weight_matrix.h"

#include "kernels/quantize.h"
#include "paligemma/error.h"

namespace pg::kernels {

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::F32: return "f32";
    case WeightFormat::BF16: return "bf16";
    case WeightFormat::F16: return "f16";
    case WeightFormat::Int8: return "int8";
    case WeightFormat::Q4: return "q4";
  }
  return "invalid";
}

int64_t WeightMatrix::row_bytes() const {
  switch (format) {
    case WeightFormat::F32: return cols * 4;
    case WeightFormat::BF16:
    case WeightFormat::F16: return cols * 2;
    case WeightFormat::Int8: return cols;
    case WeightFormat::Q4: return q4_row_bytes(cols);
  }
  return 0;
}

int64_t WeightMatrix::total_bytes() const {
  int64_t bytes = rows * row_bytes();
  if (format == WeightFormat::Int8) bytes += rows * 4;
  if (format == WeightFormat::Q4) bytes += rows * q4_blocks(cols) * 2;
  return bytes;
}

namespace {

WeightMatrix from_view(const TensorView& t, int64_t rows, int64_t cols) {
  WeightMatrix w;
  w.name = t.name;
  w.rows = rows;
  w.cols = cols;
  w.data = t.data;
  switch (t.dtype) {
    case DType::F32: w.format = WeightFormat::F32; break;
    case DType::BF16: w.format = WeightFormat::BF16; break;
    case DType::F16: w.format = WeightFormat::F16; break;
    default:
      throw Error("tensor " + t.name + " has dtype " + dtype_name(t.dtype) +
                  ", which is not a float weight format (quantised weights need their scales)");
  }
  return w;
}

}  // namespace

WeightMatrix weight_from_tensor(const TensorView& t) {
  if (t.shape.size() != 2) throw Error("weight " + t.name + " must be 2-D, has shape " + shape_string(t.shape));
  return from_view(t, t.shape[0], t.shape[1]);
}

WeightMatrix weight_from_tensor_flat(const TensorView& t) {
  if (t.shape.empty()) throw Error("weight " + t.name + " must have at least one dimension");
  int64_t cols = 1;
  for (size_t i = 1; i < t.shape.size(); ++i) cols *= t.shape[i];
  return from_view(t, t.shape[0], cols);
}

}  // namespace pg::kernels
