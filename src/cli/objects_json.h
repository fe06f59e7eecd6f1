#pragma once
// Detected / segmented objects as JSON, shared by `run --json` and `parse`.
#include <nlohmann/json.hpp>
#include <string>

#include "paligemma/structured.h"

namespace pg::cli {

Bins parse_bins(const std::string& name);  // "demo" or "bigvision"
nlohmann::json objects_json(const ParsedAnswer& answer);

}  // namespace pg::cli
