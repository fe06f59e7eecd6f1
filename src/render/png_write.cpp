// PNG output with stb_image_write (the one STB_IMAGE_WRITE_IMPLEMENTATION of the library).
#include <cstdint>
#include <string>
#include <vector>

#include "paligemma/annotate.h"
#include "paligemma/error.h"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace pg {
namespace {

void write_png_channels(const std::string& path, int width, int height, int channels, const uint8_t* data) {
  if (path.empty()) throw Error("write_png: empty output path");
  if (width <= 0 || height <= 0)
    throw Error("write_png: cannot write '" + path + "': empty image (" + std::to_string(width) + "x" +
                std::to_string(height) + ")");
  // stb_image_write sizes its buffer in int: refuse what would overflow it.
  if (static_cast<int64_t>(width) * channels * height + height > INT32_MAX)
    throw Error("write_png: cannot write '" + path + "': " + std::to_string(width) + "x" + std::to_string(height) +
                " is too large for a PNG written in one piece");
  if (stbi_write_png(path.c_str(), width, height, channels, data, width * channels) == 0)
    throw Error("write_png: cannot write '" + path + "'");
}

}  // namespace

void write_png(const std::string& path, const Image& image) {
  if (image.width > 0 && image.height > 0 &&
      image.rgb.size() != size_t(image.width) * size_t(image.height) * 3)
    throw Error("write_png: cannot write '" + path + "': image data holds " + std::to_string(image.rgb.size()) +
                " bytes, expected " + std::to_string(size_t(image.width) * size_t(image.height) * 3));
  write_png_channels(path, image.width, image.height, 3, image.rgb.data());
}

void write_mask_png(const std::string& path, const BinaryMask& mask) {
  if (mask.width > 0 && mask.height > 0 && mask.data.size() != size_t(mask.width) * size_t(mask.height))
    throw Error("write_mask_png: cannot write '" + path + "': mask data holds " + std::to_string(mask.data.size()) +
                " values, expected " + std::to_string(size_t(mask.width) * size_t(mask.height)));
  std::vector<uint8_t> gray(mask.data.size());
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = mask.data[i] ? 255 : 0;
  write_png_channels(path, mask.width, mask.height, 1, gray.data());
}

}  // namespace pg
