#include "cli/objects_json.h"

#include <cmath>

#include "paligemma/error.h"

namespace pg::cli {

Bins parse_bins(const std::string& name) {
  if (name == "demo") return Bins::Demo;
  if (name == "bigvision") return Bins::BigVision;
  throw Error("--bins must be demo (bin / 1024 * size) or bigvision (bin / 1023 * size), not '" + name + "'");
}

nlohmann::json objects_json(const ParsedAnswer& answer) {
  auto number_or_null = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json objects = nlohmann::json::array();
  for (const ParsedObject& o : answer.objects) {
    nlohmann::json j;
    j["label"] = o.label;
    j["box"] = {o.box.x0, o.box.y0, o.box.x1, o.box.y1};
    j["box_normalized"] = {o.normalized.x0, o.normalized.y0, o.normalized.x1, o.normalized.y1};
    j["loc"] = o.loc;
    if (o.seg) j["seg"] = *o.seg;
    j["confidence"] = number_or_null(o.confidence);
    j["label_confidence"] = number_or_null(o.label_confidence);
    objects.push_back(j);
  }
  nlohmann::json skipped = nlohmann::json::array();
  for (const SkippedPiece& s : answer.skipped) skipped.push_back({{"text", s.text}, {"reason", s.reason}});
  return {{"objects", objects}, {"skipped", skipped}};
}

}  // namespace pg::cli
