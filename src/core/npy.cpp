#include "core/file.h"
#include "paligemma/npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "paligemma/error.h"
#include "paligemma/tensor.h"

namespace pg {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

struct DtypeInfo {
  const char* code;
  size_t itemsize;
};
constexpr DtypeInfo kDtypes[] = {{"f4", 4}, {"f8", 8}, {"f2", 2}, {"i8", 8}, {"i4", 4},
                                 {"i2", 2}, {"i1", 1}, {"u1", 1}, {"u2", 2}, {"u4", 4},
                                 {"u8", 8}, {"b1", 1}};

size_t itemsize_of(const std::string& code) {
  for (const auto& d : kDtypes)
    if (code == d.code) return d.itemsize;
  return 0;
}

// A minimal reader for the Python dict literal numpy writes as the header:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  struct Value {
    enum Kind { String, Bool, Tuple } kind;
    std::string str;
    bool boolean = false;
    std::vector<int64_t> ints;
  };

  std::vector<std::pair<std::string, Value>> parse_dict() {
    std::vector<std::pair<std::string, Value>> out;
    skip_ws();
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        break;
      }
      std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      Value value = parse_value(key);
      out.emplace_back(std::move(key), std::move(value));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_ws();
      expect('}');
      break;
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path_ + ": malformed .npy header (" + what + " at offset " +
                std::to_string(pos_) + "): " + s_);
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                                s_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != q) out += s_[pos_++];
    if (pos_ >= s_.size()) fail("unterminated string");
    ++pos_;
    return out;
  }
  int64_t parse_int() {
    size_t start = pos_;
    if (peek() == '-') ++pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    if (pos_ == start || (pos_ == start + 1 && s_[start] == '-')) fail("expected an integer");
    std::string digits = s_.substr(start, pos_ - start);
    if (peek() == 'L') ++pos_;  // Python 2 long literal
    errno = 0;
    long long v = std::strtoll(digits.c_str(), nullptr, 10);
    if (errno == ERANGE) fail("integer " + digits + " out of range");
    return v;
  }
  Value parse_value(const std::string& key) {
    Value v{};
    char c = peek();
    if (c == '\'' || c == '"') {
      v.kind = Value::String;
      v.str = parse_string();
    } else if (s_.compare(pos_, 4, "True") == 0) {
      v.kind = Value::Bool;
      v.boolean = true;
      pos_ += 4;
    } else if (s_.compare(pos_, 5, "False") == 0) {
      v.kind = Value::Bool;
      v.boolean = false;
      pos_ += 5;
    } else if (c == '(') {
      v.kind = Value::Tuple;
      ++pos_;
      while (true) {
        skip_ws();
        if (peek() == ')') {
          ++pos_;
          break;
        }
        v.ints.push_back(parse_int());
        skip_ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect(')');
        break;
      }
    } else if (c == '[' && key == "descr") {
      throw Error(path_ + ": structured .npy dtypes are not supported (descr is a list): " + s_);
    } else {
      fail("unexpected value for '" + key + "'");
    }
    return v;
  }

  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}


std::string shape_tuple(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) out += ",";
  out += ")";
  return out;
}

// The .npy header (magic, version, padded dict) for `descr` and `shape`; `what` names the
// array in error messages. Returns the data size in bytes through `nbytes`.
std::string npy_header(const std::string& what, const char* descr, size_t itemsize, const std::vector<int64_t>& shape,
                       uint64_t& nbytes) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("write_npy " + what + ": negative dimension in shape " +
                           shape_string(shape));
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel))
      throw Error("write_npy " + what + ": shape " + shape_string(shape) + " overflows");
  }
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(itemsize), &nbytes))
    throw Error("write_npy " + what + ": shape " + shape_string(shape) + " overflows");

  std::string dict = std::string("{'descr': '") + descr +
                     "', 'fortran_order': False, 'shape': " + shape_tuple(shape) + ", }";
  // Pad with spaces and a final newline so the data starts 64-byte aligned (as numpy).
  auto padded_size = [&](size_t prefix) { return (prefix + dict.size() + 1 + 63) / 64 * 64; };
  size_t prefix = kMagicLen + 2 + 2;
  int major = 1;
  if (padded_size(prefix) - prefix > 65535) {  // too long for a 2-byte length: version 2.0
    major = 2;
    prefix = kMagicLen + 2 + 4;
  }
  const size_t total = prefix + dict.size() + 1;
  const size_t padded = padded_size(prefix);
  dict.append(padded - total, ' ');
  dict += '\n';

  std::string head(kMagic, kMagicLen);
  head += static_cast<char>(major);
  head += '\0';
  const uint32_t hlen = static_cast<uint32_t>(dict.size());
  head += static_cast<char>(hlen & 0xFF);
  head += static_cast<char>((hlen >> 8) & 0xFF);
  if (major == 2) {
    head += static_cast<char>((hlen >> 16) & 0xFF);
    head += static_cast<char>((hlen >> 24) & 0xFF);
  }
  head += dict;
  return head;
}

