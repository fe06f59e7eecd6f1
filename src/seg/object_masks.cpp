#include <algorithm>
#include <cmath>

#include "paligemma/error.h"
#include "paligemma/image.h"
#include "paligemma/segmentation.h"

namespace pg {

PixelBox pixel_box(const Box& box) {
  PixelBox p;
  p.x1 = static_cast<int>(std::lround(box.x0));
  p.y1 = static_cast<int>(std::lround(box.y0));
  p.x2 = std::max(p.x1 + 1, static_cast<int>(std::lround(box.x1)));
  p.y2 = std::max(p.y1 + 1, static_cast<int>(std::lround(box.y1)));
  return p;
}

std::vector<std::optional<BinaryMask>> decode_masks(const ParsedAnswer& answer, const MaskCodec& codec,
                                                    int image_width, int image_height) {
  std::vector<std::optional<BinaryMask>> out;
  for (const ParsedObject& o : answer.objects) {
    if (!o.seg) {
      out.emplace_back(std::nullopt);
      continue;
    }
    BinaryMask m;
    m.width = image_width;
    m.height = image_height;
    m.data = mask_in_box(codec.decode_logits(*o.seg), pixel_box(o.box), image_width, image_height);
    out.emplace_back(std::move(m));
  }
  return out;
}

DetectedObjects detect_objects(ParsedAnswer answer, const MaskCodec* codec, int image_width, int image_height) {
  DetectedObjects out;
  out.answer = std::move(answer);
  if (image_width <= 0 || image_height <= 0 ||
      static_cast<int64_t>(image_width) * image_height > kMaxImagePixels)
    throw Error("image size " + std::to_string(image_width) + "x" + std::to_string(image_height) +
                " is outside (0, " + std::to_string(kMaxImagePixels) + "] pixels for decoding masks");
  bool any_seg = false;
  for (const auto& o : out.answer.objects) any_seg |= o.seg.has_value();
  if (!any_seg) return out;
  if (!codec) throw Error("the answer has <seg> codes: a VQ-VAE (big_vision's vae-oid.npz, --vae) is needed to decode its masks");
  out.masks = decode_masks(out.answer, *codec, image_width, image_height);
  return out;
}

DetectedObjects detect_objects(const Result& result, const Tokenizer& tokenizer, const MaskCodec* codec,
                               int image_width, int image_height, Bins bins) {
  return detect_objects(parse_result(result, tokenizer, image_width, image_height, bins), codec, image_width,
                        image_height);
}

std::array<int, 16> encode_mask(const MaskCodec& codec, const BinaryMask& mask, const Box& box) {
  if (mask.width <= 0 || mask.height <= 0 ||
      mask.data.size() != static_cast<size_t>(mask.width) * static_cast<size_t>(mask.height))
    throw Error("encode_mask: the mask must hold width x height values");
  std::vector<uint8_t> scaled(mask.data.size());
  for (size_t i = 0; i < scaled.size(); ++i) scaled[i] = mask.data[i] ? 255 : 0;  // big_vision's uint8 masks
  return codec.encode(mask_to_64(scaled.data(), mask.width, mask.height, pixel_box(box)));
}

}  // namespace pg
