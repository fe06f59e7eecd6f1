// config.json -> ModelConfig. The defaults below are those of transformers' config classes
// (GemmaConfig, Gemma2Config, SiglipVisionConfig, PaliGemmaConfig; identical in 4.41 and
// 5.23): save_pretrained omits fields equal to them, so released files rely on them.
#include "paligemma/config.h"

#include "core/file.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "paligemma/error.h"

namespace pg {
namespace {

using nlohmann::json;

class Reader {
 public:
  Reader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  int get_int(const char* key, int fallback) const {
    if (!object_.contains(key) || object_[key].is_null()) return fallback;
    const json& v = object_[key];
    if (!v.is_number_integer()) fail(key, "must be an integer");
    int64_t value = v.get<int64_t>();
    if (value < 0 || value > (1LL << 31) - 1) fail(key, "is out of range");
    return static_cast<int>(value);
  }
  int positive_int(const char* key, int fallback) const {
    int value = get_int(key, fallback);
    if (value <= 0) fail(key, "must be positive, got " + std::to_string(value));
    return value;
  }
  float get_float(const char* key, float fallback) const {
    if (!object_.contains(key) || object_[key].is_null()) return fallback;
    const json& v = object_[key];
    if (!v.is_number()) fail(key, "must be a number");
    return v.get<float>();
  }
  std::string get_string(const char* key, const std::string& fallback) const {
    if (!object_.contains(key) || object_[key].is_null()) return fallback;
    const json& v = object_[key];
    if (!v.is_string()) fail(key, "must be a string");
    return v.get<std::string>();
  }
  bool has(const char* key) const { return object_.contains(key) && !object_[key].is_null(); }
  // transformers treats an explicit null as "feature off" for soft-caps and the window.
  bool is_null(const char* key) const { return object_.contains(key) && object_[key].is_null(); }
  float positive_float(const char* key, float fallback) const {
    float value = get_float(key, fallback);
    if (!(value > 0.0f) || !std::isfinite(value)) fail(key, "must be a positive number");
    return value;
  }
  std::vector<int> int_list(const char* key, std::vector<int> fallback) const {
    if (!has(key)) return fallback;
    const json& v = object_[key];
    std::vector<int> out;
    if (v.is_number_integer()) {
      out.push_back(get_int(key, 0));
    } else if (v.is_array() && !v.empty()) {
      for (const json& e : v) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > (1LL << 31) - 1)
          fail(key, "must be a non-negative integer or a non-empty list of them");
        out.push_back(static_cast<int>(e.get<int64_t>()));
      }
    } else {
      fail(key, "must be a non-negative integer or a non-empty list of them");
    }
    return out;
  }
  const json& raw(const char* key) const { return object_[key]; }
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw Error(where_ + ": field '" + key + "' " + problem);
  }
  const std::string& where() const { return where_; }

 private:
  const json& object_;
  std::string where_;
};

void check_activation(const Reader& r, const char* key, const std::string& value) {
  if (value != "gelu_pytorch_tanh" && value != "gelu" && value != "gelu_new" && value != "gelu_fast")
    r.fail(key, "is '" + value + "'; supported: gelu_pytorch_tanh, gelu_new, gelu_fast (tanh approximation), gelu");
}

VisionConfig parse_vision(const json& object, const std::string& where) {
  Reader r(object, where);
  std::string type = r.get_string("model_type", "siglip_vision_model");
  if (type != "siglip_vision_model")
    r.fail("model_type", "is '" + type + "'; only siglip_vision_model is supported");
  if (r.has("vision_use_head") && r.raw("vision_use_head").is_boolean() &&
      r.raw("vision_use_head").get<bool>())
    r.fail("vision_use_head", "is true; PaliGemma uses the patch tokens without a pooling head");
  VisionConfig v;
  v.hidden_size = r.positive_int("hidden_size", 768);
  v.intermediate_size = r.positive_int("intermediate_size", 3072);
  v.num_layers = r.positive_int("num_hidden_layers", 12);
  v.num_heads = r.positive_int("num_attention_heads", 12);
  v.num_channels = r.positive_int("num_channels", 3);
  v.image_size = r.positive_int("image_size", 224);
  v.patch_size = r.positive_int("patch_size", 16);
  v.layer_norm_eps = r.positive_float("layer_norm_eps", 1e-6f);
  v.hidden_act = r.get_string("hidden_act", "gelu_pytorch_tanh");
  check_activation(r, "hidden_act", v.hidden_act);
  if (v.num_channels != 3) r.fail("num_channels", "must be 3 (RGB)");
  if (v.hidden_size % v.num_heads != 0) r.fail("hidden_size", "is not a multiple of num_attention_heads");
  if (v.image_size % v.patch_size != 0) r.fail("image_size", "is not a multiple of patch_size");
  return v;
}

