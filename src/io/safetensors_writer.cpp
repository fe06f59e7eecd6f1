#include "paligemma/safetensors_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "paligemma/error.h"

namespace pg {

namespace {

// HF's order: dtype descending (F32 > BF16 > F16), then name.
int dtype_rank(DType dtype) {
  switch (dtype) {
    case DType::F32: return 0;
    case DType::BF16: return 1;
    case DType::F16: return 2;
    case DType::I8: return 3;
    case DType::U8: return 4;
  }
  throw Error("safetensors writer: invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

size_t checked_nbytes(const TensorView& t) {
  uint64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 0)
      throw Error("safetensors writer: tensor " + t.name + " has a negative dimension in shape " +
                  shape_string(t.shape));
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n))
      throw Error("safetensors writer: tensor " + t.name + " shape " + shape_string(t.shape) +
                  " overflows");
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(n, static_cast<uint64_t>(dtype_size(t.dtype)), &bytes))
    throw Error("safetensors writer: tensor " + t.name + " shape " + shape_string(t.shape) +
                " overflows");
  return static_cast<size_t>(bytes);
}

struct Layout {
  std::string prefix;  // 8-byte length + padded JSON header
  std::vector<const TensorView*> order;
  std::vector<size_t> sizes;
  size_t data_bytes = 0;
};

Layout plan(const std::vector<TensorView>& tensors,
            const std::map<std::string, std::string>& metadata) {
  Layout layout;
  layout.order.reserve(tensors.size());
  std::set<std::string> seen;
  for (const TensorView& t : tensors) {
    if (t.name.empty()) throw Error("safetensors writer: tensor with an empty name");
    if (t.name == "__metadata__")
      throw Error("safetensors writer: \"__metadata__\" cannot be a tensor name");
    if (!seen.insert(t.name).second)
      throw Error("safetensors writer: duplicate tensor name " + t.name);
    dtype_rank(t.dtype);  // validates the enum value
    layout.order.push_back(&t);
  }
  std::stable_sort(layout.order.begin(), layout.order.end(),
                   [](const TensorView* a, const TensorView* b) {
                     int ra = dtype_rank(a->dtype), rb = dtype_rank(b->dtype);
                     if (ra != rb) return ra < rb;
                     return a->name < b->name;
                   });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  size_t offset = 0;
  for (const TensorView* t : layout.order) {
    size_t nbytes = checked_nbytes(*t);
    if (nbytes > 0 && t->data == nullptr)
      throw Error("safetensors writer: tensor " + t->name + " has no data");
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = dtype_name(t->dtype);
    entry["shape"] = t->shape;
    entry["data_offsets"] = {offset, offset + nbytes};
    header[t->name] = std::move(entry);
    offset += nbytes;
    layout.sizes.push_back(nbytes);
  }
  layout.data_bytes = offset;

  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  layout.prefix.reserve(8 + text.size());
  for (int i = 0; i < 8; ++i) layout.prefix.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  layout.prefix += text;
  return layout;
}

}  // namespace

std::vector<uint8_t> serialize_safetensors(const std::vector<TensorView>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  Layout layout = plan(tensors, metadata);
  std::vector<uint8_t> out;
  out.reserve(layout.prefix.size() + layout.data_bytes);
  out.insert(out.end(), layout.prefix.begin(), layout.prefix.end());
  for (size_t i = 0; i < layout.order.size(); ++i) {
    const uint8_t* p = static_cast<const uint8_t*>(layout.order[i]->data);
    if (layout.sizes[i] > 0) out.insert(out.end(), p, p + layout.sizes[i]);
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // The data is streamed from the caller's buffers: no second copy of a multi-GB model.
  Layout layout = plan(tensors, metadata);
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    int err = errno;
    throw Error("cannot create " + tmp + ": " + std::strerror(err));
  }
  auto fail = [&](const std::string& what) {
    int err = errno;
    std::fclose(f);
    std::remove(tmp.c_str());
    throw Error("cannot write " + path + " (" + what + "): " + std::strerror(err));
  };
  if (std::fwrite(layout.prefix.data(), 1, layout.prefix.size(), f) != layout.prefix.size())
    fail("header");
  for (size_t i = 0; i < layout.order.size(); ++i) {
    if (layout.sizes[i] == 0) continue;
    if (std::fwrite(layout.order[i]->data, 1, layout.sizes[i], f) != layout.sizes[i])
      fail("tensor " + layout.order[i]->name);
  }
  if (std::fflush(f) != 0) fail("flush");
  if (std::fclose(f) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw Error("cannot write " + path + " (close): " + std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    throw Error("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
  }
}

// ---- SafetensorsWriter -----------------------------------------------------------------

void SafetensorsWriter::add(const std::string& name, DType dtype,
                            const std::vector<int64_t>& shape, const void* data) {
  TensorView probe;
  probe.name = name;
  probe.dtype = dtype;
  probe.shape = shape;
  size_t nbytes = checked_nbytes(probe);
  if (nbytes > 0 && data == nullptr)
    throw Error("safetensors writer: tensor " + name + " has no data");
  for (const Entry& e : entries_)
    if (e.name == name) throw Error("safetensors writer: duplicate tensor name " + name);
  Entry entry{name, dtype, shape, {}};
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (nbytes > 0) entry.bytes.assign(p, p + nbytes);
  entries_.push_back(std::move(entry));
}

void SafetensorsWriter::add_f32(const std::string& name, DType dtype,
                                const std::vector<int64_t>& shape, const float* values) {
  TensorView probe;
  probe.name = name;
  probe.dtype = DType::F32;
  probe.shape = shape;
  const size_t count = checked_nbytes(probe) / sizeof(float);
  if (count > 0 && values == nullptr)
    throw Error("safetensors writer: tensor " + name + " has no data");
  switch (dtype) {
    case DType::F32:
      add(name, dtype, shape, values);
      return;
    case DType::BF16:
    case DType::F16: {
      std::vector<uint16_t> half(count);
      for (size_t i = 0; i < count; ++i)
        half[i] = dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      add(name, dtype, shape, half.data());
      return;
    }
  }
  throw Error("safetensors writer: invalid DType for tensor " + name);
}

void SafetensorsWriter::add_f32(const std::string& name, DType dtype,
                                const std::vector<int64_t>& shape,
                                const std::vector<float>& values) {
  TensorView probe;
  probe.name = name;
  probe.shape = shape;
  if (static_cast<size_t>(probe.numel()) != values.size())
    throw Error("safetensors writer: tensor " + name + " has shape " + shape_string(shape) +
                " but " + std::to_string(values.size()) + " values");
  add_f32(name, dtype, shape, values.data());
}

std::vector<TensorView> SafetensorsWriter::views() const {
  std::vector<TensorView> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) {
    TensorView v;
    v.name = e.name;
    v.dtype = e.dtype;
    v.shape = e.shape;
    v.data = e.bytes.empty() ? nullptr : e.bytes.data();
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<uint8_t> SafetensorsWriter::serialize() const {
  return serialize_safetensors(views(), metadata_);
}

void SafetensorsWriter::write(const std::string& path) const {
  write_safetensors(path, views(), metadata_);
}

}  // namespace pg
