#include "seg/mask_vae.h"

#include <array>
#include <cmath>
#include <limits>

#include "core/random.h"
#include "paligemma/error.h"
#include "paligemma/tensor.h"
#include "seg/conv_layers.h"

namespace pg::seg {

namespace {

using Buf = std::vector<float>;
using train::Parameters;

constexpr int kMaskSide = 64, kGrid = 4, kCells = kGrid * kGrid;

struct Layer {
  std::string key;
  bool transposed = false;
  int cin = 0, cout = 0;
  ConvGeometry g;
  int out_pixels() const { return transposed ? g.in_pixels() : g.out_pixels(); }
};

struct ResLayers {
  Layer c0, c1, c2;
};

struct Net {
  MaskVaeShape shape;
  std::array<Layer, 4> enc_down;
  std::array<ResLayers, 2> enc_res;
  Layer enc_out, dec_in;
  std::array<ResLayers, 2> dec_res;
  std::array<Layer, 4> dec_up;
  Layer dec_out;
};

Layer conv(const std::string& key, int cin, int cout, ConvGeometry g) { return Layer{key, false, cin, cout, g}; }

ResLayers res_layers(const std::string& key, int c) {
  // Encoder: TF 'SAME'; decoder: flax padding 1 for 3x3, 0 for 1x1: the same geometry at stride 1.
  return ResLayers{conv(key + ".0", c, c, same_geometry(kGrid, kGrid, 3, 1)),
                   conv(key + ".2", c, c, same_geometry(kGrid, kGrid, 3, 1)),
                   conv(key + ".4", c, c, same_geometry(kGrid, kGrid, 1, 1))};
}

Net make_net(const MaskVaeShape& s) {
  validate_mask_vae_shape(s);
  Net n;
  n.shape = s;
  const int C = s.channels;
  int side = kMaskSide, cin = 1;
  for (int i = 0; i < 4; ++i) {
    const int cout = C >> (3 - i);  // C/8, C/4, C/2, C: the decoder's widths mirrored
    n.enc_down[i] = conv("encoder." + std::to_string(2 * i), cin, cout, same_geometry(side, side, 4, 2));
    side /= 2;
    cin = cout;
  }
  n.enc_res = {res_layers("encoder.8.net", C), res_layers("encoder.9.net", C)};
  n.enc_out = conv("encoder.10", C, s.code_dim, same_geometry(kGrid, kGrid, 1, 1));
  n.dec_in = conv("decoder.0", s.code_dim, C, same_geometry(kGrid, kGrid, 1, 1));
  n.dec_res = {res_layers("decoder.2.net", C), res_layers("decoder.3.net", C)};
  side = kGrid;
  cin = C;
  for (int i = 0; i < 4; ++i) {
    const int cout = C >> i;
    // flax ConvTranspose(4x4, stride 2, padding 2, transpose_kernel) == PyTorch padding 1.
    n.dec_up[i] =
        Layer{"decoder." + std::to_string(4 + 2 * i), true, cin, cout, transposed_geometry(side, side, 4, 2, 1)};
    side *= 2;
    cin = cout;
  }
  n.dec_out = conv("decoder.12", cin, 1, same_geometry(kMaskSide, kMaskSide, 1, 1));
  return n;
}

std::vector<int64_t> weight_shape(const Layer& l) {
  const int64_t k = l.g.kernel;
  return l.transposed ? std::vector<int64_t>{l.cin, l.cout, k, k} : std::vector<int64_t>{l.cout, l.cin, k, k};
}

template <typename Fn>
void for_each_layer(const Net& n, Fn&& fn) {
  for (const Layer& l : n.enc_down) fn(l);
  for (const ResLayers& r : n.enc_res)
    for (const Layer* l : {&r.c0, &r.c1, &r.c2}) fn(*l);
  fn(n.enc_out);
  fn(n.dec_in);
  for (const ResLayers& r : n.dec_res)
    for (const Layer* l : {&r.c0, &r.c1, &r.c2}) fn(*l);
  for (const Layer& l : n.dec_up) fn(l);
  fn(n.dec_out);
}

const std::string kCodebook = "_vq_vae._embedding";

Buf forward(const Layer& l, const Parameters& p, const Buf& x, int batch) {
  Buf y(static_cast<size_t>(batch) * l.out_pixels() * l.cout);
  const float* w = p.data(l.key + ".weight");
  const float* b = p.data(l.key + ".bias");
  if (l.transposed)
    conv_transpose2d_forward(x.data(), batch, l.cin, l.cout, l.g, w, b, y.data());
  else
    conv2d_forward(x.data(), batch, l.cin, l.cout, l.g, w, b, y.data());
  return y;
}

Buf forward_relu(const Layer& l, const Parameters& p, const Buf& x, int batch) {
  Buf y = forward(l, p, x, batch);
  relu_inplace(y.data(), y.size());
  return y;
}

// Returns dx (empty when !want_dx); adds the weight and bias gradients into grads.
Buf backward(const Layer& l, const Parameters& p, const Buf& x, const Buf& dy, int batch, Parameters* grads,
             bool want_dx = true) {
  Buf dx;
  if (want_dx) dx.assign(x.size(), 0.0f);
  float* dw = grads ? grads->data(l.key + ".weight") : nullptr;
  float* db = grads ? grads->data(l.key + ".bias") : nullptr;
  const float* w = p.data(l.key + ".weight");
  if (l.transposed)
    conv_transpose2d_backward(dy.data(), x.data(), batch, l.cin, l.cout, l.g, w, want_dx ? dx.data() : nullptr, dw, db);
  else
    conv2d_backward(dy.data(), x.data(), batch, l.cin, l.cout, l.g, w, want_dx ? dx.data() : nullptr, dw, db);
  return dx;
}

struct ResTape {
  Buf x, h0, h1, y;
};

ResTape res_forward(const ResLayers& r, const Parameters& p, Buf x, int batch) {
  ResTape t;
  t.x = std::move(x);
  t.h0 = forward_relu(r.c0, p, t.x, batch);
  t.h1 = forward_relu(r.c1, p, t.h0, batch);
  t.y = forward(r.c2, p, t.h1, batch);
  for (size_t i = 0; i < t.y.size(); ++i) t.y[i] += t.x[i];
  return t;
}

Buf res_backward(const ResLayers& r, const Parameters& p, const ResTape& t, const Buf& dy, int batch,
                 Parameters* grads) {
  Buf d = backward(r.c2, p, t.h1, dy, batch, grads);
  relu_backward_inplace(d.data(), t.h1.data(), d.size());
  d = backward(r.c1, p, t.h0, d, batch, grads);
  relu_backward_inplace(d.data(), t.h0.data(), d.size());
  Buf dx = backward(r.c0, p, t.x, d, batch, grads);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] += dy[i];  // the skip connection
  return dx;
}

struct EncoderTape {
  Buf input;
  std::array<Buf, 4> down;  // after ReLU
  std::array<ResTape, 2> res;
  Buf z;  // [batch, 4, 4, D] = [batch, 16, D]
};

EncoderTape encoder_forward(const Net& n, const Parameters& p, const float* masks, int batch) {
  EncoderTape t;
  t.input.resize(static_cast<size_t>(batch) * kMaskSide * kMaskSide);
  for (size_t i = 0; i < t.input.size(); ++i) t.input[i] = 2.0f * (masks[i] - 0.5f);
  const Buf* x = &t.input;
  for (int i = 0; i < 4; ++i) {
    t.down[i] = forward_relu(n.enc_down[i], p, *x, batch);
    x = &t.down[i];
  }
  t.res[0] = res_forward(n.enc_res[0], p, t.down[3], batch);
  t.res[1] = res_forward(n.enc_res[1], p, t.res[0].y, batch);
  t.z = forward(n.enc_out, p, t.res[1].y, batch);
  return t;
}

void encoder_backward(const Net& n, const Parameters& p, const EncoderTape& t, const Buf& dz, int batch,
                      Parameters* grads) {
  Buf d = backward(n.enc_out, p, t.res[1].y, dz, batch, grads);
  d = res_backward(n.enc_res[1], p, t.res[1], d, batch, grads);
  d = res_backward(n.enc_res[0], p, t.res[0], d, batch, grads);
  for (int i = 3; i >= 0; --i) {
    relu_backward_inplace(d.data(), t.down[i].data(), d.size());
    d = backward(n.enc_down[i], p, i == 0 ? t.input : t.down[i - 1], d, batch, grads, i > 0);
  }
}

struct DecoderTape {
  Buf zq, h;  // h: after decoder.0 + ReLU
  std::array<ResTape, 2> res;
  std::array<Buf, 4> up;  // after ReLU
  Buf logits;
};

DecoderTape decoder_forward(const Net& n, const Parameters& p, Buf zq, int batch) {
  DecoderTape t;
  t.zq = std::move(zq);
  t.h = forward_relu(n.dec_in, p, t.zq, batch);
  t.res[0] = res_forward(n.dec_res[0], p, t.h, batch);
  t.res[1] = res_forward(n.dec_res[1], p, t.res[0].y, batch);
  const Buf* x = &t.res[1].y;
  for (int i = 0; i < 4; ++i) {
    t.up[i] = forward_relu(n.dec_up[i], p, *x, batch);
    x = &t.up[i];
  }
  t.logits = forward(n.dec_out, p, t.up[3], batch);
  return t;
}

// Returns d loss / d zq.
Buf decoder_backward(const Net& n, const Parameters& p, const DecoderTape& t, const Buf& dlogits, int batch,
                     Parameters* grads) {
  Buf d = backward(n.dec_out, p, t.up[3], dlogits, batch, grads);
  for (int i = 3; i >= 0; --i) {
    relu_backward_inplace(d.data(), t.up[i].data(), d.size());
    d = backward(n.dec_up[i], p, i == 0 ? t.res[1].y : t.up[i - 1], d, batch, grads);
  }
  d = res_backward(n.dec_res[1], p, t.res[1], d, batch, grads);
  d = res_backward(n.dec_res[0], p, t.res[0], d, batch, grads);
  relu_backward_inplace(d.data(), t.h.data(), d.size());
  return backward(n.dec_in, p, t.zq, d, batch, grads);
}

// Nearest codebook row of each D-vector (squared L2 in double, lowest index on ties: the
// same rule and arithmetic as MaskCodec::encode).
std::vector<int> nearest_codes(const float* z, int64_t vectors, const float* codebook, int K, int D) {
  std::vector<int> codes(static_cast<size_t>(vectors));
  for (int64_t v = 0; v < vectors; ++v) {
    const float* zv = z + v * D;
    double best = std::numeric_limits<double>::infinity();
    int best_k = 0;
    for (int k = 0; k < K; ++k) {
      const float* e = codebook + static_cast<int64_t>(k) * D;
      double d2 = 0.0;
      for (int d = 0; d < D; ++d) {
        const double diff = static_cast<double>(zv[d]) - e[d];
        d2 += diff * diff;
      }
      if (d2 < best) {
        best = d2;
        best_k = k;
      }
    }
    codes[static_cast<size_t>(v)] = best_k;
  }
  return codes;
}

Buf lookup(const float* codebook, const int* codes, int64_t vectors, int K, int D) {
  Buf zq(static_cast<size_t>(vectors) * D);
  for (int64_t v = 0; v < vectors; ++v) {
    if (codes[v] < 0 || codes[v] >= K)
      throw Error("mask VQ-VAE: code " + std::to_string(codes[v]) + " is outside [0, " + std::to_string(K) + ")");
    std::copy_n(codebook + static_cast<int64_t>(codes[v]) * D, D, zq.data() + v * D);
  }
  return zq;
}

void check_batch(int batch) {
  if (batch <= 0) throw Error("mask VQ-VAE: the batch must hold at least one mask");
}

}  // namespace