void write_npy_raw(const std::string& path, const char* descr, const void* data,
                   size_t itemsize, const std::vector<int64_t>& shape) {
  uint64_t nbytes = 0;
  const std::string head = npy_header(path, descr, itemsize, shape, nbytes);
  if (nbytes > 0 && data == nullptr) throw Error("write_npy " + path + ": no data");

  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    int err = errno;
    throw Error("cannot create " + path + ": " + std::strerror(err));
  }
  bool ok = std::fwrite(head.data(), 1, head.size(), f) == head.size();
  if (ok && nbytes > 0) ok = std::fwrite(data, 1, nbytes, f) == nbytes;
  int err = errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(path.c_str());
    throw Error("cannot write " + path + ": " + std::strerror(err));
  }
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> NpyArray::as_f32() const {
  const size_t n = static_cast<size_t>(numel());
  const size_t isz = itemsize_of(dtype);
  if (isz == 0) throw Error("NpyArray::as_f32: unsupported dtype " + dtype);
  if (bytes.size() < n * isz)
    throw Error("NpyArray::as_f32: " + std::to_string(bytes.size()) + " bytes for " +
                std::to_string(n) + " elements of " + dtype);
  std::vector<float> out(n);
  const uint8_t* p = bytes.data();
  if (dtype == "f4") {
    if (n) std::memcpy(out.data(), p, n * 4);
  } else if (dtype == "f8") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<double>(p + 8 * i));
  } else if (dtype == "f2") {
    for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(load<uint16_t>(p + 2 * i));
  } else if (dtype == "i8") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<int64_t>(p + 8 * i));
  } else if (dtype == "i4") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<int32_t>(p + 4 * i));
  } else if (dtype == "i2") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<int16_t>(p + 2 * i));
  } else if (dtype == "i1") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<int8_t>(p[i]));
  } else if (dtype == "u1") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
  } else if (dtype == "u2") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<uint16_t>(p + 2 * i));
  } else if (dtype == "u4") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<uint32_t>(p + 4 * i));
  } else if (dtype == "u8") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<uint64_t>(p + 8 * i));
  } else if (dtype == "b1") {
    for (size_t i = 0; i < n; ++i) out[i] = p[i] ? 1.0f : 0.0f;
  }
  return out;
}

