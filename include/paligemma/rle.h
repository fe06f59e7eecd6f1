#pragma once
// COCO run-length encoding of binary masks, byte-exact with pycocotools (pycocotools/common/maskApi.c).
//
//  * rle_encode is pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8))): the mask is
//    read column-major (x outer, y inner: index x * height + y), and counts alternate runs of
//    0s and 1s, starting with the 0s (so counts[0] is 0 when the first pixel is inside). Every
//    nonzero value of BinaryMask::data counts as 1. An empty (0-pixel) mask encodes as counts {0}.
//  * rle_to_string is maskApi.c's rleToString, the "counts" string of a compressed RLE as it is
//    stored in COCO json: each count (minus the count two before it, for indices > 2) is written
//    as little-endian 5-bit groups, bit 0x20 = "more follows", bit 0x10 of the last group = sign,
//    each group + 48 as a character ('0'..'o').
//  * rle_from_string is rleFrString, with validation: a character outside '0'..'o', a string
//    that ends inside a value, a count outside 0..2^32-1, or counts whose sum is not
//    height * width -> pg::Error.
//  * rle_decode checks the sizes (non-negative) and that the counts sum to height * width
//    (pg::Error otherwise; pycocotools would silently truncate or pad).
#include <cstdint>
#include <string>
#include <vector>

#include "paligemma/metrics.h"

namespace pg {

struct CocoRle {
  int height = 0, width = 0;      // pycocotools' "size": [height, width]
  std::vector<uint32_t> counts;   // column-major runs, first run = zeros
};

// Throws pg::Error when the mask's data does not hold width * height values or a size is negative.
CocoRle rle_encode(const BinaryMask& mask);
// A row-major mask with values 0 / 1.
BinaryMask rle_decode(const CocoRle& rle);
// pycocotools' compressed counts string (what mask.encode returns as bytes in "counts").
std::string rle_to_string(const CocoRle& rle);
CocoRle rle_from_string(const std::string& counts, int height, int width);

}  // namespace pg
