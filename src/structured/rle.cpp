// COCO RLE, as pycocotools' maskApi.c (rleEncode, rleDecode, rleToString, rleFrString).
#include "paligemma/rle.h"

#include <limits>

#include "paligemma/error.h"

namespace pg {
namespace {

void check_size(int height, int width, const char* what) {
  if (height < 0 || width < 0)
    throw Error(std::string(what) + ": negative mask size " + std::to_string(height) + "x" + std::to_string(width));
}

void check_sum(const CocoRle& rle, const char* what) {
  uint64_t sum = 0;
  for (uint32_t c : rle.counts) sum += c;
  const uint64_t expected = uint64_t(rle.height) * uint64_t(rle.width);
  if (sum != expected)
    throw Error(std::string(what) + ": RLE counts sum to " + std::to_string(sum) + ", expected height*width = " +
                std::to_string(expected) + " (" + std::to_string(rle.height) + "x" + std::to_string(rle.width) +
                ")");
}

}  // namespace

CocoRle rle_encode(const BinaryMask& mask) {
  check_size(mask.height, mask.width, "rle_encode");
  const size_t h = size_t(mask.height), w = size_t(mask.width);
  if (mask.data.size() != h * w)
    throw Error("rle_encode: mask data holds " + std::to_string(mask.data.size()) + " values, expected " +
                std::to_string(h * w) + " (" + std::to_string(mask.width) + "x" + std::to_string(mask.height) + ")");
  if (h * w > UINT32_MAX)
    throw Error("rle_encode: a " + std::to_string(mask.width) + "x" + std::to_string(mask.height) +
                " mask has more pixels than COCO RLE's 32-bit counts can hold");
  CocoRle rle;
  rle.height = mask.height;
  rle.width = mask.width;
  uint8_t previous = 0;
  uint32_t run = 0;
  for (size_t x = 0; x < w; ++x) {
    for (size_t y = 0; y < h; ++y) {
      const uint8_t v = mask.data[y * w + x] != 0 ? 1 : 0;
      if (v != previous) {
        rle.counts.push_back(run);
        run = 0;
        previous = v;
      }
      ++run;
    }
  }
  rle.counts.push_back(run);
  return rle;
}

BinaryMask rle_decode(const CocoRle& rle) {
  check_size(rle.height, rle.width, "rle_decode");
  check_sum(rle, "rle_decode");
  const size_t h = size_t(rle.height), w = size_t(rle.width);
  BinaryMask mask;
  mask.height = rle.height;
  mask.width = rle.width;
  mask.data.assign(h * w, 0);
  size_t j = 0;  // column-major index
  uint8_t v = 0;
  for (uint32_t c : rle.counts) {
    for (uint32_t k = 0; k < c; ++k, ++j) {
      if (v) mask.data[(j % h) * w + j / h] = 1;
    }
    v ^= 1;
  }
  return mask;
}

std::string rle_to_string(const CocoRle& rle) {
  std::string s;
  s.reserve(rle.counts.size() * 2);
  for (size_t i = 0; i < rle.counts.size(); ++i) {
    int64_t x = int64_t(rle.counts[i]);
    if (i > 2) x -= int64_t(rle.counts[i - 2]);
    bool more = true;
    while (more) {
      char c = char(x & 0x1f);
      x >>= 5;  // arithmetic shift, as maskApi.c on its `long`
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(char(c + 48));
    }
  }
  return s;
}

CocoRle rle_from_string(const std::string& counts, int height, int width) {
  check_size(height, width, "rle_from_string");
  CocoRle rle;
  rle.height = height;
  rle.width = width;
  size_t p = 0;
  while (p < counts.size()) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    const size_t start = p;
    while (more) {
      if (p >= counts.size())
        throw Error("rle_from_string: counts string ends inside a value (at byte " + std::to_string(start) + ")");
      const int c = int(static_cast<unsigned char>(counts[p])) - 48;
      if (c < 0 || c > 63)
        throw Error("rle_from_string: invalid character '" + std::string(1, counts[p]) + "' at byte " +
                    std::to_string(p) + " (expected '0'..'o')");
      if (k >= 8)
        throw Error("rle_from_string: value too long at byte " + std::to_string(start));
      x |= int64_t(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= int64_t(-1) * (int64_t(1) << (5 * k));  // sign-extend
    }
    const size_t m = rle.counts.size();
    if (m > 2) x += int64_t(rle.counts[m - 2]);
    if (x < 0 || x > int64_t(std::numeric_limits<uint32_t>::max()))
      throw Error("rle_from_string: count " + std::to_string(x) + " out of range at byte " + std::to_string(start));
    rle.counts.push_back(uint32_t(x));
  }
  check_sum(rle, "rle_from_string");
  return rle;
}

}  // namespace pg