float rope_theta_of(const Reader& r) {
  // transformers 5 writes rope_parameters {"rope_type": "default", "rope_theta": ...};
  // older files write rope_theta at the top level.
  float theta = r.get_float("rope_theta", 10000.0f);
  if (r.has("rope_parameters")) {
    const json& p = r.raw("rope_parameters");
    if (!p.is_object()) r.fail("rope_parameters", "must be an object");
    Reader pr(p, r.where() + " rope_parameters");
    std::string type = pr.get_string("rope_type", "default");
    if (type != "default") r.fail("rope_parameters", "has rope_type '" + type + "'; only default RoPE is supported");
    theta = pr.get_float("rope_theta", theta);
  }
  if (r.has("rope_scaling")) {
    const json& s = r.raw("rope_scaling");
    std::string type = s.is_object() ? s.value("rope_type", s.value("type", std::string("default")))
                                     : std::string("?");
    if (type != "default") r.fail("rope_scaling", "is set ('" + type + "'); RoPE scaling is not supported");
  }
  if (!(theta > 0.0f) || !std::isfinite(theta)) r.fail("rope_theta", "must be a positive number");
  return theta;
}

TextConfig parse_text(const json& object, const std::string& where) {
  Reader r(object, where);
  TextConfig t;
  // PaliGemmaConfig defaults the text model_type to gemma when absent.
  t.model_type = r.get_string("model_type", "gemma");
  if (t.model_type == "gemma") {
    t.arch = TextArch::Gemma;
    t.hidden_size = r.positive_int("hidden_size", 3072);
    t.intermediate_size = r.positive_int("intermediate_size", 24576);
    t.num_layers = r.positive_int("num_hidden_layers", 28);
    t.num_heads = r.positive_int("num_attention_heads", 16);
    t.num_kv_heads = r.positive_int("num_key_value_heads", 16);
    // GemmaConfig maps the legacy "gelu" to the tanh approximation (#29402).
    t.hidden_act = r.get_string("hidden_activation", r.get_string("hidden_act", "gelu_pytorch_tanh"));
    if (t.hidden_act == "gelu") t.hidden_act = "gelu_pytorch_tanh";
  } else if (t.model_type == "gemma2") {
    t.arch = TextArch::Gemma2;
    t.hidden_size = r.positive_int("hidden_size", 2304);
    t.intermediate_size = r.positive_int("intermediate_size", 9216);
    t.num_layers = r.positive_int("num_hidden_layers", 26);
    t.num_heads = r.positive_int("num_attention_heads", 8);
    t.num_kv_heads = r.positive_int("num_key_value_heads", 4);
    t.hidden_act = r.get_string("hidden_activation", "gelu_pytorch_tanh");
    t.query_pre_attn_scalar = r.positive_float("query_pre_attn_scalar", 256.0f);
    // An explicit null switches a soft-cap or the window off (transformers: `if cap is not None`).
    t.attn_logit_softcap = r.is_null("attn_logit_softcapping") ? 0.0f : r.get_float("attn_logit_softcapping", 50.0f);
    t.final_logit_softcap =
        r.is_null("final_logit_softcapping") ? 0.0f : r.get_float("final_logit_softcapping", 30.0f);
    t.sliding_window = r.is_null("sliding_window") ? 0 : r.get_int("sliding_window", 4096);
    if (t.attn_logit_softcap < 0) r.fail("attn_logit_softcapping", "must be >= 0 or null");
    if (t.final_logit_softcap < 0) r.fail("final_logit_softcapping", "must be >= 0 or null");
  } else {
    r.fail("model_type", "is '" + t.model_type + "'; supported text models: gemma (PaliGemma 1), gemma2 (PaliGemma 2)");
  }
  check_activation(r, "hidden_activation", t.hidden_act);
  t.head_dim = r.positive_int("head_dim", 256);
  t.vocab_size = r.positive_int("vocab_size", 256000);
  t.max_position_embeddings = r.positive_int("max_position_embeddings", 8192);
  t.rms_norm_eps = r.positive_float("rms_norm_eps", 1e-6f);
  t.rope_theta = rope_theta_of(r);
  if (t.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings");
  if (t.num_heads % t.num_kv_heads != 0)
    r.fail("num_key_value_heads", "(" + std::to_string(t.num_kv_heads) + ") must divide num_attention_heads (" +
                                      std::to_string(t.num_heads) + ")");
  if (r.has("attention_bias") && r.raw("attention_bias").is_boolean() && r.raw("attention_bias").get<bool>())
    r.fail("attention_bias", "is true; Gemma attention has no biases");

  t.layer_is_sliding.assign(t.num_layers, false);
  if (t.arch == TextArch::Gemma2) {
    if (r.has("layer_types")) {
      const json& types = r.raw("layer_types");
      if (!types.is_array() || static_cast<int>(types.size()) != t.num_layers)
        r.fail("layer_types", "must be a list with one entry per layer (" + std::to_string(t.num_layers) + ")");
      for (int i = 0; i < t.num_layers; ++i) {
        std::string type = types[i].is_string() ? types[i].get<std::string>() : "";
        if (type == "sliding_attention") t.layer_is_sliding[i] = true;
        else if (type != "full_attention") r.fail("layer_types", "has unknown entry '" + type + "'");
      }
    } else {
      // Gemma2Config: "sliding_attention" if bool((i + 1) % 2), i.e. layers 0, 2, 4, ...
      for (int i = 0; i < t.num_layers; ++i) t.layer_is_sliding[i] = ((i + 1) % 2) != 0;
    }
    if (t.sliding_window <= 0)
      for (int i = 0; i < t.num_layers; ++i) t.layer_is_sliding[i] = false;
  }
  return t;
}

}  // namespace

