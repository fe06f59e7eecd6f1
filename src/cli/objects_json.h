#pragma once
// Detected / segmented objects of one answer, shared by `run` and `parse`: JSON (boxes,
// confidences, masks as COCO RLE), the annotated image and one PNG per mask.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "paligemma/image.h"
#include "paligemma/metrics.h"
#include "paligemma/structured.h"

namespace pg::cli {

Bins parse_bins(const std::string& name);  // "demo" or "bigvision"

struct StructuredOutput {
  ParsedAnswer answer;
  std::vector<std::optional<BinaryMask>> masks;  // one per object; empty when no --vae
};

// Parses an answer and, for objects with <seg> codes, decodes their masks with the VQ-VAE at
// `vae_path`. An answer with seg codes and no --vae is an error that says so.
StructuredOutput structure_answer(ParsedAnswer answer, const std::string& vae_path, int width, int height);

nlohmann::json objects_json(const StructuredOutput& out);

// --annotate FILE: the original image with boxes, labels and translucent masks.
// --masks DIR: mask_<i>.png per segmented object (i = object index).
void write_visual_outputs(const StructuredOutput& out, const Image& image, const std::string& annotate_path,
                          const std::string& masks_dir);

}  // namespace pg::cli
