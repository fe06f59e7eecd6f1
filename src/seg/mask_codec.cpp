// big_vision's mask VQ-VAE, exactly as published (google-research/big_vision 5f95305c):
//
// Decoder (evaluators/proj/paligemma/transfers/segmentation.py, flax):
//   x = embedding[codes].reshape(4, 4, D)            (row-major 4x4 grid of the 16 codes)
//   x = relu(Conv 1x1, padding 0)                    decoder.0
//   2 x ResBlock: x + Conv1x1(relu(Conv3x3 pad 1(relu(Conv3x3 pad 1(x)))))
//                                                    decoder.{2,3}.net.{0,2,4}
//   4 x relu(ConvTranspose 4x4, stride 2, padding 2, transpose_kernel=True)
//                                                    decoder.{4,6,8,10}
//     flax's explicit padding 2 on the stride-dilated input with the flipped kernel is
//     PyTorch's ConvTranspose2d(k=4, stride=2, padding=k-1-2=1): 4 -> 8 -> 16 -> 32 -> 64.
//   Conv 1x1 -> 1 channel, no activation              decoder.12
//   _get_params transposes every weight with (2, 3, 1, 0): PyTorch Conv2d (out,in,kh,kw) and
//   ConvTranspose2d (in,out,kh,kw) both become flax's (kh,kw,in,out) / (kh,kw,out,in)
//   (the latter being what transpose_kernel=True expects), i.e. the file is PyTorch's layout.
// Encoder (pp/proj/paligemma/segmentation.py, TensorFlow):
//   x = 2 * (mask64 - 0.5)
//   4 x relu(conv2d stride 2, padding 'SAME')         encoder.{0,2,4,6}
//   2 x ResBlock, all three convs stride 1 'SAME'     encoder.{8,9}.net.{0,2,4}
//   conv2d stride 1 'SAME', no activation             encoder.10
//   argmin over K of |x|^2 + |e|^2 - 2 x.e per cell, reshape(-1, 16): row-major 4x4.
// Weights are used in float32 whatever float dtype the file stores (f4 expected).
#include "paligemma/mask_codec.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "paligemma/error.h"
#include "paligemma/npz.h"
#include "paligemma/tensor.h"

