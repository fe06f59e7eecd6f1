#include "model/weights.h"

#include "kernels/ops.h"
#include "kernels/quantize.h"
#include "paligemma/error.h"
#include "paligemma/quantize.h"

namespace pg {
namespace {

class Fetcher {
 public:
  Fetcher(const Checkpoint& ckpt) : ckpt_(ckpt) {}
  // A float matrix as stored, or a quantised one (docs/QUANTIZATION.md): NAME with dtype I8
  // [rows, cols] or U8 [rows, q4_row_bytes(cols)] plus NAME.q_scale (F32 [rows] or
  // F16 [rows, q4_blocks(cols)]). `shape` is what config.json implies for the float tensor.
  kernels::WeightMatrix matrix(const std::string& name, std::vector<int64_t> shape) {
    const std::string scale_name = name + kQuantScaleSuffix;
    const bool has_scale = ckpt_.has(scale_name);
    const TensorView& t = ckpt_.get(name);
    if (t.dtype != DType::I8 && t.dtype != DType::U8) {
      if (has_scale)
        throw Error("tensor " + described(name) + " in " + ckpt_.file_of(name) + " has dtype " +
                    dtype_name(t.dtype) + " but a scale tensor " + scale_name +
                    "; quantised matrices are stored as I8 (int8) or U8 (q4)");
      return kernels::weight_from_tensor_flat(ckpt_.get(name, shape));
    }
    const bool int8 = t.dtype == DType::I8;
    const std::string what = std::string(int8 ? "int8" : "q4") + " tensor " + described(name) + " in " +
                             ckpt_.file_of(name);
    if (!has_scale)
      throw Error(what + " (dtype " + dtype_name(t.dtype) + ") has no scale tensor " + scale_name +
                  " (a quantised matrix needs its scales; re-run `paligemma quantize`)");
    if (shape.size() != 2)
      throw Error(what + ": only 2-D matrices may be quantised, but config.json implies shape " +
                  shape_string(shape) + " for it");
    const int64_t rows = shape[0], cols = shape[1];
    const std::vector<int64_t> data_shape = {rows, int8 ? cols : kernels::q4_row_bytes(cols)};
    if (t.shape != data_shape)
      throw Error(what + " has shape " + shape_string(t.shape) + " but config.json implies " +
                  shape_string(data_shape) + " (the " + (int8 ? "int8" : "q4") + " layout of [" +
                  std::to_string(rows) + ", " + std::to_string(cols) + "])");
    const TensorView& s = ckpt_.get(scale_name);
    const DType scale_dtype = int8 ? DType::F32 : DType::F16;
    const std::vector<int64_t> scale_shape =
        int8 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, kernels::q4_blocks(cols)};
    const std::string swhat = "scale tensor " + described(scale_name) + " in " + ckpt_.file_of(scale_name) +
                              " (for " + (int8 ? "int8" : "q4") + " tensor " + name + ")";
    if (s.dtype != scale_dtype)
      throw Error(swhat + " has dtype " + dtype_name(s.dtype) + " but must be " + dtype_name(scale_dtype));
    if (s.shape != scale_shape)
      throw Error(swhat + " has shape " + shape_string(s.shape) + " but must be " + shape_string(scale_shape));
    kernels::WeightMatrix w;
    w.name = name;
    w.format = int8 ? kernels::WeightFormat::Int8 : kernels::WeightFormat::Q4;
    w.rows = rows;
    w.cols = cols;
    w.data = t.data;
    w.scales = s.data;
    return w;
  }
  // A tensor that must stay in a float dtype (norms, biases, position embedding).
  const TensorView& float_tensor(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView& t = ckpt_.get(name, shape);
    if (t.dtype == DType::I8 || t.dtype == DType::U8)
      throw Error("tensor " + described(name) + " in " + ckpt_.file_of(name) + " has dtype " + dtype_name(t.dtype) +
                  ", but only weight matrices may be quantised; it must be F32, BF16 or F16");
    return t;
  }
  Vec vec(const std::string& name, int64_t n) {
    const TensorView& t = float_tensor(name, {n});
    Vec out;
    out.v.resize(n);
    kernels::to_f32(t, out.v.data());
    return out;
  }
  Linear linear(const std::string& prefix, int64_t out, int64_t in, bool bias) {
    Linear l;
    l.weight = matrix(prefix + ".weight", {out, in});
    if (bias) l.bias = vec(prefix + ".bias", out);
    return l;
  }

