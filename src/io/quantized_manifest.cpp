// quantization.json (docs/QUANTIZATION.md) and the names of the quantisation types.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "paligemma/error.h"
#include "paligemma/quantize.h"

namespace pg {

const char* quant_type_name(QuantType type) {
  switch (type) {
    case QuantType::Keep: return "keep";
    case QuantType::Int8: return "int8";
    case QuantType::Q4: return "q4";
  }
  return "invalid";
}

QuantType parse_quant_type(const std::string& text, const std::string& what) {
  if (text == "int8") return QuantType::Int8;
  if (text == "q4") return QuantType::Q4;
  if (text == "bf16" || text == "f16" || text == "f32" || text == "keep" || text == "none")
    return QuantType::Keep;
  throw Error(what + " must be int8, q4 or bf16 (bf16: keep the weights as stored), not \"" + text +
              "\"");
}

std::optional<QuantizationManifest> read_quantization_manifest(const std::string& model_dir) {
  const std::string path =
      (model_dir.empty() || model_dir.back() == '/' ? model_dir : model_dir + "/") +
      "quantization.json";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw Error("cannot read " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) throw Error(path + " is not a regular file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + " is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(path + " is not a JSON object");
  QuantizationManifest m;
  m.path = path;
  auto fmt = j.find("format");
  if (fmt == j.end() || !fmt->is_string())
    throw Error(path + " has no string field \"format\" (expected \"" +
                std::string(kQuantizedFormatName) + "\")");
  if (fmt->get<std::string>() != kQuantizedFormatName)
    throw Error(path + " has format \"" + fmt->get<std::string>() + "\", not \"" +
                kQuantizedFormatName + "\"");
  auto ver = j.find("version");
  if (ver == j.end() || !ver->is_number_integer())
    throw Error(path + " has no integer field \"version\"");
  const int64_t v = ver->get<int64_t>();
  if (v != kQuantizedFormatVersion)
    throw Error("unsupported quantization.json version " + std::to_string(v) + " in " + path +
                " (this build reads version " + std::to_string(kQuantizedFormatVersion) +
                "; re-run `paligemma quantize` with this build)");
  m.version = static_cast<int>(v);
  auto str = [&](const char* key, std::string& out) {
    auto it = j.find(key);
    if (it == j.end()) return;
    if (!it->is_string()) throw Error(path + ": \"" + key + "\" is not a string");
    out = it->get<std::string>();
  };
  str("text", m.text);
  str("vision", m.vision);
  str("embedding", m.embedding);
  str("source", m.source);
  return m;
}

}  // namespace pg
