// paligemma init: a freshly initialised checkpoint from a config.json (see model_init.h for
// the rule per tensor).
#include "paligemma/model_init.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/file.h"
#include "core/random.h"
#include "core/svd.h"
#include "paligemma/config.h"
#include "paligemma/error.h"
#include "paligemma/safetensors_writer.h"
#include "paligemma/tokenizer.h"

namespace pg {
namespace {

namespace fs = std::filesystem;

// One stream per tensor: seeded from (seed, FNV-1a of the name).
class Rng {
 public:
  Rng(uint64_t seed, const std::string& name) {
    state_ = seed ^ fnv1a(name);
    splitmix64_next(state_);
  }
  // Uniform in (0, 1]: 53 random bits.
  double uniform() { return (static_cast<double>(splitmix64_next(state_) >> 11) + 1.0) * 0x1.0p-53; }
  // Standard normal (Box-Muller, both values used).
  double normal() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double t = 2.0 * M_PI * uniform();
    spare_ = r * std::sin(t);
    have_spare_ = true;
    return r * std::cos(t);
  }

 private:
  uint64_t state_;
  double spare_ = 0;
  bool have_spare_ = false;
};

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

struct Builder {
  SafetensorsWriter writer;
  uint64_t seed;
  DType dtype;

  void put(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& v) {
    writer.add_f32(name, dtype, shape, v);
  }
  void constant(const std::string& name, const std::vector<int64_t>& shape, float value) {
    put(name, shape, std::vector<float>(static_cast<size_t>(numel(shape)), value));
  }
  void normal(const std::string& name, const std::vector<int64_t>& shape, double std_dev) {
    Rng rng(seed, name);
    std::vector<float> v(static_cast<size_t>(numel(shape)));
    for (float& x : v) x = static_cast<float>(std_dev * rng.normal());
    put(name, shape, v);
  }
  // lecun normal as transformers' SigLIP: truncated normal on [-2, 2], then scaled so the
  // std is sqrt(1 / fan_in) (trunc_normal_tf_ with std / 0.87962566103423978).
  void lecun_normal(const std::string& name, const std::vector<int64_t>& shape, int64_t fan_in) {
    Rng rng(seed, name);
    const double scale = std::sqrt(1.0 / static_cast<double>(fan_in)) / 0.87962566103423978;
    std::vector<float> v(static_cast<size_t>(numel(shape)));
    for (float& x : v) {
      double z;
      do z = rng.normal();
      while (z < -2.0 || z > 2.0);
      x = static_cast<float>(scale * z);
    }
    put(name, shape, v);
  }
  // xavier uniform of a [fan_out, fan_in] matrix.
  void xavier_uniform(const std::string& name, int64_t fan_out, int64_t fan_in) {
    Rng rng(seed, name);
    const double a = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
    std::vector<float> v(static_cast<size_t>(fan_out * fan_in));
    for (float& x : v) x = static_cast<float>(a * (2.0 * rng.uniform() - 1.0));
    put(name, {fan_out, fan_in}, v);
  }
};

// big_vision's posemb_sincos_2d(g, g, width) (models/vit.py), row y * g + x: [sin(x w_k),
// cos(x w_k), sin(y w_k), cos(y w_k)] with w_k = 10000^(-k / (width / 4 - 1)).
std::vector<float> sincos_2d_position_embedding(int64_t grid, int64_t width) {
  if (width % 4 != 0 || width < 8)
    throw Error("init: sincos2d position embeddings need a vision hidden_size divisible by 4 (and >= 8), got " +
                std::to_string(width));
  const int64_t q = width / 4;
  std::vector<float> pe(static_cast<size_t>(grid * grid * width));
  for (int64_t y = 0; y < grid; ++y)
    for (int64_t x = 0; x < grid; ++x) {
      float* row = pe.data() + (y * grid + x) * width;
      for (int64_t k = 0; k < q; ++k) {
        const double omega = 1.0 / std::pow(10000.0, static_cast<double>(k) / static_cast<double>(q - 1));
        row[k] = static_cast<float>(std::sin(double(x) * omega));
        row[q + k] = static_cast<float>(std::cos(double(x) * omega));
        row[2 * q + k] = static_cast<float>(std::sin(double(y) * omega));
        row[3 * q + k] = static_cast<float>(std::cos(double(y) * omega));
      }
    }
  return pe;
}

// Mimetic attention init of one SigLIP layer (Trockman & Kolter 2023, their Algorithm 1): the
// best rank-k approximation (truncated SVD, split as u sqrt(s) and v sqrt(s)) of
// alpha Z + beta I, Z normal(0, 1 / width).
//   q/k: per head h, rank head_dim: q_proj's rows of head h are (u sqrt(s))^T and k_proj's
//        (v sqrt(s))^T, so q_h . k_h = x^T (alpha Z_h + beta I) x' (up to the truncation);
//   v/out: the whole layer at once, full rank: v_proj = (u sqrt(s))^T, out_proj = v sqrt(s), so
//        the value-output map x -> out_proj v_proj x is (alpha Z + beta I)^T, with beta < 0.
// Returns the two [width, width] matrices in HF's [out, in] layout.
std::pair<std::vector<float>, std::vector<float>> mimetic_factors(uint64_t seed, const std::string& stream,
                                                                  int64_t width, int64_t blocks, double alpha,
                                                                  double beta, bool second_by_columns) {
  const int64_t k = width / blocks;  // rank per block
  std::vector<float> a(static_cast<size_t>(width * width)), bm(static_cast<size_t>(width * width));
  for (int64_t h = 0; h < blocks; ++h) {
    Rng rng(seed, stream + "/" + std::to_string(h));
    std::vector<double> m(static_cast<size_t>(width * width));
    for (int64_t i = 0; i < width; ++i)
      for (int64_t j = 0; j < width; ++j)
        m[i * width + j] = alpha * rng.normal() / std::sqrt(double(width)) + (i == j ? beta : 0.0);
    const Svd d = svd_square(m, static_cast<int>(width));
    for (int64_t r = 0; r < k; ++r) {
      const double root = std::sqrt(d.s[r]);
      const int64_t row = h * k + r;  // the block's r-th output feature
      for (int64_t i = 0; i < width; ++i) {
        a[row * width + i] = static_cast<float>(d.u[i * width + r] * root);
        const float bv = static_cast<float>(d.vt[r * width + i] * root);
        if (second_by_columns)
          bm[i * width + row] = bv;
        else
          bm[row * width + i] = bv;
      }
    }
  }
  return {std::move(a), std::move(bm)};
}

const nlohmann::json* sub_object(const nlohmann::json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_object()) return &j[key];
  return nullptr;
}