namespace pg {

namespace {

using Conv = MaskCodec::Conv;
using ResBlock = MaskCodec::ResBlock;

std::vector<float> float_array(const Npz& npz, const std::string& key) {
  const NpyArray& a = npz.get(key);
  if (a.dtype.empty() || a.dtype[0] != 'f')
    throw Error(npz.path() + ": array '" + key + "' has dtype " + a.dtype +
                ", expected a floating-point dtype (f4)");
  return a.as_f32();
}

// Reads KEY.weight (rank 4) and KEY.bias (rank 1, one per output channel).
Conv read_conv(const Npz& npz, const std::string& key, bool transposed) {
  const NpyArray& w = npz.get(key + ".weight");
  const NpyArray& b = npz.get(key + ".bias");
  if (w.shape.size() != 4 || w.numel() == 0)
    throw Error(npz.path() + ": '" + key + ".weight' has shape " + shape_string(w.shape) +
                ", expected a non-empty " +
                (transposed ? "(in, out, kh, kw)" : "(out, in, kh, kw)") + " tensor");
  Conv c;
  c.key = key;
  c.out = static_cast<int>(transposed ? w.shape[1] : w.shape[0]);
  c.in = static_cast<int>(transposed ? w.shape[0] : w.shape[1]);
  c.kh = static_cast<int>(w.shape[2]);
  c.kw = static_cast<int>(w.shape[3]);
  if (b.shape != std::vector<int64_t>{c.out})
    throw Error(npz.path() + ": '" + key + ".bias' has shape " + shape_string(b.shape) +
                ", expected (" + std::to_string(c.out) + ",) to match '" + key + ".weight' " +
                shape_string(w.shape));
  c.w = float_array(npz, key + ".weight");
  c.b = float_array(npz, key + ".bias");
  return c;
}

void expect_conv(const Npz& npz, const Conv& c, int in, int kh, int kw, int out = -1) {
  const bool ok = c.in == in && c.kh == kh && c.kw == kw && (out < 0 || c.out == out);
  if (!ok)
    throw Error(npz.path() + ": '" + c.key + ".weight' has " + std::to_string(c.in) + " -> " +
                std::to_string(c.out) + " channels and a " + std::to_string(c.kh) + "x" +
                std::to_string(c.kw) + " kernel, expected " + std::to_string(in) + " -> " +
                (out < 0 ? std::string("any") : std::to_string(out)) + " channels and " +
                std::to_string(kh) + "x" + std::to_string(kw));
}

struct Act {  // C x H x W
  int c = 0, h = 0, w = 0;
  std::vector<float> v;
};

// Cross-correlation (PyTorch/TF conv2d), explicit padding before (pt, pl), output oh x ow.
Act conv2d(const Act& x, const Conv& k, int stride, int pt, int pl, int oh, int ow) {
  Act y{k.out, oh, ow, std::vector<float>(static_cast<size_t>(k.out) * oh * ow)};
  for (int o = 0; o < k.out; ++o)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        double acc = k.b[o];
        for (int c = 0; c < k.in; ++c) {
          const float* wk = k.w.data() + (static_cast<size_t>(o) * k.in + c) * k.kh * k.kw;
          const float* xc = x.v.data() + static_cast<size_t>(c) * x.h * x.w;
          for (int ky = 0; ky < k.kh; ++ky) {
            const int iy = oy * stride - pt + ky;
            if (iy < 0 || iy >= x.h) continue;
            for (int kx = 0; kx < k.kw; ++kx) {
              const int ix = ox * stride - pl + kx;
              if (ix < 0 || ix >= x.w) continue;
              acc += static_cast<double>(wk[ky * k.kw + kx]) * xc[iy * x.w + ix];
            }
          }
        }
        y.v[(static_cast<size_t>(o) * oh + oy) * ow + ox] = static_cast<float>(acc);
      }
  return y;
}

// TensorFlow 'SAME' padding: out = ceil(in / s), the extra row/column goes after.
Act conv2d_same(const Act& x, const Conv& k, int stride) {
  const int oh = (x.h + stride - 1) / stride, ow = (x.w + stride - 1) / stride;
  const int ph = std::max((oh - 1) * stride + k.kh - x.h, 0);
  const int pw = std::max((ow - 1) * stride + k.kw - x.w, 0);
  return conv2d(x, k, stride, ph / 2, pw / 2, oh, ow);
}

// PyTorch ConvTranspose2d (weight in, out, kh, kw): y[o, iy*s - p + ky, ix*s - p + kx] +=
// x[c, iy, ix] * w[c, o, ky, kx].
Act conv_transpose2d(const Act& x, const Conv& k, int stride, int pad) {
  const int oh = (x.h - 1) * stride - 2 * pad + k.kh, ow = (x.w - 1) * stride - 2 * pad + k.kw;
  std::vector<double> acc(static_cast<size_t>(k.out) * oh * ow);
  for (int o = 0; o < k.out; ++o)
    std::fill(acc.begin() + static_cast<size_t>(o) * oh * ow, acc.begin() + static_cast<size_t>(o + 1) * oh * ow,
              static_cast<double>(k.b[o]));
  for (int c = 0; c < k.in; ++c)
    for (int iy = 0; iy < x.h; ++iy)
      for (int ix = 0; ix < x.w; ++ix) {
        const double xv = x.v[(static_cast<size_t>(c) * x.h + iy) * x.w + ix];
        if (xv == 0.0) continue;
        for (int o = 0; o < k.out; ++o) {
          const float* wk = k.w.data() + (static_cast<size_t>(c) * k.out + o) * k.kh * k.kw;
          double* yo = acc.data() + static_cast<size_t>(o) * oh * ow;
          for (int ky = 0; ky < k.kh; ++ky) {
            const int y = iy * stride - pad + ky;
            if (y < 0 || y >= oh) continue;
            for (int kx = 0; kx < k.kw; ++kx) {
              const int xx = ix * stride - pad + kx;
              if (xx < 0 || xx >= ow) continue;
              yo[y * ow + xx] += xv * wk[ky * k.kw + kx];
            }
          }
        }
      }
  Act y{k.out, oh, ow, std::vector<float>(acc.size())};
  for (size_t i = 0; i < acc.size(); ++i) y.v[i] = static_cast<float>(acc[i]);
  return y;
}

void relu(Act& x) {
  for (float& v : x.v) v = std::max(v, 0.0f);
}

ResBlock read_resblock(const Npz& npz, const std::string& key, int channels, bool decoder) {
  ResBlock r{read_conv(npz, key + ".0", false), read_conv(npz, key + ".2", false),
             read_conv(npz, key + ".4", false)};
  if (decoder) {  // flax Conv 3x3 padding 1, 3x3 padding 1, 1x1 padding 0
    expect_conv(npz, r.c0, channels, 3, 3);
    expect_conv(npz, r.c1, r.c0.out, 3, 3);
    expect_conv(npz, r.c2, r.c1.out, 1, 1, channels);
  } else {  // TF 'SAME', stride 1: any odd kernel keeps the size
    for (const Conv* c : {&r.c0, &r.c1, &r.c2})
      if (c->kh % 2 == 0 || c->kw % 2 == 0)
        throw Error(npz.path() + ": '" + c->key + ".weight' has an even " + std::to_string(c->kh) +
                    "x" + std::to_string(c->kw) + " kernel, expected an odd one");
    expect_conv(npz, r.c0, channels, r.c0.kh, r.c0.kw);
    expect_conv(npz, r.c1, r.c0.out, r.c1.kh, r.c1.kw);
    expect_conv(npz, r.c2, r.c1.out, r.c2.kh, r.c2.kw, channels);
  }
  return r;
}

Act apply_resblock(const Act& x, const ResBlock& r, bool decoder) {
  Act h;
  if (decoder) {
    h = conv2d(x, r.c0, 1, 1, 1, x.h, x.w);
    relu(h);
    h = conv2d(h, r.c1, 1, 1, 1, x.h, x.w);
    relu(h);
    h = conv2d(h, r.c2, 1, 0, 0, x.h, x.w);
  } else {
    h = conv2d_same(x, r.c0, 1);
    relu(h);
    h = conv2d_same(h, r.c1, 1);
    relu(h);
    h = conv2d_same(h, r.c2, 1);
  }
  for (size_t i = 0; i < h.v.size(); ++i) h.v[i] += x.v[i];
  return h;
}

}  // namespace

