#pragma once
// The pieces of the training forward/backward that more than one model uses: parameter and
// gradient access by name (with LoRA and bf16 mixed precision), what a forward keeps for its
// backward, the SigLIP encoder layer (SiglipEncoderLayer, pre-LN; the same code serves the
// vision tower of PaliGemma and both towers of SigLIP contrastive pretraining) and the SigLIP
// vision transformer up to its post_layernorm. Internal to src/train/.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "kernels/matmul.h"
#include "paligemma/backend.h"
#include "paligemma/config.h"
#include "paligemma/error.h"
#include "train/layers.h"
#include "train/lora.h"
#include "train/parameters.h"

namespace pg::train {

using Buf = std::vector<float>;

void add_into(float* y, const float* x, size_t n);

// Parameter and gradient access by name; gradients are null when only the loss is wanted.
// Linears go through linear_fwd / linear_bwd, which add a LoRA adapter's path where one is.
struct Access {
  const Parameters& p;
  Parameters* g;
  const LoraAdapters* lora = nullptr;
  Parameters* lora_g = nullptr;
  const float* w(const std::string& name) const { return p.data(name); }
  // Null when only the loss is wanted or the tensor is frozen (not in the gradients).
  float* d(const std::string& name) const { return g && g->has(name) ? g->data(name) : nullptr; }

  // LoRA dropout (PEFT's lora_dropout: the adapter sees dropout(x), the frozen path x): p and
  // the stream the masks come from, set per example (and image) by the caller; each adapted
  // weight draws its own mask from the stream and its name, so the backward (and a layer
  // recomputed by gradient checkpointing) regenerates the same one.
  float lora_dropout = 0.0f;
  uint64_t lora_stream = 0;
  // Several images in one pass: the rows are lora_image_streams.size() blocks of equal size,
  // block j drawing its masks from stream j (each image its own, as when it runs alone).
  std::vector<uint64_t> lora_image_streams{};
  // bf16_copy's matrices (see there), by (name, transposed).
  struct Bf16Copy {
    std::vector<uint16_t> data;
    kernels::WeightMatrix matrix;
  };
  mutable std::map<std::pair<std::string, bool>, Bf16Copy> bf16_copies{};

