#include "train/lora.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "paligemma/error.h"
#include "train/checkpoint_io.h"

namespace pg::train {
namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// "...layers.3.self_attn.q_proj.weight" -> "q_proj".
std::string module_of(const std::string& weight) {
  const std::string stem = weight.substr(0, weight.size() - std::string(".weight").size());
  return stem.substr(stem.rfind('.') + 1);
}

}  // namespace

std::string hf_module_path(const std::string& canonical_weight) {
  std::string n = canonical_weight;
  if (n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0) n.resize(n.size() - 7);
  if (starts_with(n, "language_model.model.")) return "model.language_model." + n.substr(21);
  if (starts_with(n, "vision_tower.vision_model.")) return "model.vision_tower." + n.substr(26);
  if (starts_with(n, "multi_modal_projector.")) return "model." + n;
  if (starts_with(n, "language_model.lm_head")) return n.substr(15);
  return n;
}

std::vector<std::string> lora_target_weights(const Parameters& base, const LoraConfig& config) {
  const std::set<std::string> targets(config.targets.begin(), config.targets.end());
  std::vector<std::string> out;
  for (const std::string& name : base.names()) {
    if (base.shape(name).size() != 2 || name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
    const bool text = starts_with(name, "language_model.model.layers.");
    const bool vision = config.vision && starts_with(name, "vision_tower.vision_model.encoder.layers.");
    if (!text && !vision) continue;
    const std::string m = module_of(name);
    const bool vision_module =
        m == "q_proj" || m == "k_proj" || m == "v_proj" || m == "out_proj" || m == "fc1" || m == "fc2";
    if ((text && targets.count(m)) || (vision && vision_module)) out.push_back(name);
  }
  return out;
}

LoraAdapters init_lora(const Parameters& base, const LoraConfig& config) {
  if (config.rank < 1) throw Error("LoRA rank must be >= 1 (got " + std::to_string(config.rank) + ")");
  if (!(config.alpha > 0)) throw Error("LoRA alpha must be > 0");
  LoraAdapters lora;
  lora.config = config;
  std::mt19937_64 rng(config.seed);
  const std::vector<std::string> weights = lora_target_weights(base, config);
  if (weights.empty()) throw Error("LoRA: no weight of this checkpoint matches the targets");
  for (const std::string& w : weights) {
    const std::vector<int64_t> shape = base.shape(w);
    const int64_t out = shape[0], in = shape[1];
    // PEFT: nn.init.kaiming_uniform_(A, a=sqrt(5)) -> bound = sqrt(6 / ((1 + 5) * in)) = 1 / sqrt(in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    std::uniform_real_distribution<double> u(-bound, bound);
    Tensor a, b;
    a.shape = {config.rank, in};
    a.data.resize(static_cast<size_t>(config.rank) * in);
    for (float& v : a.data) v = static_cast<float>(u(rng));
    b.shape = {out, config.rank};
    b.data.assign(static_cast<size_t>(out) * config.rank, 0.0f);
    lora.tensors.add(w + "@lora_A", std::move(a));
    lora.tensors.add(w + "@lora_B", std::move(b));
  }
  return lora;
}

void merge_lora(const LoraAdapters& lora, Parameters& base) {
  const double s = lora.config.scale();
  const int r = lora.config.rank;
  for (const auto& [key, t] : lora.tensors.tensors()) {
    if (key.size() < 7 || key.compare(key.size() - 7, 7, "@lora_A") != 0) continue;
    const std::string w = key.substr(0, key.size() - 7);
    Tensor& W = base.materialize(w);
    const int64_t out = W.shape[0], in = W.shape[1];
    const float* A = lora.a(w);
    const float* B = lora.b(w);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) {
        double acc = 0;
        for (int k = 0; k < r; ++k) acc += static_cast<double>(B[o * r + k]) * A[k * in + i];
        W.data[o * in + i] += static_cast<float>(s * acc);
      }
  }
}

