#include "cli/objects_json.h"

#include <cmath>
#include <filesystem>
#include <iostream>

#include "paligemma/annotate.h"
#include "paligemma/error.h"
#include "paligemma/mask_codec.h"
#include "paligemma/rle.h"

namespace pg::cli {

Bins parse_bins(const std::string& name) {
  if (name == "demo") return Bins::Demo;
  if (name == "bigvision") return Bins::BigVision;
  throw Error("--bins must be demo (bin / 1024 * size) or bigvision (bin / 1023 * size), not '" + name + "'");
}

std::unique_ptr<MaskCodec> load_codec(const std::string& vae_path, const std::string& model_dir) {
  if (!vae_path.empty()) return std::make_unique<MaskCodec>(MaskCodec::load(vae_path));
  const std::string bundled = model_dir + "/vae-oid.npz";
  std::error_code ec;
  if (model_dir.empty() || !std::filesystem::is_regular_file(bundled, ec)) return nullptr;
  try {
    return std::make_unique<MaskCodec>(MaskCodec::load(bundled));
  } catch (const Error& e) {  // not asked for by name: answers without masks still work
    std::cerr << "warning: " << e.what() << "; segment answers keep only their boxes\n";
    return nullptr;
  }
}

nlohmann::json objects_json(const DetectedObjects& out) {
  auto number_or_null = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json objects = nlohmann::json::array();
  for (size_t i = 0; i < out.answer.objects.size(); ++i) {
    const ParsedObject& o = out.answer.objects[i];
    nlohmann::json j;
    j["label"] = o.label;
    j["box"] = {o.box.x0, o.box.y0, o.box.x1, o.box.y1};
    j["box_normalized"] = {o.normalized.x0, o.normalized.y0, o.normalized.x1, o.normalized.y1};
    j["loc"] = o.loc;
    if (o.seg) j["seg"] = *o.seg;
    j["confidence"] = number_or_null(o.confidence);
    j["label_confidence"] = number_or_null(o.label_confidence);
    if (i < out.masks.size() && out.masks[i]) {
      CocoRle rle = rle_encode(*out.masks[i]);
      j["mask"] = {{"size", {rle.height, rle.width}}, {"counts", rle_to_string(rle)}};
    }
    objects.push_back(j);
  }
  nlohmann::json skipped = nlohmann::json::array();
  for (const SkippedPiece& s : out.answer.skipped) skipped.push_back({{"text", s.text}, {"reason", s.reason}});
  return {{"objects", objects}, {"skipped", skipped}};
}

void write_visual_outputs(const DetectedObjects& out, const Image& image, const std::string& annotate_path,
                          const std::string& masks_dir) {
  if (!annotate_path.empty()) {
    std::vector<Annotation> items;
    for (size_t i = 0; i < out.answer.objects.size(); ++i) {
      const ParsedObject& o = out.answer.objects[i];
      Annotation a;
      a.label = o.label;
      a.box = o.box;
      a.confidence = o.confidence;
      if (i < out.masks.size() && out.masks[i]) a.mask = &*out.masks[i];
      items.push_back(a);
    }
    write_png(annotate_path, annotate_image(image, items));
  }
  if (!masks_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(masks_dir, ec);
    if (ec) throw Error("--masks: cannot create directory " + masks_dir + ": " + ec.message());
    for (size_t i = 0; i < out.masks.size(); ++i)
      if (out.masks[i]) write_mask_png(masks_dir + "/mask_" + std::to_string(i) + ".png", *out.masks[i]);
  }
}

}  // namespace pg::cli