MaskCodec MaskCodec::load(const std::string& npz_path) {
  const Npz npz = Npz::read(npz_path);
  MaskCodec m;
  m.path_ = npz_path;

  const std::string ekey = "_vq_vae._embedding";
  const NpyArray& e = npz.get(ekey);
  if (e.shape.size() != 2 || e.shape[0] <= 0 || e.shape[1] <= 0)
    throw Error(npz_path + ": '" + ekey + "' has shape " + shape_string(e.shape) +
                ", expected (K, D) with K, D > 0");
  m.K_ = static_cast<int>(e.shape[0]);
  m.D_ = static_cast<int>(e.shape[1]);
  m.embedding_ = float_array(npz, ekey);

  m.dec_in_ = read_conv(npz, "decoder.0", false);
  expect_conv(npz, m.dec_in_, m.D_, 1, 1);
  int ch = m.dec_in_.out;
  for (const char* k : {"decoder.2.net", "decoder.3.net"}) m.dec_res_.push_back(read_resblock(npz, k, ch, true));
  for (const char* k : {"decoder.4", "decoder.6", "decoder.8", "decoder.10"}) {
    Conv c = read_conv(npz, k, true);
    expect_conv(npz, c, ch, 4, 4);
    ch = c.out;
    m.dec_up_.push_back(std::move(c));
  }
  m.dec_out_ = read_conv(npz, "decoder.12", false);
  expect_conv(npz, m.dec_out_, ch, 1, 1, 1);

  bool any_encoder = false;
  for (const std::string& k : npz.keys()) any_encoder |= k.rfind("encoder.", 0) == 0;
  if (any_encoder) {
    ch = 1;
    for (const char* k : {"encoder.0", "encoder.2", "encoder.4", "encoder.6"}) {
      Conv c = read_conv(npz, k, false);
      expect_conv(npz, c, ch, c.kh, c.kw);
      ch = c.out;
      m.enc_down_.push_back(std::move(c));
    }
    for (const char* k : {"encoder.8.net", "encoder.9.net"}) m.enc_res_.push_back(read_resblock(npz, k, ch, false));
    m.enc_out_ = read_conv(npz, "encoder.10", false);
    expect_conv(npz, m.enc_out_, ch, m.enc_out_.kh, m.enc_out_.kw, m.D_);
  }
  return m;
}

