#include "train/checkpoint_io.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "kernels/quantize.h"
#include "paligemma/error.h"
#include "paligemma/safetensors_writer.h"

namespace pg::train {
namespace fs = std::filesystem;

void export_hf_checkpoint(const Parameters& params, const Checkpoint& source, DType dtype, const std::string& out_dir) {
  if (dtype != DType::BF16 && dtype != DType::F32) throw Error("export: dtype must be BF16 or F32");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw Error("cannot create " + out_dir + ": " + ec.message());
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  for (const auto& [name, t] : params.tensors())
    w.add_f32(source.has(name) ? source.stored_name_of(name) : name, dtype, t.shape, t.data);
  for (const auto& [name, v] : params.views()) {  // frozen matrices, widened one at a time
    std::vector<float> values(static_cast<size_t>(v.rows) * v.cols);
    kernels::dequantize_rows_f32(v, 0, v.rows, values.data());
    w.add_f32(source.has(name) ? source.stored_name_of(name) : name, dtype, {v.rows, v.cols}, values);
  }
  // One file: remove shards of an earlier export so the directory holds one checkpoint.
  for (const auto& e : fs::directory_iterator(out_dir)) {
    const std::string f = e.path().filename().string();
    if (e.path().extension() == ".safetensors" || f == "model.safetensors.index.json") fs::remove(e.path(), ec);
  }
  w.write(out_dir + "/model.safetensors");
  for (const char* f : {"config.json", "tokenizer.model"}) {
    const fs::path from = fs::path(source.dir()) / f;
    if (!fs::exists(from)) continue;
    fs::copy_file(from, fs::path(out_dir) / f, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error("cannot copy " + from.string() + " to " + out_dir + ": " + ec.message());
  }
}

void save_parameters(const Parameters& params, const std::string& path) {
  std::vector<TensorView> views;
  for (const auto& [name, t] : params.tensors()) {
    TensorView v;
    v.name = name;
    v.dtype = DType::F32;
    v.shape = t.shape;
    v.data = t.data.data();
    views.push_back(v);
  }
  write_safetensors(path, views, {{"format", "pt"}});
}

Parameters load_parameters(const std::string& path) {
  MappedFile file(path);
  const SafetensorsFile st = parse_safetensors(path, file.data(), file.size());
  Parameters p;
  for (const TensorView& v : st.tensors) {
    if (v.dtype != DType::F32) throw Error("training state " + path + ": tensor " + v.name + " is not F32");
    p.add(v.name, to_f32_tensor(v));
  }
  return p;
}

std::ofstream open_metrics_log(const std::string& path, int64_t start) {
  std::vector<std::string> kept;
  if (start > 0) {
    std::ifstream in(path);
    for (std::string l; std::getline(in, l);) {
      const auto j = nlohmann::json::parse(l, nullptr, false);
      if (!j.is_discarded() && j.contains("step") && j["step"].get<int64_t>() <= start) kept.push_back(l);
    }
  }
  std::ofstream metrics(path, std::ios::trunc);
  for (const std::string& l : kept) metrics << l << "\n";
  return metrics;
}

}  // namespace pg::train
