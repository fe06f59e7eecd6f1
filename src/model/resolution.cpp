// Stage 2's resolution change: big_vision's resample_posemb on the position embedding, the
// config fields that follow the image size, every other tensor and file as it is.
#include "paligemma/resolution.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "paligemma/checkpoint.h"
#include "paligemma/config.h"
#include "paligemma/error.h"
#include "paligemma/safetensors_writer.h"
#include "paligemma/tensor.h"

namespace pg {
namespace fs = std::filesystem;

namespace {

constexpr const char* kPositionEmbedding = "vision_tower.vision_model.embeddings.position_embedding.weight";

// One side of scipy.ndimage.zoom(order=1, grid_mode=False): output o samples the input at
// o * (in - 1) / (out - 1) (scipy's zoom factor for aligned corners), between floor and
// floor + 1 with weights 1 - f and f. A single output samples the first input.
struct Tap {
  int lo, hi;
  double w_hi;
};
std::vector<Tap> linear_taps(int in, int out) {
  std::vector<Tap> taps(static_cast<size_t>(out));
  const double step = out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
  for (int o = 0; o < out; ++o) {
    const double c = o * step;
    int lo = static_cast<int>(std::floor(c));
    lo = std::min(std::max(lo, 0), in - 1);
    const int hi = std::min(lo + 1, in - 1);
    taps[o] = {lo, hi, c - lo};
  }
  return taps;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path, std::ios::binary);
  f << j.dump(2) << "\n";
  if (!f) throw Error("resolution: cannot write " + path);
}

nlohmann::json parse_json(const std::string& path) {
  nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error("resolution: " + path + " is not a JSON object");
  return j;
}

// Sets `key` in `obj` when it is already there (configs carry the image token count in
// several places, depending on the transformers version that wrote them).
void update_if_present(nlohmann::json& obj, const char* key, const nlohmann::json& value) {
  if (obj.is_object() && obj.contains(key)) obj[key] = value;
}

void write_all(const std::string& model_dir, const std::string& out_dir, const ResolutionOptions& o) {
  const ModelConfig config = load_model_config(model_dir);
  const VisionConfig& vc = config.vision;
  if (o.image_size <= 0 || o.image_size % vc.patch_size != 0)
    throw Error("resolution: image size " + std::to_string(o.image_size) +
                " is not a positive multiple of the patch size " + std::to_string(vc.patch_size));
  if (fs::exists(fs::path(model_dir) / "quantization.json"))
    throw Error("resolution: " + model_dir +
                " is a quantised checkpoint; change the resolution of the float model, then quantise it");
  const int old_side = vc.image_size / vc.patch_size, new_side = o.image_size / vc.patch_size;
  const int64_t tokens = static_cast<int64_t>(new_side) * new_side;

  const Checkpoint ck = Checkpoint::open(model_dir);
  const TensorView& pos = ck.get(kPositionEmbedding, {static_cast<int64_t>(old_side) * old_side, vc.hidden_size});
  if (pos.dtype != DType::F32 && pos.dtype != DType::BF16 && pos.dtype != DType::F16)
    throw Error("resolution: " + ck.stored_name_of(kPositionEmbedding) + " is stored as " + dtype_name(pos.dtype) +
                ", expected a float dtype");
  std::vector<float> old_grid(static_cast<size_t>(pos.numel()));
  convert_to_f32(pos.dtype, pos.data, 0, old_grid.size(), old_grid.data());
  const std::vector<float> new_grid = resample_position_embedding(old_grid, old_side, new_side, vc.hidden_size);
  std::vector<TensorView> tensors;
  std::vector<uint16_t> half_bits;
  std::vector<float> f32_values;
  for (const std::string& name : ck.names()) {
    TensorView v = ck.get(name);
    v.name = ck.stored_name_of(name);
    if (name == kPositionEmbedding) {
      v.shape = {tokens, vc.hidden_size};
      // Back to the stored dtype (round to nearest even, as torch).
      if (pos.dtype == DType::F32) {
        f32_values = new_grid;
        v.data = f32_values.data();
      } else {
        half_bits.resize(new_grid.size());
        for (size_t i = 0; i < new_grid.size(); ++i)
          half_bits[i] = pos.dtype == DType::BF16 ? f32_to_bf16(new_grid[i]) : f32_to_f16(new_grid[i]);
        v.data = half_bits.data();
      }
    }
    tensors.push_back(std::move(v));
  }
  if (!o.quiet)
    std::cerr << "resolution: " << vc.image_size << " px (" << old_side << "x" << old_side << " patches) -> "
              << o.image_size << " px (" << new_side << "x" << new_side << "), writing " << tensors.size()
              << " tensors\n";
  write_safetensors(out_dir + "/model.safetensors", tensors, {{"format", "pt"}});

  nlohmann::json cj = parse_json(model_dir + "/config.json");
  cj["vision_config"]["image_size"] = o.image_size;
  update_if_present(cj["vision_config"], "num_image_tokens", tokens);
  if (cj.contains("text_config")) update_if_present(cj["text_config"], "num_image_tokens", tokens);
  update_if_present(cj, "num_image_tokens", tokens);
  write_json(out_dir + "/config.json", cj);

  for (const fs::directory_entry& e : fs::directory_iterator(model_dir)) {
    if (!e.is_regular_file()) continue;
    const std::string file = e.path().filename().string();
    const std::string target = out_dir + "/" + file;
    if (file == "config.json" || file == "model.safetensors.index.json" || e.path().extension() == ".safetensors")
      continue;
    if (file == "preprocessor_config.json" || file == "processor_config.json") {
      nlohmann::json pj = parse_json(e.path().string());
      if (pj.contains("size") && pj["size"].is_object()) {
        update_if_present(pj["size"], "height", o.image_size);
        update_if_present(pj["size"], "width", o.image_size);
      }
      update_if_present(pj, "image_seq_length", tokens);
      write_json(target, pj);
      continue;
    }
    std::error_code ec;
    fs::copy_file(e.path(), target, ec);
    if (ec) throw Error("resolution: cannot copy " + e.path().string() + " to " + target + ": " + ec.message());
  }
  if (!o.quiet) std::cerr << "resolution: wrote " << out_dir << "\n";
}

}  // namespace