void save_peft(const LoraAdapters& lora, const std::string& base_model, const std::string& dir) {
  fs::create_directories(dir);
  Parameters out;
  std::set<std::string> modules;
  for (const auto& [key, t] : lora.tensors.tensors()) {
    const size_t at = key.rfind('@');
    const std::string w = key.substr(0, at), which = key.substr(at + 1);  // lora_A / lora_B
    out.add("base_model.model." + hf_module_path(w) + "." + which + ".weight", t);
    modules.insert(module_of(w));
  }
  save_parameters(out, dir + "/adapter_model.safetensors");
  const nlohmann::json config = {{"peft_type", "LORA"},
                                 {"task_type", "CAUSAL_LM"},
                                 {"base_model_name_or_path", base_model},
                                 {"r", lora.config.rank},
                                 {"lora_alpha", lora.config.alpha},
                                 {"lora_dropout", lora.config.dropout},
                                 {"bias", "none"},
                                 {"fan_in_fan_out", false},
                                 {"inference_mode", true},
                                 {"init_lora_weights", true},
                                 {"use_rslora", false},
                                 {"target_modules", std::vector<std::string>(modules.begin(), modules.end())}};
  std::ofstream(dir + "/adapter_config.json") << config.dump(2) << "\n";
}

LoraAdapters load_peft(const std::string& dir, const Parameters& base) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const std::string& name : base.names()) shapes[name] = base.shape(name);
  return load_peft(dir, shapes);
}

LoraAdapters load_peft(const std::string& dir, const std::map<std::string, std::vector<int64_t>>& weight_shapes) {
  std::ifstream in(dir + "/adapter_config.json");
  if (!in) throw Error("LoRA adapter " + dir + " has no adapter_config.json");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(dir + "/adapter_config.json is not valid JSON (" + e.what() + ")");
  }
  if (cfg.value("peft_type", "") != "LORA")
    throw Error(dir + "/adapter_config.json: peft_type must be \"LORA\" (got " + cfg.value("peft_type", "none") + ")");
  if (cfg.value("use_rslora", false) || cfg.value("use_dora", false))
    throw Error(dir + "/adapter_config.json: rsLoRA / DoRA adapters are not supported");
  LoraAdapters lora;
  lora.config.rank = cfg.at("r").get<int>();
  lora.config.alpha = cfg.at("lora_alpha").get<double>();
  lora.config.dropout = cfg.value("lora_dropout", 0.0);
  const Parameters file = load_parameters(dir + "/adapter_model.safetensors");
  std::map<std::string, std::string> by_module;  // module path -> canonical weight name
  for (const auto& [name, shape] : weight_shapes) by_module[hf_module_path(name)] = name;
  for (const auto& [key, t] : file.tensors()) {
    std::string k = key;
    if (starts_with(k, "base_model.model.")) k = k.substr(17);
    const size_t dot = k.rfind(".lora_");
    if (dot == std::string::npos || k.size() < 7 || k.compare(k.size() - 7, 7, ".weight") != 0)
      throw Error("LoRA adapter " + dir + ": unexpected tensor " + key);
    const std::string module = k.substr(0, dot), which = k.substr(dot + 1, 6);
    // PEFT also saves the old layout's module names when the base was loaded that way.
    std::string canonical_module = module;
    if (starts_with(module, "language_model.model.") || starts_with(module, "vision_tower."))
      canonical_module = hf_module_path(module + ".weight");
    auto it = by_module.find(canonical_module);
    if (it == by_module.end())
      throw Error("LoRA adapter " + dir + ": tensor " + key + " adapts no weight of the model");
    const std::vector<int64_t>& ws = weight_shapes.at(it->second);
    if (ws.size() != 2) throw Error("LoRA adapter " + dir + ": " + key + " adapts " + it->second + ", not a matrix");
    const std::vector<int64_t> want = which == "lora_A" ? std::vector<int64_t>{lora.config.rank, ws[1]}
                                                        : std::vector<int64_t>{ws[0], lora.config.rank};
    if (t.shape != want)
      throw Error("LoRA adapter " + dir + ": " + key + " has shape " + shape_string(t.shape) + ", expected " +
                  shape_string(want) + " for rank " + std::to_string(lora.config.rank));
    lora.tensors.add(it->second + "@" + which, t);
  }
  for (const auto& [key, t] : lora.tensors.tensors()) {
    const std::string w = key.substr(0, key.rfind('@'));
    if (!lora.tensors.has(w + "@lora_A") || !lora.tensors.has(w + "@lora_B"))
      throw Error("LoRA adapter " + dir + ": " + w + " has only one of lora_A / lora_B");
  }
  if (lora.tensors.tensors().empty()) throw Error("LoRA adapter " + dir + " holds no tensor");
  return lora;
}

}  // namespace pg::train