 private:
  std::string described(const std::string& name) const {
    const std::string& stored = ckpt_.stored_name_of(name);
    return stored == name ? name : name + " (stored as " + stored + ")";
  }
  const Checkpoint& ckpt_;
};

}  // namespace

std::unique_ptr<Model::Weights> load_weights(const Checkpoint& ckpt, const ModelConfig& c) {
  read_quantization_manifest(ckpt.dir());  // format / version check (quantised outputs)
  auto w = std::make_unique<Model::Weights>();
  Fetcher f(ckpt);
  const auto& vc = c.vision;
  const int64_t Hv = vc.hidden_size, Iv = vc.intermediate_size, P = vc.patch_size;
  const std::string vp = "vision_tower.vision_model.";
  w->patch_w = f.matrix(vp + "embeddings.patch_embedding.weight", {Hv, vc.num_channels, P, P});
  w->patch_b = f.vec(vp + "embeddings.patch_embedding.bias", Hv);
  w->position = f.float_tensor(vp + "embeddings.position_embedding.weight", {vc.num_patches(), Hv});
  for (int i = 0; i < vc.num_layers; ++i) {
    const std::string lp = vp + "encoder.layers." + std::to_string(i) + ".";
    VisionLayer L;
    L.ln1_w = f.vec(lp + "layer_norm1.weight", Hv);
    L.ln1_b = f.vec(lp + "layer_norm1.bias", Hv);
    L.ln2_w = f.vec(lp + "layer_norm2.weight", Hv);
    L.ln2_b = f.vec(lp + "layer_norm2.bias", Hv);
    L.q = f.linear(lp + "self_attn.q_proj", Hv, Hv, true);
    L.k = f.linear(lp + "self_attn.k_proj", Hv, Hv, true);
    L.v = f.linear(lp + "self_attn.v_proj", Hv, Hv, true);
    L.out = f.linear(lp + "self_attn.out_proj", Hv, Hv, true);
    L.fc1 = f.linear(lp + "mlp.fc1", Iv, Hv, true);
    L.fc2 = f.linear(lp + "mlp.fc2", Hv, Iv, true);
    w->vision.push_back(std::move(L));
  }
  w->post_ln_w = f.vec(vp + "post_layernorm.weight", Hv);
  w->post_ln_b = f.vec(vp + "post_layernorm.bias", Hv);
  w->projector = f.linear("multi_modal_projector.linear", c.projection_dim, Hv, true);

  const auto& tc = c.text;
  const int64_t H = tc.hidden_size, I = tc.intermediate_size, V = tc.vocab_size;
  const int64_t q_dim = static_cast<int64_t>(tc.num_heads) * tc.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(tc.num_kv_heads) * tc.head_dim;
  const std::string tp = "language_model.model.";
  w->embed = f.matrix(tp + "embed_tokens.weight", {V, H});
  for (int i = 0; i < tc.num_layers; ++i) {
    const std::string lp = tp + "layers." + std::to_string(i) + ".";
    TextLayer L;
    L.q = f.linear(lp + "self_attn.q_proj", q_dim, H, false);
    L.k = f.linear(lp + "self_attn.k_proj", kv_dim, H, false);
    L.v = f.linear(lp + "self_attn.v_proj", kv_dim, H, false);
    L.o = f.linear(lp + "self_attn.o_proj", H, q_dim, false);
    L.gate = f.linear(lp + "mlp.gate_proj", I, H, false);
    L.up = f.linear(lp + "mlp.up_proj", I, H, false);
    L.down = f.linear(lp + "mlp.down_proj", H, I, false);
    L.input_norm = f.vec(lp + "input_layernorm.weight", H);
    L.post_attn_norm = f.vec(lp + "post_attention_layernorm.weight", H);
    if (tc.arch == TextArch::Gemma2) {
      L.pre_ffw_norm = f.vec(lp + "pre_feedforward_layernorm.weight", H);
      L.post_ffw_norm = f.vec(lp + "post_feedforward_layernorm.weight", H);
    }
    w->text.push_back(std::move(L));
  }
  w->final_norm = f.vec(tp + "norm.weight", H);
  // lm_head is tied to the embedding; a checkpoint may still store it (then it is used).
  w->lm_head = ckpt.has("language_model.lm_head.weight") ? f.matrix("language_model.lm_head.weight", {V, H})
                                                          : w->embed;
  return w;
}

}  // namespace pg