void validate_mask_vae_shape(const MaskVaeShape& s) {
  if (s.channels < 8 || s.channels % 8 != 0)
    throw Error("mask VQ-VAE: channels must be a positive multiple of 8 (the decoder halves it three times), got " +
                std::to_string(s.channels));
  if (s.code_dim < 1) throw Error("mask VQ-VAE: the code dimension must be >= 1, got " + std::to_string(s.code_dim));
  if (s.codebook < 2)
    throw Error("mask VQ-VAE: the codebook needs at least 2 codes, got " + std::to_string(s.codebook));
  if (s.codebook > 1024 || s.channels > 1024 || s.code_dim > 4096)
    throw Error("mask VQ-VAE: widths too large (channels <= 1024, code dim <= 4096, codebook <= 1024)");
}

std::vector<std::pair<std::string, std::vector<int64_t>>> mask_vae_parameter_shapes(const MaskVaeShape& shape) {
  const Net n = make_net(shape);
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for_each_layer(n, [&](const Layer& l) {
    out.emplace_back(l.key + ".weight", weight_shape(l));
    out.emplace_back(l.key + ".bias", std::vector<int64_t>{l.cout});
  });
  out.emplace_back(kCodebook, std::vector<int64_t>{shape.codebook, shape.code_dim});
  return out;
}