  // Mixed precision: in the bf16 precision a trained (f32 master) matrix's forward and input
  // gradient run on the bf16 products like a frozen one's; its weight gradient stays f32.
  static bool bf16_products(int M) {
    return M > kernels::kSmallRows && precision() == Precision::BF16 && bf16_supported(kernel_path());
  }
  // y = x W^T + b, plus s (dropout(x) A^T) B^T with an adapter on W.
  void linear_fwd(const float* x, int M, int K, const std::string& weight, const float* bias, int N, float* y) const {
    if (const kernels::WeightMatrix* v = p.view(weight))  // frozen, in the checkpoint
      kernels::matmul(x, M, *v, bias, y);
    else if (bf16_products(M))
      kernels::matmul(x, M, bf16_copy(weight, N, K, false), bias, y);
    else
      linear_forward<float>(x, M, K, w(weight), bias, N, y);
    if (!lora || !lora->has(weight)) return;
    const int r = lora->config.rank;
    std::vector<float> xa(static_cast<size_t>(M) * r), delta(static_cast<size_t>(M) * N), xd;
    const float* xin = masked(x, static_cast<size_t>(M) * K, lora_keep(M, K, weight), xd);
    linear_forward<float>(xin, M, K, lora->a(weight), nullptr, r, xa.data());
    linear_forward<float>(xa.data(), M, r, lora->b(weight), nullptr, N, delta.data());
    const float s = static_cast<float>(lora->config.scale());
    for (size_t i = 0; i < delta.size(); ++i) y[i] += s * delta[i];
  }
  // The backward of linear_fwd: dx += dy W (+ s dy B A through the dropout); dW, db into the
  // gradients when W trains; with an adapter, dB += s dy^T (xd A^T), dA += s (dy B)^T xd.
  void linear_bwd(const float* dy, const float* x, const std::string& weight, int M, int K, int N, float* dx,
                  float* dbias) const {
    if (const kernels::WeightMatrix* v = p.view(weight)) {  // frozen: only the input gradient
      if (dx) kernels::matmul_transposed_add(dy, M, *v, dx);
      linear_backward<float>(dy, x, nullptr, M, K, N, nullptr, nullptr, dbias);  // the bias alone
    } else if (bf16_products(M)) {
      if (dx && static_cast<int64_t>(N) * K <= kCachedTransposeValues) {
        // dx += dy W = dy (W^T)^T: W^T [K, N] is a weight matrix of K rows
        Buf product(static_cast<size_t>(M) * K);
        kernels::matmul(dy, M, bf16_copy(weight, N, K, true), nullptr, product.data());
        add_into(dx, product.data(), product.size());
      } else if (dx) {  // a big matrix: transposed block by block in the product, no second copy kept
        kernels::matmul_transposed_add(dy, M, bf16_copy(weight, N, K, false), dx);
      }
      linear_backward<float>(dy, x, w(weight), M, K, N, nullptr, d(weight), dbias);
    } else {
      linear_backward<float>(dy, x, w(weight), M, K, N, dx, d(weight), dbias);
    }
    if (!lora || !lora->has(weight)) return;
    const int r = lora->config.rank;
    const float s = static_cast<float>(lora->config.scale());
    std::vector<float> xa(static_cast<size_t>(M) * r), dys(dy, dy + static_cast<size_t>(M) * N),
        dxa(static_cast<size_t>(M) * r, 0.0f), xd;
    for (float& v : dys) v *= s;
    const std::vector<uint8_t> keep = lora_keep(M, K, weight);
    const float* xin = masked(x, static_cast<size_t>(M) * K, keep, xd);
    linear_forward<float>(xin, M, K, lora->a(weight), nullptr, r, xa.data());  // recomputed, [M, r]
    float* dA = lora_g ? lora_g->data(weight + "@lora_A") : nullptr;
    float* dB = lora_g ? lora_g->data(weight + "@lora_B") : nullptr;
    // delta = xa B^T: d xa = (s dy) B, dB += (s dy)^T xa.
    linear_backward<float>(dys.data(), xa.data(), lora->b(weight), M, r, N, dxa.data(), dB, nullptr);
    // xa = xd A^T: d xd = d xa A (then through the dropout into dx), dA += d xa^T xd.
    if (keep.empty() || !dx) {
      linear_backward<float>(dxa.data(), xin, lora->a(weight), M, K, r, dx, dA, nullptr);
      return;
    }
    std::vector<float> dxd(static_cast<size_t>(M) * K, 0.0f);
    linear_backward<float>(dxa.data(), xin, lora->a(weight), M, K, r, dxd.data(), dA, nullptr);
    apply_dropout(dxd.data(), keep, lora_dropout);
    for (size_t i = 0; i < dxd.size(); ++i) dx[i] += dxd[i];
  }

  // A trained matrix rounded to bf16 (round to nearest even, as the products round it), or its
  // transpose [K, N] for the input gradient, made once per Access and reused: an Access lives
  // for one loss pass, during which the weights do not change, so a batch converts each f32
  // master matrix once instead of in every example's forward and backward (for a small model
  // that conversion was a sixth of the step).
  // Matrices up to this size also keep a transposed copy (32 MiB in bf16; the world model's
  // are ~0.3 MB); bigger ones (a 3B decoder's 2048 x 16384) transpose inside each product
  // rather than hold 4 more bytes per trained parameter.
  static constexpr int64_t kCachedTransposeValues = int64_t{16} << 20;
  const kernels::WeightMatrix& bf16_copy(const std::string& weight, int N, int K, bool transposed) const {
    Bf16Copy& c = bf16_copies[{weight, transposed}];
    if (c.matrix.empty()) {
      const float* src = w(weight);
      c.data.resize(static_cast<size_t>(N) * K);
      if (transposed) {  // in 64 x 64 tiles, which stay in cache
        for (int64_t n0 = 0; n0 < N; n0 += 64)
          for (int64_t k0 = 0; k0 < K; k0 += 64)
            for (int64_t n = n0; n < std::min<int64_t>(N, n0 + 64); ++n)
              for (int64_t k = k0; k < std::min<int64_t>(K, k0 + 64); ++k)
                c.data[k * N + n] = f32_to_bf16(src[n * K + k]);
      } else {
        for (size_t i = 0; i < c.data.size(); ++i) c.data[i] = f32_to_bf16(src[i]);
      }
      c.matrix.name = transposed ? weight + " (transposed)" : weight;
      c.matrix.format = kernels::WeightFormat::BF16;
      c.matrix.rows = transposed ? K : N;
      c.matrix.cols = transposed ? N : K;
      c.matrix.data = c.data.data();
    }
    return c.matrix;
  }

