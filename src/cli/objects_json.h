#pragma once
// Detected / segmented objects of one answer, shared by `run` and `parse`: JSON (boxes,
// confidences, masks as COCO RLE), the annotated image and one PNG per mask.
#include <nlohmann/json.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "paligemma/image.h"
#include "paligemma/metrics.h"
#include "paligemma/segmentation.h"
#include "paligemma/structured.h"

namespace pg::cli {

Bins parse_bins(const std::string& name);  // "demo" or "bigvision"

// The mask codec of --vae, else the model directory's own vae-oid.npz (a model that ships its
// VQ-VAE, as ours does; one that does not load is a warning, not an error), else none
// (segment answers keep their boxes).
std::unique_ptr<MaskCodec> load_codec(const std::string& vae_path, const std::string& model_dir);

nlohmann::json objects_json(const DetectedObjects& out);

// --annotate FILE: the original image with boxes, labels and translucent masks.
// --masks DIR: mask_<i>.png per segmented object (i = object index).
void write_visual_outputs(const DetectedObjects& out, const Image& image, const std::string& annotate_path,
                          const std::string& masks_dir);

}  // namespace pg::cli