train::Parameters init_mask_vae(const MaskVaeShape& shape, uint64_t seed) {
  const Net n = make_net(shape);
  Parameters p;
  auto normal = [](uint64_t& state) {  // Box-Muller on splitmix64 (the same on every library)
    const double u1 = (static_cast<double>(splitmix64_next(state) >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = static_cast<double>(splitmix64_next(state) >> 11) * 0x1.0p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  };
  for_each_layer(n, [&](const Layer& l) {
    uint64_t state = splitmix64_hash(seed ^ fnv1a(l.key));
    train::Tensor w;
    w.shape = weight_shape(l);
    w.data.resize(static_cast<size_t>(l.cin) * l.cout * l.g.kernel * l.g.kernel);
    // A transposed conv's output pixel sees cin * (kernel / stride)^2 taps.
    const double fan_in =
        l.transposed ? l.cin * (l.g.kernel / l.g.stride) * (l.g.kernel / l.g.stride) : l.cin * l.g.kernel * l.g.kernel;
    const bool residual_out = l.key.size() > 6 && l.key.compare(l.key.size() - 6, 6, ".net.4") == 0;
    const double stddev = std::sqrt(2.0 / fan_in) * (residual_out ? 0.1 : 1.0);
    for (float& v : w.data) v = static_cast<float>(normal(state) * stddev);
    p.add(l.key + ".weight", std::move(w));
    p.add(l.key + ".bias", train::Tensor{{l.cout}, std::vector<float>(l.cout, 0.0f)});
  });
  uint64_t state = splitmix64_hash(seed ^ fnv1a(kCodebook));
  train::Tensor e;
  e.shape = {shape.codebook, shape.code_dim};
  e.data.resize(static_cast<size_t>(shape.codebook) * shape.code_dim);
  for (float& v : e.data) v = static_cast<float>(normal(state));
  p.add(kCodebook, std::move(e));
  return p;
}

MaskVaeShape mask_vae_shape_of(const train::Parameters& params) {
  for (const char* key : {"_vq_vae._embedding", "decoder.0.weight"})
    if (!params.has(key)) throw Error("mask VQ-VAE: parameter '" + std::string(key) + "' is missing");
  const auto& e = params.at(kCodebook).shape;
  const auto& d0 = params.at("decoder.0.weight").shape;
  if (e.size() != 2 || d0.size() != 4)
    throw Error("mask VQ-VAE: '_vq_vae._embedding' or 'decoder.0.weight' has the wrong rank");
  MaskVaeShape s;
  s.codebook = static_cast<int>(e[0]);
  s.code_dim = static_cast<int>(e[1]);
  s.channels = static_cast<int>(d0[0]);
  validate_mask_vae_shape(s);
  for (const auto& [name, shape] : mask_vae_parameter_shapes(s)) {
    if (!params.has(name)) throw Error("mask VQ-VAE: parameter '" + name + "' is missing");
    if (params.at(name).shape != shape)
      throw Error("mask VQ-VAE: parameter '" + name + "' has shape " + shape_string(params.at(name).shape) +
                  ", expected " + shape_string(shape) + " for channels " + std::to_string(s.channels) + ", code dim " +
                  std::to_string(s.code_dim) + ", codebook " + std::to_string(s.codebook));
  }
  return s;
}

MaskVaeLoss mask_vae_loss(const train::Parameters& params, const float* masks, int batch,
                          const MaskVaeLossConfig& config, train::Parameters* grads) {
  check_batch(batch);
  const Net n = make_net(mask_vae_shape_of(params));
  const int K = n.shape.codebook, D = n.shape.code_dim;
  const float* codebook = params.data(kCodebook);
  const int64_t vectors = static_cast<int64_t>(batch) * kCells;

  EncoderTape enc = encoder_forward(n, params, masks, batch);
  MaskVaeLoss out;
  out.codes = nearest_codes(enc.z.data(), vectors, codebook, K, D);
  DecoderTape dec = decoder_forward(n, params, lookup(codebook, out.codes.data(), vectors, K, D), batch);

  const int64_t pixels = static_cast<int64_t>(batch) * kMaskSide * kMaskSide;
  Buf dlogits(static_cast<size_t>(pixels));
  double recon = 0.0;
  for (int64_t i = 0; i < pixels; ++i) {
    const double diff = static_cast<double>(dec.logits[i]) - 2.0 * (static_cast<double>(masks[i]) - 0.5);
    recon += diff * diff;
    dlogits[i] = static_cast<float>(2.0 * diff / static_cast<double>(pixels));
  }
  out.reconstruction = recon / static_cast<double>(pixels);

  const double elems = static_cast<double>(vectors) * D;
  double sq = 0.0;
  for (int64_t i = 0; i < vectors * D; ++i) {
    const double diff = static_cast<double>(enc.z[i]) - dec.zq[i];
    sq += diff * diff;
  }
  out.codebook = out.commitment = sq / elems;  // the same distance, stopped on either side
  out.total = out.reconstruction + out.codebook + config.beta * out.commitment;

  if (grads) {
    Buf dzq = decoder_backward(n, params, dec, dlogits, batch, grads);
    Buf dz(enc.z.size(), 0.0f);
    if (config.straight_through) dz = dzq;
    float* dcodebook = grads->data(kCodebook);
    for (int64_t v = 0; v < vectors; ++v) {
      float* de = dcodebook + static_cast<int64_t>(out.codes[v]) * D;
      for (int d = 0; d < D; ++d) {
        const double diff = static_cast<double>(enc.z[v * D + d]) - dec.zq[v * D + d];
        de[d] += static_cast<float>(-2.0 * diff / elems);
        dz[v * D + d] += static_cast<float>(config.beta * 2.0 * diff / elems);
      }
    }
    encoder_backward(n, params, enc, dz, batch, grads);
  }
  out.encodings = std::move(enc.z);
  out.logits = std::move(dec.logits);
  return out;
}

std::vector<int> mask_vae_encode(const train::Parameters& params, const float* masks, int batch,
                                 std::vector<float>* encodings) {
  check_batch(batch);
  const Net n = make_net(mask_vae_shape_of(params));
  EncoderTape enc = encoder_forward(n, params, masks, batch);
  std::vector<int> codes = nearest_codes(enc.z.data(), static_cast<int64_t>(batch) * kCells, params.data(kCodebook),
                                         n.shape.codebook, n.shape.code_dim);
  if (encodings) *encodings = std::move(enc.z);
  return codes;
}

std::vector<float> mask_vae_decode(const train::Parameters& params, const int* codes, int batch) {
  check_batch(batch);
  const Net n = make_net(mask_vae_shape_of(params));
  const int64_t vectors = static_cast<int64_t>(batch) * kCells;
  return decoder_forward(n, params, lookup(params.data(kCodebook), codes, vectors, n.shape.codebook, n.shape.code_dim),
                         batch)
      .logits;
}

}  // namespace pg::seg
