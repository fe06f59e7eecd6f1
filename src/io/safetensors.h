#pragma once
// Parser for one .safetensors file held in memory (normally a MappedFile):
//   [8 bytes: little-endian u64 N][N bytes: JSON header][data section]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} with
// offsets relative to the start of the data section, plus an optional "__metadata__"
// object of string values. Everything is validated; errors name the file and tensor.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "paligemma/tensor.h"

namespace pg {

struct SafetensorsFile {
  std::string path;
  size_t header_size = 0;              // N, the JSON header length in bytes
  const uint8_t* data_section = nullptr;  // bytes + 8 + N
  size_t data_size = 0;                // bytes in the data section
  std::map<std::string, std::string> metadata;  // "__metadata__", if any
  // Tensors in the order of their data offsets (ties by name); views point into `bytes`.
  std::vector<TensorView> tensors;
  // data_offsets of tensors[i] relative to data_section.
  std::vector<std::pair<size_t, size_t>> offsets;
};

// Parses and validates the file image `bytes[0, size)`; `path` is only used in messages.
// The returned views stay valid as long as `bytes` does.
SafetensorsFile parse_safetensors(const std::string& path, const uint8_t* bytes, size_t size);

// Maps a safetensors dtype string to DType. Throws (naming `context`) for dtypes that
// exist in the format but are unsupported here (I64, F64, F8_E4M3, ...) and unknown ones.
DType parse_safetensors_dtype(const std::string& dtype, const std::string& context);

}  // namespace pg
