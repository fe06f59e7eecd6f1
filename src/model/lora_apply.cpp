// LoRA at inference without merging: each adapted Linear keeps its frozen weight (any format,
// read in place) and adds scale * (x A^T) B^T from the PEFT adapter's f32 matrices.
#include <algorithm>
#include <functional>

#include "kernels/matmul.h"
#include "model/weights.h"
#include "paligemma/error.h"
#include "train/lora.h"

namespace pg {

void apply_linear(const Linear& linear, const float* x, int M, float* y) {
  kernels::matmul(x, M, linear.weight, linear.bias_data(), y);
  if (!linear.lora) return;
  const LoraPath& l = *linear.lora;
  const int64_t out = linear.weight.rows;
  std::vector<float> xa(static_cast<size_t>(M) * l.rank), delta(static_cast<size_t>(M) * out);
  kernels::matmul(x, M, l.a_matrix, nullptr, xa.data(), "matmul.lora");
  kernels::matmul(xa.data(), M, l.b_matrix, nullptr, delta.data(), "matmul.lora");
  for (size_t i = 0; i < delta.size(); ++i) y[i] += l.scale * delta[i];
}

void attach_lora(const std::string& dir, const Checkpoint& ckpt, Model::Weights& w) {
  // Canonical weight name -> the Linear holding it.
  std::map<std::string, Linear*> linears;
  const std::string vp = "vision_tower.vision_model.encoder.layers.", tp = "language_model.model.layers.";
  for (size_t i = 0; i < w.vision.size(); ++i) {
    VisionLayer& L = w.vision[i];
    const std::string p = vp + std::to_string(i) + ".";
    for (auto [name, lin] : std::initializer_list<std::pair<const char*, Linear*>>{{"self_attn.q_proj", &L.q},
                                                                                   {"self_attn.k_proj", &L.k},
                                                                                   {"self_attn.v_proj", &L.v},
                                                                                   {"self_attn.out_proj", &L.out},
                                                                                   {"mlp.fc1", &L.fc1},
                                                                                   {"mlp.fc2", &L.fc2}})
      linears[p + name + ".weight"] = lin;
  }
  for (size_t i = 0; i < w.text.size(); ++i) {
    TextLayer& L = w.text[i];
    const std::string p = tp + std::to_string(i) + ".";
    for (auto [name, lin] : std::initializer_list<std::pair<const char*, Linear*>>{{"self_attn.q_proj", &L.q},
                                                                                   {"self_attn.k_proj", &L.k},
                                                                                   {"self_attn.v_proj", &L.v},
                                                                                   {"self_attn.o_proj", &L.o},
                                                                                   {"mlp.gate_proj", &L.gate},
                                                                                   {"mlp.up_proj", &L.up},
                                                                                   {"mlp.down_proj", &L.down}})
      linears[p + name + ".weight"] = lin;
  }
  linears["multi_modal_projector.linear.weight"] = &w.projector;
  // The logical shapes (a quantised tensor's stored shape is its packed layout).
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, lin] : linears) shapes[name] = {lin->weight.rows, lin->weight.cols};
  (void)ckpt;
  const train::LoraAdapters adapters = train::load_peft(dir, shapes);
  for (const auto& [key, t] : adapters.tensors.tensors()) {
    if (key.size() < 7 || key.compare(key.size() - 7, 7, "@lora_A") != 0) continue;
    const std::string weight = key.substr(0, key.size() - 7);
    auto it = linears.find(weight);
    if (it == linears.end())
      throw Error("LoRA adapter " + dir + " adapts " + weight + ", which is not a linear layer here");
    auto path = std::make_shared<LoraPath>();
    path->rank = adapters.config.rank;
    path->scale = static_cast<float>(adapters.config.scale());
    path->a = t.data;
    path->b = adapters.tensors.at(weight + "@lora_B").data;
    const int64_t out = it->second->weight.rows, in = it->second->weight.cols;
    path->a_matrix.name = weight + " lora_A";
    path->a_matrix.format = kernels::WeightFormat::F32;
    path->a_matrix.rows = path->rank;
    path->a_matrix.cols = in;
    path->a_matrix.data = path->a.data();
    path->b_matrix.name = weight + " lora_B";
    path->b_matrix.format = kernels::WeightFormat::F32;
    path->b_matrix.rows = out;
    path->b_matrix.cols = path->rank;
    path->b_matrix.data = path->b.data();
    it->second->lora = std::move(path);
  }
}

}  // namespace pg
