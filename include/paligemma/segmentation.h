#pragma once
// Masks of parsed `segment` answers: each object's 16 <seg> codes decoded by the VQ-VAE into
// a full-resolution mask of the original image, and the inverse (a mask -> its 16 codes) for
// building segmentation targets.
#include <array>
#include <optional>
#include <vector>

#include "paligemma/mask_codec.h"
#include "paligemma/metrics.h"
#include "paligemma/structured.h"

namespace pg {

// The pixel box a mask is pasted into: box edges rounded to the nearest pixel, at least one
// pixel wide and high (as the display code of Google's demo: round(box * size)).
PixelBox pixel_box(const Box& box);

// One entry per object of `answer`: the decoded mask (width x height, 1 inside) for objects
// with seg codes, nullopt for plain detections.
std::vector<std::optional<BinaryMask>> decode_masks(const ParsedAnswer& answer, const MaskCodec& codec,
                                                    int image_width, int image_height);

// An answer as objects: boxes (parse_answer / parse_result) and, for objects with <seg> codes,
// their decoded masks. `codec` may be null when the answer has no <seg> codes; an answer with
// codes and no codec throws pg::Error saying a VQ-VAE (vae-oid.npz) is needed.
struct DetectedObjects {
  ParsedAnswer answer;
  std::vector<std::optional<BinaryMask>> masks;  // one per object when decoded, else empty
};
DetectedObjects detect_objects(ParsedAnswer answer, const MaskCodec* codec, int image_width, int image_height);
DetectedObjects detect_objects(const Result& result, const Tokenizer& tokenizer, const MaskCodec* codec,
                               int image_width, int image_height, Bins bins = Bins::Demo);

// The codes of `mask` (same size as the original image, nonzero inside) within `box`: the
// encoder side of segmentation targets (segmentation_target in structured.h takes them).
std::array<int, 16> encode_mask(const MaskCodec& codec, const BinaryMask& mask, const Box& box);

}  // namespace pg