std::vector<float> MaskCodec::decode_logits(const std::array<int, 16>& codes) const {
  Act x{D_, 4, 4, std::vector<float>(static_cast<size_t>(D_) * 16)};
  for (int i = 0; i < 16; ++i) {
    if (codes[i] < 0 || codes[i] >= K_)
      throw Error("mask decoder (" + path_ + "): code " + std::to_string(codes[i]) + " at position " +
                  std::to_string(i) + " is outside [0, " + std::to_string(K_) + ")");
    const float* emb = embedding_.data() + static_cast<size_t>(codes[i]) * D_;
    for (int d = 0; d < D_; ++d) x.v[static_cast<size_t>(d) * 16 + i] = emb[d];  // cell i = (i / 4, i % 4)
  }
  x = conv2d(x, dec_in_, 1, 0, 0, 4, 4);
  relu(x);
  for (const ResBlock& r : dec_res_) x = apply_resblock(x, r, true);
  for (const Conv& c : dec_up_) {
    x = conv_transpose2d(x, c, 2, c.kh - 1 - 2);
    relu(x);
  }
  x = conv2d(x, dec_out_, 1, 0, 0, x.h, x.w);
  return x.v;  // 1 x 64 x 64
}

std::array<int, 16> MaskCodec::encode(const std::vector<float>& mask64) const {
  if (!has_encoder())
    throw Error("mask encoder: " + path_ + " has no encoder weights (encoder.*)");
  if (mask64.size() != 64 * 64)
    throw Error("mask encoder: expected a 64x64 = 4096 mask, got " + std::to_string(mask64.size()) + " values");
  Act x{1, 64, 64, std::vector<float>(mask64.size())};
  for (size_t i = 0; i < mask64.size(); ++i) {
    if (!std::isfinite(mask64[i]))
      throw Error("mask encoder: mask value at index " + std::to_string(i) + " is not finite");
    x.v[i] = 2.0f * (mask64[i] - 0.5f);
  }
  for (const Conv& c : enc_down_) {
    x = conv2d_same(x, c, 2);
    relu(x);
  }
  for (const ResBlock& r : enc_res_) x = apply_resblock(x, r, false);
  x = conv2d_same(x, enc_out_, 1);
  if (x.h * x.w != 16)
    throw Error("mask encoder (" + path_ + "): the encoder output is " + std::to_string(x.h) + "x" +
                std::to_string(x.w) + ", expected 4x4");
  std::array<int, 16> codes{};
  for (int i = 0; i < 16; ++i) {
    double best = std::numeric_limits<double>::infinity();
    int best_k = 0;
    for (int k = 0; k < K_; ++k) {
      const float* emb = embedding_.data() + static_cast<size_t>(k) * D_;
      double d2 = 0.0;
      for (int d = 0; d < D_; ++d) {
        const double diff = static_cast<double>(x.v[static_cast<size_t>(d) * 16 + i]) - emb[d];
        d2 += diff * diff;
      }
      if (d2 < best) {
        best = d2;
        best_k = k;
      }
    }
    codes[i] = best_k;
  }
  return codes;
}

}  // namespace pg