bool ModelConfig::is_eos(int id) const {
  for (int e : eos_token_ids)
    if (e == id) return true;
  return false;
}

float TextConfig::query_scale() const {
  float base = (arch == TextArch::Gemma2) ? query_pre_attn_scalar : static_cast<float>(head_dim);
  return 1.0f / std::sqrt(base);
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw Error(source + ": top level must be a JSON object");
  Reader r(root, source);
  std::string type = r.get_string("model_type", "");
  if (type != "paligemma")
    r.fail("model_type", type.empty() ? "is missing; expected 'paligemma'"
                                      : "is '" + type + "'; expected 'paligemma'");
  if (!r.has("text_config") || !root["text_config"].is_object())
    r.fail("text_config", "is missing (PaliGemma configs carry the Gemma text config there)");
  if (!r.has("vision_config") || !root["vision_config"].is_object())
    r.fail("vision_config", "is missing (PaliGemma configs carry the SigLIP config there)");

  ModelConfig c;
  c.text = parse_text(root["text_config"], source + " text_config");
  c.vision = parse_vision(root["vision_config"], source + " vision_config");
  c.image_token_index = r.get_int("image_token_index", r.get_int("image_token_id", 256000));
  c.projection_dim = r.positive_int("projection_dim", 2048);
  // transformers' generate stops on the eos id(s) of the generation config, which come from
  // the text config (the top-level value as fallback); an int or a list.
  Reader tr(root["text_config"], source + " text_config");
  c.eos_token_ids = tr.has("eos_token_id") ? tr.int_list("eos_token_id", {1}) : r.int_list("eos_token_id", {1});
  if (c.projection_dim != c.text.hidden_size)
    r.fail("projection_dim", "(" + std::to_string(c.projection_dim) + ") must equal text_config.hidden_size (" +
                                 std::to_string(c.text.hidden_size) + ")");
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  std::string path = model_dir + "/config.json";
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (is '" + model_dir + "' a Hugging Face model directory?)");
  }
  return parse_model_config(text, path);
}

}  // namespace pg
