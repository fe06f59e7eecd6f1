#pragma once
// Writes .safetensors files as Hugging Face's `safetensors` does: an 8-byte little-endian
// header length, a compact JSON header ("__metadata__" first, then the tensors in data
// order) padded with spaces to a multiple of 8 bytes, then the tensor bytes back to back.
// Tensors are laid out F32 first, then BF16, then F16 (each group sorted by name), so
// every tensor is aligned to its element size. Used by the tests and by fine-tune export.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "paligemma/tensor.h"

namespace pg {

// Writes `tensors` (name, dtype, shape and `data` pointing at numel * dtype_size bytes,
// little-endian) to `path`. The file is written to "<path>.tmp" and renamed into place.
// Throws pg::Error for duplicate / empty names, negative shapes, null data, or I/O errors.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Builds the header + data image in memory (what write_safetensors writes).
std::vector<uint8_t> serialize_safetensors(const std::vector<TensorView>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

// Convenience owner of tensor data for building files piece by piece.
class SafetensorsWriter {
 public:
  // Copies numel(shape) * dtype_size(dtype) bytes from `data`.
  void add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
           const void* data);
  // Converts f32 values to `dtype` (round to nearest even) and stores them.
  void add_f32(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
               const float* values);
  void add_f32(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
               const std::vector<float>& values);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  size_t size() const { return entries_.size(); }
  std::vector<uint8_t> serialize() const;
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<TensorView> views() const;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace pg
