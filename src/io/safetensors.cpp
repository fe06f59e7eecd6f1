#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "paligemma/error.h"

namespace pg {

namespace {

using nlohmann::json;

// Every dtype the safetensors format defines (safetensors 0.5), for better messages.
const char* const kKnownUnsupported[] = {"BOOL",    "I16",      "U16",
                                         "I32",     "U32",    "I64",     "U64",      "F64",
                                         "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3",
                                         "F6_E3M2", "F4",     "E8M0",    "C64"};

std::string json_brief(const json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

// A non-negative JSON integer that fits in int64 (and so in size_t), or throws.
uint64_t json_to_u64(const json& value, const std::string& context, const char* what) {
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw Error(context + " has " + what + " " + std::to_string(v) + ", which overflows int64");
    return v;
  }
  if (value.is_number_integer()) {
    int64_t v = value.get<int64_t>();
    if (v < 0) throw Error(context + " has negative " + what + " " + std::to_string(v));
    return static_cast<uint64_t>(v);
  }
  throw Error(context + " has " + what + " " + json_brief(value) + ", which is not an integer");
}

}  // namespace

DType parse_safetensors_dtype(const std::string& dtype, const std::string& context) {
  if (dtype == "F32") return DType::F32;
  if (dtype == "BF16") return DType::BF16;
  if (dtype == "F16") return DType::F16;
  if (dtype == "I8") return DType::I8;
  if (dtype == "U8") return DType::U8;
  for (const char* known : kKnownUnsupported) {
    if (dtype == known)
      throw Error(context + " has dtype " + dtype +
                  ", which is not supported (supported: F32, BF16, F16, I8, U8)");
  }
  throw Error(context + " has unknown dtype \"" + dtype + "\" (supported: F32, BF16, F16, I8, U8)");
}

SafetensorsFile parse_safetensors(const std::string& path, const uint8_t* bytes, size_t size) {
  SafetensorsFile file;
  file.path = path;
  if (size < 8) {
    throw Error(path + " is " + std::to_string(size) +
                " bytes, too short for a safetensors file (it must start with an 8-byte "
                "header length)");
  }
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  const size_t available = size - 8;
  if (header_size > available) {
    throw Error("safetensors header claims " + std::to_string(header_size) + " bytes but " +
                path + " has only " + std::to_string(available) +
                " bytes after the 8-byte length (truncated or not a safetensors file)");
  }
  file.header_size = static_cast<size_t>(header_size);
  file.data_section = bytes + 8 + file.header_size;
  file.data_size = available - file.header_size;

  // The header may be padded (spaces per the format; be lenient about NULs too).
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  size_t text_len = file.header_size;
  while (text_len > 0 && (text[text_len - 1] == ' ' || text[text_len - 1] == '\0')) --text_len;

  json header;
  try {
    header = json::parse(text, text + text_len);
  } catch (const json::exception& e) {
    throw Error(path + ": safetensors header (" + std::to_string(header_size) +
                " bytes) is not valid JSON: " + e.what());
  }
  if (!header.is_object())
    throw Error(path + ": safetensors header is not a JSON object but " +
                std::string(header.type_name()));

  struct Item {
    TensorView view;
    size_t begin, end;
  };
  std::vector<Item> items;
  items.reserve(header.size());

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (entry.is_null()) continue;
      if (!entry.is_object())
        throw Error(path + ": safetensors __metadata__ is not a JSON object but " +
                    std::string(entry.type_name()));
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          throw Error(path + ": safetensors __metadata__ value for \"" + m.key() +
                      "\" is not a string: " + json_brief(m.value()));
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string context = "tensor " + name + " in " + path;
    if (name.empty()) throw Error(path + ": safetensors header has a tensor with an empty name");
    if (!entry.is_object())
      throw Error(context + ": header entry is not a JSON object but " +
                  std::string(entry.type_name()));
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
      if (!entry.contains(field))
        throw Error(context + ": header entry has no \"" + field + "\" field");
    }
    const json& jdtype = entry["dtype"];
    const json& jshape = entry["shape"];
    const json& joffsets = entry["data_offsets"];
    if (!jdtype.is_string())
      throw Error(context + ": \"dtype\" is not a string: " + json_brief(jdtype));

    Item item;
    item.view.name = name;
    item.view.dtype = parse_safetensors_dtype(jdtype.get<std::string>(), context);

    if (!jshape.is_array())
      throw Error(context + ": \"shape\" is not an array: " + json_brief(jshape));
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& dim : jshape) {
      uint64_t d = json_to_u64(dim, context, "dimension");
      item.view.shape.push_back(static_cast<int64_t>(d));
      if (__builtin_mul_overflow(numel, d, &numel)) overflow = true;
    }
    uint64_t nbytes = 0;
    if (overflow || numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(item.view.dtype)),
                               &nbytes)) {
      throw Error(context + " has shape " + shape_string(item.view.shape) +
                  ", whose size overflows 64 bits");
    }

    if (!joffsets.is_array() || joffsets.size() != 2)
      throw Error(context + ": \"data_offsets\" is not an array of two integers: " +
                  json_brief(joffsets));
    uint64_t begin = json_to_u64(joffsets[0], context, "data offset");
    uint64_t end = json_to_u64(joffsets[1], context, "data offset");
    if (end < begin)
      throw Error(context + " has data_offsets [" + std::to_string(begin) + ", " +
                  std::to_string(end) + "] whose end is before its begin");
    if (end > file.data_size)
      throw Error("tensor " + name + " needs bytes [" + std::to_string(begin) + ", " +
                  std::to_string(end) + ") but " + path + "'s data section has only " +
                  std::to_string(file.data_size) + " bytes (truncated file?)");
    if (end - begin != nbytes)
      throw Error(context + ": header lies about size: data_offsets [" + std::to_string(begin) +
                  ", " + std::to_string(end) + ") span " + std::to_string(end - begin) +
                  " bytes but " + dtype_name(item.view.dtype) + " " +
                  shape_string(item.view.shape) + " needs " + std::to_string(nbytes));
    item.begin = static_cast<size_t>(begin);
    item.end = static_cast<size_t>(end);
    item.view.data = file.data_section + item.begin;
    items.push_back(std::move(item));
  }

  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    return a.view.name < b.view.name;
  });
  file.tensors.reserve(items.size());
  file.offsets.reserve(items.size());
  for (Item& item : items) {
    file.offsets.emplace_back(item.begin, item.end);
    file.tensors.push_back(std::move(item.view));
  }
  return file;
}

}  // namespace pg