std::vector<float> resample_position_embedding(const std::vector<float>& grid, int old_side, int new_side, int dim) {
  if (old_side < 1 || new_side < 1 || dim < 1)
    throw Error("resample_position_embedding: sides and width must be positive, got " + std::to_string(old_side) +
                " -> " + std::to_string(new_side) + " x " + std::to_string(dim));
  if (grid.size() != static_cast<size_t>(old_side) * old_side * dim)
    throw Error("resample_position_embedding: " + std::to_string(grid.size()) + " values are not a " +
                std::to_string(old_side) + "x" + std::to_string(old_side) + "x" + std::to_string(dim) + " grid");
  const std::vector<Tap> taps = linear_taps(old_side, new_side);
  std::vector<float> out(static_cast<size_t>(new_side) * new_side * dim);
  for (int y = 0; y < new_side; ++y) {
    const Tap ty = taps[y];
    for (int x = 0; x < new_side; ++x) {
      const Tap tx = taps[x];
      const float* a = &grid[(static_cast<size_t>(ty.lo) * old_side + tx.lo) * dim];
      const float* b = &grid[(static_cast<size_t>(ty.lo) * old_side + tx.hi) * dim];
      const float* c = &grid[(static_cast<size_t>(ty.hi) * old_side + tx.lo) * dim];
      const float* d = &grid[(static_cast<size_t>(ty.hi) * old_side + tx.hi) * dim];
      float* o = &out[(static_cast<size_t>(y) * new_side + x) * dim];
      for (int k = 0; k < dim; ++k) {
        // Separable, rows first (scipy interpolates all axes at once; the same weights).
        const double top = (1.0 - tx.w_hi) * a[k] + tx.w_hi * b[k];
        const double bottom = (1.0 - tx.w_hi) * c[k] + tx.w_hi * d[k];
        o[k] = static_cast<float>((1.0 - ty.w_hi) * top + ty.w_hi * bottom);
      }
    }
  }
  return out;
}

void change_resolution(const std::string& model_dir, const std::string& out_dir, const ResolutionOptions& options) {
  if (out_dir.empty()) throw Error("resolution: no output directory given");
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) throw Error("resolution: model directory " + model_dir + " not found");
  if (fs::equivalent(model_dir, out_dir, ec)) throw Error("resolution: the output must be another directory");
  const bool created = prepare_empty_output_dir(out_dir, "resolution");
  try {
    write_all(model_dir, out_dir, options);
  } catch (...) {
    std::error_code ignored;
    for (const fs::directory_entry& e : fs::directory_iterator(out_dir, ignored)) fs::remove_all(e.path(), ignored);
    if (created) fs::remove(out_dir, ignored);
    throw;
  }
}

}  // namespace pg
