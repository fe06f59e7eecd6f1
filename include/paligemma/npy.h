#pragma once
// NumPy .npy files: written by `paligemma run --dump` so anyone can diff against
// transformers, and read by the tests to load golden data made by tools/golden.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pg {

struct NpyArray {
  std::vector<int64_t> shape;
  std::string dtype;             // numpy descr without byte order: "f4", "i8", "u1", ...
  std::vector<uint8_t> bytes;    // little-endian, C order

  int64_t numel() const;
  std::vector<float> as_f32() const;    // f4, f8, f2, integer types converted
  std::vector<int64_t> as_i64() const;  // integer types (and bool) converted
};

NpyArray read_npy(const std::string& path);
// The same parser on an in-memory .npy image (e.g. a member of a .npz); `name` prefixes
// every error message exactly as the path does for read_npy.
NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& name);
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const int64_t* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const uint8_t* data, const std::vector<int64_t>& shape);
// The bytes of a .npy file holding `array` (e.g. a member of a .npz); `name` is used in error
// messages (an unknown dtype, or bytes that do not match the shape).
std::vector<uint8_t> encode_npy(const NpyArray& array, const std::string& name);
// f4 / i8 arrays from host values (little-endian hosts, as every reader here assumes).
NpyArray npy_array_f32(const std::vector<int64_t>& shape, const float* data);
NpyArray npy_array_i64(const std::vector<int64_t>& shape, const int64_t* data);

}  // namespace pg