 private:
  // The dropout mask of an adapter's input (empty without LoRA dropout).
  std::vector<uint8_t> lora_keep(int M, int K, const std::string& weight) const {
    if (lora_dropout <= 0.0f) return {};
    // The weight's name (FNV-1a) mixed into the stream.
    if (lora_image_streams.empty())
      return dropout_mask(static_cast<int64_t>(M) * K, lora_dropout, lora_stream ^ fnv1a(weight));
    if (M % static_cast<int>(lora_image_streams.size()) != 0)
      throw Error("internal: " + std::to_string(M) + " rows are not " + std::to_string(lora_image_streams.size()) +
                  " images' worth");
    const int64_t block = static_cast<int64_t>(M / lora_image_streams.size()) * K;
    std::vector<uint8_t> keep;
    keep.reserve(static_cast<size_t>(M) * K);
    for (uint64_t stream : lora_image_streams) {
      const std::vector<uint8_t> part = dropout_mask(block, lora_dropout, stream ^ fnv1a(weight));
      keep.insert(keep.end(), part.begin(), part.end());
    }
    return keep;
  }
  // x itself (no mask), or dropout(x) in `storage`.
  const float* masked(const float* x, size_t n, const std::vector<uint8_t>& keep, std::vector<float>& storage) const {
    if (keep.empty()) return x;
    storage.assign(x, x + n);
    apply_dropout(storage.data(), keep, lora_dropout);
    return storage.data();
  }
};

// What a forward pass keeps for the backward: nothing (loss only, or a frozen vision tower),
// each layer's input (gradient checkpointing: the backward recomputes one layer at a time
// from it), or every layer's saved activations.
enum class Keep { Nothing, LayerInputs, Everything };

Keep keep_for(bool backward, bool checkpoint);

// The sizes of one SigLIP encoder (vision_config or text_config of a SiglipConfig).
struct EncoderShape {
  int hidden = 0, heads = 0, intermediate = 0;
  float eps = 1e-6f;
  std::string act;  // "gelu" (erf) or anything else: gelu_pytorch_tanh
};
EncoderShape encoder_shape(const VisionConfig& vc);

struct EncoderLayerState {
  Buf x_in, h1, mean1, rstd1, q, k, v, attn, x_mid, h2, mean2, rstd2, u, a;
  std::vector<AttentionSaved<float>> saved;  // one per sequence
};

// SiglipEncoderLayer (pre-LN): x += out_proj(attention(ln1(x))); x += fc2(gelu(fc1(ln2(x)))),
// on x [rows, hidden] in place, where the rows are `sequences` sequences of rows / sequences
// rows each (several images of a batch at once: the linears see all their rows together, each
// sequence attends bidirectionally to itself only). `prefix` names the layer's tensors
// ("...encoder.layers.3."); s receives what the backward needs.
void encoder_layer_forward(const Access& A, const EncoderShape& e, const std::string& prefix, int rows, int sequences,
                           Buf& x, EncoderLayerState& s);
// The backward of encoder_layer_forward: dx (the gradient of the layer's output) becomes the
// gradient of its input; parameter gradients are added.
void encoder_layer_backward(const Access& A, const EncoderShape& e, const std::string& prefix, int rows, int sequences,
                            const EncoderLayerState& s, Buf& dx);

// SiglipVisionTransformer without a head: patch embedding, position embedding, the layers,
// post_layernorm; tensors under "vision_tower.vision_model.".
struct VisionState {
  Keep keep = Keep::Everything;
  int images = 1;
  Buf patches, x_last, post, post_mean, post_rstd;
  // Keep::Everything: one state per layer; otherwise one, reused (recomputed in the backward).
  std::vector<EncoderLayerState> layers;
  std::vector<Buf> inputs;  // Keep::LayerInputs: each layer's input
};

// `images` images [C, S, S] one after the other -> the post_layernorm output
// [images * N, hidden] (also kept in st.post); the images share every product.
const Buf& vision_tower_forward(const Access& A, const VisionConfig& vc, const float* pixels, int images, Keep keep,
                                VisionState& st);
// dpost: the gradient of the post_layernorm output [images * N, hidden].
void vision_tower_backward(const Access& A, const VisionConfig& vc, VisionState& st, const float* dpost);

// Bytes the vision forward keeps per image under `keep` (to size groups of images).
size_t vision_bytes_per_image(const VisionConfig& vc, Keep keep);

}  // namespace pg::train