void write_all(const std::string& config_copy, const std::string& out_dir, const ModelInitOptions& o) {
  if (!o.quiet) std::cerr << "init: reading " << config_copy << "\n";
  const ModelConfig c = load_model_config(out_dir);
  // Fields ModelConfig does not keep: initializer_range, pad_token_id, tie_word_embeddings.
  const nlohmann::json j = nlohmann::json::parse(read_file(config_copy), nullptr, false);
  const nlohmann::json* tj = sub_object(j, "text_config");
  double init_std = 0.02;
  int pad_id = 0;
  bool tied = true;
  auto number = [&](const nlohmann::json* obj, const char* key, double& out) {
    if (obj && obj->contains(key) && !(*obj)[key].is_null()) {
      if (!(*obj)[key].is_number()) throw Error(config_copy + ": " + key + " must be a number");
      out = (*obj)[key].get<double>();
    }
  };
  number(&j, "initializer_range", init_std);  // PaliGemmaConfig has none; text_config's wins
  number(tj, "initializer_range", init_std);
  if (!(init_std >= 0) || !std::isfinite(init_std))
    throw Error(config_copy + ": initializer_range must be a non-negative number");
  double pad = 0;
  number(tj, "pad_token_id", pad);
  pad_id = static_cast<int>(pad);
  for (const nlohmann::json* obj : {tj, &j})  // the top level wins (PaliGemmaConfig passes it down)
    if (obj && obj->contains("tie_word_embeddings") && (*obj)["tie_word_embeddings"].is_boolean())
      tied = (*obj)["tie_word_embeddings"].get<bool>();

  Builder b{SafetensorsWriter{}, o.seed, o.dtype};
  b.writer.set_metadata("format", "pt");
  const VisionConfig& vc = c.vision;
  const TextConfig& tc = c.text;
  const int64_t Hv = vc.hidden_size, Iv = vc.intermediate_size, C = vc.num_channels, P = vc.patch_size;

  if (!o.quiet) std::cerr << "init: vision tower (" << vc.num_layers << " layers)\n";
  const std::string vp = "model.vision_tower.";
  b.lecun_normal(vp + "embeddings.patch_embedding.weight", {Hv, C, P, P}, C * P * P);
  b.constant(vp + "embeddings.patch_embedding.bias", {Hv}, 0.0f);
  if (o.vision_position == VisionPositionInit::SinCos2D) {
    const int64_t grid = vc.image_size / vc.patch_size;
    b.put(vp + "embeddings.position_embedding.weight", {vc.num_patches(), Hv}, sincos_2d_position_embedding(grid, Hv));
  } else {
    b.normal(vp + "embeddings.position_embedding.weight", {vc.num_patches(), Hv}, 1.0 / std::sqrt(double(Hv)));
  }
  for (int i = 0; i < vc.num_layers; ++i) {
    const std::string lp = vp + "encoder.layers." + std::to_string(i) + ".";
    for (const char* ln : {"layer_norm1", "layer_norm2"}) {
      b.constant(lp + ln + ".weight", {Hv}, 1.0f);
      b.constant(lp + ln + ".bias", {Hv}, 0.0f);
    }
    if (o.vision_attention == VisionAttentionInit::Mimetic) {
      // The paper's constants for ViTs: alpha1 = beta1 = 0.7 (q k^T), alpha2 = beta2 = 0.4 (v o).
      // heads + 1 full SVDs per layer: instant at toy widths, minutes at So400m's (1152 x 27).
      const std::string ap = lp + "self_attn.";
      if (vc.num_heads <= 0 || Hv % vc.num_heads != 0)
        throw Error("init: mimetic attention needs hidden_size divisible by num_attention_heads");
      auto [q, k] = mimetic_factors(o.seed, ap + "q_proj.weight/mimetic", Hv, vc.num_heads, 0.7, 0.7, false);
      b.put(ap + "q_proj.weight", {Hv, Hv}, q);
      b.put(ap + "k_proj.weight", {Hv, Hv}, k);
      auto [v, out] = mimetic_factors(o.seed, ap + "v_proj.weight/mimetic", Hv, 1, 0.4, -0.4, true);
      b.put(ap + "v_proj.weight", {Hv, Hv}, v);
      b.put(ap + "out_proj.weight", {Hv, Hv}, out);
    } else {
      for (const char* p : {"q_proj", "k_proj", "v_proj", "out_proj"})
        b.xavier_uniform(lp + "self_attn." + p + ".weight", Hv, Hv);
    }
    for (const char* p : {"q_proj", "k_proj", "v_proj", "out_proj"})
      b.constant(lp + "self_attn." + p + ".bias", {Hv}, 0.0f);
    b.xavier_uniform(lp + "mlp.fc1.weight", Iv, Hv);
    b.normal(lp + "mlp.fc1.bias", {Iv}, 1e-6);
    b.xavier_uniform(lp + "mlp.fc2.weight", Hv, Iv);
    b.normal(lp + "mlp.fc2.bias", {Hv}, 1e-6);
  }
  b.constant(vp + "post_layernorm.weight", {Hv}, 1.0f);
  b.constant(vp + "post_layernorm.bias", {Hv}, 0.0f);

  const std::string pp = "model.multi_modal_projector.linear.";
  if (o.zero_projector)
    b.constant(pp + "weight", {c.projection_dim, Hv}, 0.0f);
  else
    b.normal(pp + "weight", {c.projection_dim, Hv}, init_std);
  b.constant(pp + "bias", {c.projection_dim}, 0.0f);

  if (!o.quiet) std::cerr << "init: language model (" << tc.num_layers << " layers, vocab " << tc.vocab_size << ")\n";
  const int64_t H = tc.hidden_size, I = tc.intermediate_size, V = tc.vocab_size;
  const int64_t q_dim = int64_t(tc.num_heads) * tc.head_dim, kv_dim = int64_t(tc.num_kv_heads) * tc.head_dim;
  const std::string tp = "model.language_model.";
  {
    const std::string name = tp + "embed_tokens.weight";
    Rng rng(o.seed, name);
    std::vector<float> v(static_cast<size_t>(V * H));
    for (float& x : v) x = static_cast<float>(init_std * rng.normal());
    if (pad_id >= 0 && pad_id < V) std::fill(v.begin() + pad_id * H, v.begin() + (pad_id + 1) * H, 0.0f);
    b.put(name, {V, H}, v);
  }
  for (int i = 0; i < tc.num_layers; ++i) {
    const std::string lp = tp + "layers." + std::to_string(i) + ".";
    b.normal(lp + "self_attn.q_proj.weight", {q_dim, H}, init_std);
    b.normal(lp + "self_attn.k_proj.weight", {kv_dim, H}, init_std);
    b.normal(lp + "self_attn.v_proj.weight", {kv_dim, H}, init_std);
    b.normal(lp + "self_attn.o_proj.weight", {H, q_dim}, init_std);
    b.normal(lp + "mlp.gate_proj.weight", {I, H}, init_std);
    b.normal(lp + "mlp.up_proj.weight", {I, H}, init_std);
    b.normal(lp + "mlp.down_proj.weight", {H, I}, init_std);
    b.constant(lp + "input_layernorm.weight", {H}, 0.0f);
    b.constant(lp + "post_attention_layernorm.weight", {H}, 0.0f);
    if (tc.arch == TextArch::Gemma2) {
      b.constant(lp + "pre_feedforward_layernorm.weight", {H}, 0.0f);
      b.constant(lp + "post_feedforward_layernorm.weight", {H}, 0.0f);
    }
  }
  b.constant(tp + "norm.weight", {H}, 0.0f);
  if (!tied) b.normal("lm_head.weight", {V, H}, init_std);

  const std::string out = out_dir + "/model.safetensors";
  if (!o.quiet) std::cerr << "init: writing " << b.writer.size() << " tensors to " << out << "\n";
  b.writer.write(out);
}

}  // namespace