std::vector<int64_t> NpyArray::as_i64() const {
  const size_t n = static_cast<size_t>(numel());
  const size_t isz = itemsize_of(dtype);
  if (isz == 0) throw Error("NpyArray::as_i64: unsupported dtype " + dtype);
  if (dtype[0] == 'f')
    throw Error("NpyArray::as_i64: array has floating-point dtype " + dtype +
                " (use as_f32)");
  if (bytes.size() < n * isz)
    throw Error("NpyArray::as_i64: " + std::to_string(bytes.size()) + " bytes for " +
                std::to_string(n) + " elements of " + dtype);
  std::vector<int64_t> out(n);
  const uint8_t* p = bytes.data();
  if (dtype == "i8") {
    if (n) std::memcpy(out.data(), p, n * 8);
  } else if (dtype == "i4") {
    for (size_t i = 0; i < n; ++i) out[i] = load<int32_t>(p + 4 * i);
  } else if (dtype == "i2") {
    for (size_t i = 0; i < n; ++i) out[i] = load<int16_t>(p + 2 * i);
  } else if (dtype == "i1") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(p[i]);
  } else if (dtype == "u1") {
    for (size_t i = 0; i < n; ++i) out[i] = p[i];
  } else if (dtype == "u2") {
    for (size_t i = 0; i < n; ++i) out[i] = load<uint16_t>(p + 2 * i);
  } else if (dtype == "u4") {
    for (size_t i = 0; i < n; ++i) out[i] = load<uint32_t>(p + 4 * i);
  } else if (dtype == "u8") {
    for (size_t i = 0; i < n; ++i) {
      uint64_t v = load<uint64_t>(p + 8 * i);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw Error("NpyArray::as_i64: u8 value " + std::to_string(v) + " at index " +
                    std::to_string(i) + " does not fit in int64");
      out[i] = static_cast<int64_t>(v);
    }
  } else if (dtype == "b1") {
    for (size_t i = 0; i < n; ++i) out[i] = p[i] ? 1 : 0;
  }
  return out;
}

NpyArray read_npy(const std::string& path) {
  const std::string file = read_file(path);
  return parse_npy(reinterpret_cast<const uint8_t*>(file.data()), file.size(), path);
}

NpyArray parse_npy(const uint8_t* data_begin, size_t size, const std::string& name) {
  // `path` names the source in every message: a file path, or "archive.npz:member.npy".
  const std::string& path = name;
  const uint8_t* bytes = data_begin;
  // The parsing below only needs size() and substr() of the whole image.
  struct View {
    const uint8_t* p;
    size_t n;
    size_t size() const { return n; }
    const char* data() const { return reinterpret_cast<const char*>(p); }
    std::string substr(size_t pos, size_t len) const {
      return std::string(reinterpret_cast<const char*>(p) + pos, len);
    }
  } file{data_begin, size};
  if (size > 0 && data_begin == nullptr) throw Error(path + ": no data");
  if (file.size() < kMagicLen + 2 || std::memcmp(file.data(), kMagic, kMagicLen) != 0) {
    throw Error(path + " is not a .npy file (it does not start with the \\x93NUMPY magic)");
  }
  const int major = bytes[6];
  const int minor = bytes[7];
  size_t len_bytes;
  if (major == 1) {
    len_bytes = 2;
  } else if (major == 2 || major == 3) {
    len_bytes = 4;
  } else {
    throw Error(path + ": unsupported .npy format version " + std::to_string(major) + "." +
                std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
  }
  const size_t prefix = kMagicLen + 2 + len_bytes;
  if (file.size() < prefix)
    throw Error(path + " is truncated: " + std::to_string(file.size()) +
                " bytes, shorter than the .npy header length field");
  size_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i)
    header_len |= static_cast<size_t>(bytes[kMagicLen + 2 + i]) << (8 * i);
  if (header_len > file.size() - prefix)
    throw Error(path + " is truncated: its .npy header claims " + std::to_string(header_len) +
                " bytes but only " + std::to_string(file.size() - prefix) + " follow");
  const std::string header = file.substr(prefix, header_len);

  std::string descr;
  bool have_descr = false, have_order = false, have_shape = false;
  bool fortran = false;
  NpyArray array;
  for (auto& [key, value] : HeaderParser(header, path).parse_dict()) {
    if (key == "descr") {
      if (value.kind != HeaderParser::Value::String)
        throw Error(path + ": .npy header 'descr' is not a string: " + header);
      descr = value.str;
      have_descr = true;
    } else if (key == "fortran_order") {
      if (value.kind != HeaderParser::Value::Bool)
        throw Error(path + ": .npy header 'fortran_order' is not True/False: " + header);
      fortran = value.boolean;
      have_order = true;
    } else if (key == "shape") {
      if (value.kind != HeaderParser::Value::Tuple)
        throw Error(path + ": .npy header 'shape' is not a tuple: " + header);
      array.shape = value.ints;
      have_shape = true;
    }
  }
  if (!have_descr || !have_order || !have_shape)
    throw Error(path + ": .npy header lacks " +
                std::string(!have_descr ? "'descr'" : !have_order ? "'fortran_order'" : "'shape'") +
                ": " + header);
  if (fortran)
    throw Error(path + ": Fortran-order (fortran_order: True) .npy arrays are not supported; "
                       "save a C-contiguous array (np.ascontiguousarray)");

  if (descr.size() < 2) throw Error(path + ": unsupported .npy dtype '" + descr + "'");
  char order = descr[0];
  std::string code = descr;
  if (order == '<' || order == '>' || order == '|' || order == '=') {
    code = descr.substr(1);
  } else {
    order = '|';
  }
  if (code == "?") code = "b1";
  const size_t itemsize = itemsize_of(code);
  if (itemsize == 0)
    throw Error(path + ": unsupported .npy dtype '" + descr +
                "' (supported: f4 f8 f2 i8 i4 i2 i1 u1 u2 u4 u8 b1)");
  if (order == '>' && itemsize > 1)
    throw Error(path + ": big-endian .npy dtype '" + descr + "' is not supported");
  array.dtype = code;

  uint64_t numel = 1;
  for (int64_t d : array.shape) {
    if (d < 0)
      throw Error(path + ": .npy shape " + shape_string(array.shape) + " has a negative dimension");
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel))
      throw Error(path + ": .npy shape " + shape_string(array.shape) + " overflows");
  }
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(itemsize), &nbytes))
    throw Error(path + ": .npy shape " + shape_string(array.shape) + " overflows");
  const size_t available = file.size() - prefix - header_len;
  if (nbytes > available)
    throw Error(path + " is truncated: shape " + shape_string(array.shape) + " of " + code +
                " needs " + std::to_string(nbytes) + " data bytes but only " +
                std::to_string(available) + " follow the header");
  // Trailing bytes are allowed (several arrays may be saved into one stream).
  const uint8_t* data = bytes + prefix + header_len;
  array.bytes.assign(data, data + nbytes);
  return array;
}

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  write_npy_raw(path, "<f4", data, 4, shape);
}
void write_npy(const std::string& path, const int64_t* data, const std::vector<int64_t>& shape) {
  write_npy_raw(path, "<i8", data, 8, shape);
}
void write_npy(const std::string& path, const uint8_t* data, const std::vector<int64_t>& shape) {
  write_npy_raw(path, "|u1", data, 1, shape);
}

