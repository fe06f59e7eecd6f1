#include "paligemma/model_info.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "paligemma/quantize.h"

namespace pg {

ParameterCounts count_parameters(const Checkpoint& ckpt) {
  ParameterCounts c;
  const std::string suffix = kQuantScaleSuffix;
  auto is_scale = [&](const std::string& name) {
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& name : ckpt.names()) {
    const TensorView& t = ckpt.get(name);
    if (is_scale(name)) {
      c.weight_bytes += static_cast<int64_t>(t.nbytes());
      continue;
    }
    const bool quantised = (t.dtype == DType::I8 || t.dtype == DType::U8) && ckpt.has(name + suffix);
    const int64_t n = quantised && t.dtype == DType::U8 ? 2 * t.numel() : t.numel();
    if (name.rfind("vision_tower.", 0) == 0) c.vision += n;
    else if (name.rfind("multi_modal_projector.", 0) == 0) c.projector += n;
    else if (name.rfind("language_model.", 0) == 0) c.language += n;
    else c.other += n;
    c.by_dtype[quantised ? (t.dtype == DType::I8 ? "int8" : "q4") : dtype_name(t.dtype)] += n;
    c.weight_bytes += static_cast<int64_t>(t.nbytes());
  }
  return c;
}

WeightFormats weight_formats(const Checkpoint& ckpt) {
  WeightFormats f;
  std::set<std::string> vision, text, embedding;
  auto starts = [](const std::string& s, const char* p) { return s.rfind(p, 0) == 0; };
  for (const auto& name : ckpt.names()) {
    const TensorView& t = ckpt.get(name);
    f.weight_bytes += static_cast<int64_t>(t.nbytes());
    if (name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
    if (t.shape.size() != 2) continue;
    std::string format;
    if (t.dtype == DType::I8) format = "int8";
    else if (t.dtype == DType::U8) format = "q4";
    else {
      format = dtype_name(t.dtype);
      for (char& ch : format) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    const bool linear = name.find(".self_attn.") != std::string::npos || name.find(".mlp.") != std::string::npos;
    if ((starts(name, "vision_tower.vision_model.encoder.layers.") && linear) ||
        name == "multi_modal_projector.linear.weight")
      vision.insert(format);
    else if (starts(name, "language_model.model.layers.") && linear)
      text.insert(format);
    else if (name == "language_model.model.embed_tokens.weight" || name == "language_model.lm_head.weight")
      embedding.insert(format);
  }
  auto join = [](const std::set<std::string>& s) {
    std::string out;
    for (const auto& x : s) out += (out.empty() ? "" : "+") + x;
    return out;
  };
  f.vision = join(vision);
  f.text = join(text);
  f.embedding = join(embedding);
  if (auto m = read_quantization_manifest(ckpt.dir())) f.quantized_version = m->version;
  return f;
}

MemoryEstimate estimate_memory(const ModelConfig& config, int64_t weight_bytes, int images, int text_tokens,
                               int new_tokens, DType kv_cache) {
  const auto& tc = config.text;
  const auto& vc = config.vision;
  MemoryEstimate m;
  m.weight_bytes = weight_bytes;
  const int64_t positions = static_cast<int64_t>(images) * config.image_tokens_per_image() + text_tokens + new_tokens;
  m.kv_cache_bytes = positions * tc.num_layers * 2LL * tc.num_kv_heads * tc.head_dim *
                     static_cast<int64_t>(dtype_size(kv_cache));
  // Vision tower: x, h, q, k, v, split k/v, attention out (8 x N x Hv) + MLP (N x Iv) + im2col.
  const int64_t N = vc.num_patches();
  const int64_t vision = 4 * (N * (8LL * vc.hidden_size + vc.intermediate_size) +
                              N * 3LL * vc.patch_size * vc.patch_size);
  // Prefill: x, h, o (3 x T x H), q + attention out (2 x T x q_dim), k, v (2 x T x kv_dim),
  // gate and up (2 x T x I), and one row of logits (kept per step only for --dump).
  const int64_t T = positions - new_tokens;
  const int64_t q_dim = static_cast<int64_t>(tc.num_heads) * tc.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(tc.num_kv_heads) * tc.head_dim;
  const int64_t prefill = 4 * (T * (3LL * tc.hidden_size + 2 * q_dim + 2 * kv_dim + 2LL * tc.intermediate_size) +
                               static_cast<int64_t>(tc.vocab_size));
  m.activation_bytes = std::max(vision, prefill);
  return m;
}

}  // namespace pg