void init_model(const std::string& config_json_path, const std::string& tokenizer_path, const std::string& out_dir,
                const ModelInitOptions& o) {
  if (o.dtype != DType::F32 && o.dtype != DType::BF16)
    throw Error(std::string("init: dtype must be F32 or BF16, got ") + dtype_name(o.dtype));
  if (out_dir.empty()) throw Error("init: no output directory given");
  std::error_code ec;
  if (!fs::is_regular_file(config_json_path, ec)) throw Error("init: config file " + config_json_path + " not found");
  if (!fs::is_regular_file(tokenizer_path, ec)) throw Error("init: tokenizer file " + tokenizer_path + " not found");
  const bool created = prepare_empty_output_dir(out_dir, "init");
  const std::string config_copy = out_dir + "/config.json";
  const std::string tok_copy = out_dir + "/tokenizer.model";
  try {
    const Tokenizer tokenizer = Tokenizer::load(tokenizer_path);  // fails early on a file that is no SentencePiece model
    if (o.fit_vocabulary) {
      nlohmann::json j = nlohmann::json::parse(read_file(config_json_path), nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("text_config") || !j["text_config"].is_object())
        throw Error("init: " + config_json_path + " is not a PaliGemma config (a JSON object with text_config)");
      const int pieces = tokenizer.vocab_size();
      const int vocab = (pieces + 1 + 63) / 64 * 64;
      j["image_token_index"] = pieces;
      if (j.contains("image_token_id")) j["image_token_id"] = pieces;  // newer transformers' spelling
      j["vocab_size"] = vocab;
      j["text_config"]["vocab_size"] = vocab;
      std::ofstream out(config_copy, std::ios::binary);
      out << j.dump(2) << "\n";
      out.close();
      if (!out) throw Error("init: cannot write " + config_copy);
      if (!o.quiet)
        std::cerr << "init: vocabulary fitted to the tokenizer: image_token_index " << pieces << ", vocab_size " << vocab
                  << "\n";
    } else {
      fs::copy_file(config_json_path, config_copy, ec);
      if (ec) throw Error("init: cannot copy " + config_json_path + " to " + config_copy + ": " + ec.message());
    }
    write_all(config_copy, out_dir, o);
    fs::copy_file(tokenizer_path, tok_copy, ec);
    if (ec) throw Error("init: cannot copy " + tokenizer_path + " to " + tok_copy + ": " + ec.message());
  } catch (...) {
    std::error_code ignored;
    for (const std::string& f : {config_copy, tok_copy, out_dir + "/model.safetensors", out_dir + "/model.safetensors.tmp"})
      fs::remove(f, ignored);
    if (created) fs::remove(out_dir, ignored);
    throw;
  }
  if (!o.quiet) std::cerr << "init: wrote " << out_dir << " (config.json, model.safetensors, tokenizer.model)\n";
}

void init_model(const std::string& config_json_path, const std::string& tokenizer_path, const std::string& out_dir,
                uint64_t seed, DType dtype) {
  ModelInitOptions o;
  o.seed = seed;
  o.dtype = dtype;
  init_model(config_json_path, tokenizer_path, out_dir, o);
}

}  // namespace pg