std::vector<uint8_t> encode_npy(const NpyArray& array, const std::string& name) {
  const size_t isz = itemsize_of(array.dtype);
  if (isz == 0) throw Error("write_npy " + name + ": unsupported dtype " + array.dtype);
  const std::string descr = (isz == 1 ? "|" : "<") + array.dtype;
  uint64_t nbytes = 0;
  const std::string head = npy_header(name, descr.c_str(), isz, array.shape, nbytes);
  if (array.bytes.size() != nbytes)
    throw Error("write_npy " + name + ": " + std::to_string(array.bytes.size()) + " bytes for shape " +
                shape_string(array.shape) + " of " + array.dtype + " (" + std::to_string(nbytes) + " expected)");
  std::vector<uint8_t> out(head.begin(), head.end());
  out.insert(out.end(), array.bytes.begin(), array.bytes.end());
  return out;
}

namespace {
NpyArray npy_array_raw(const std::vector<int64_t>& shape, const char* dtype, const void* data, size_t itemsize) {
  NpyArray a;
  a.shape = shape;
  a.dtype = dtype;
  a.bytes.resize(static_cast<size_t>(a.numel()) * itemsize);
  if (!a.bytes.empty()) std::memcpy(a.bytes.data(), data, a.bytes.size());
  return a;
}
}  // namespace

NpyArray npy_array_f32(const std::vector<int64_t>& shape, const float* data) {
  return npy_array_raw(shape, "f4", data, 4);
}
NpyArray npy_array_i64(const std::vector<int64_t>& shape, const int64_t* data) {
  return npy_array_raw(shape, "i8", data, 8);
}

}  // namespace pg
