// The trainer's float attention (per-head GEMMs, src/train/layers.cpp) against the definition
// written out as plain loops in double: the outputs o, the saved probabilities p (exact zeros
// outside the mask) and the gradients dq, dk, dv, which the backward adds into. Shapes with GQA,
// rows not a multiple of any GEMM block, with and without a soft-cap, every mask kind, and the
// null-gradient cases; one shape is large enough to take the threaded path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "train/layers.h"

namespace {

using pg::kernels::AttentionMask;
using pg::kernels::AttentionShape;

struct Case {
  std::string name;
  int heads, kv_heads, head_dim, rows;
  float softcap;
  AttentionMask mask;
};

// The reference: every (head, query) row on its own, in double.
struct Reference {
  std::vector<double> o, p, capd, dq, dk, dv;
};

Reference reference_attention(const Case& c, const AttentionShape& shape, const std::vector<float>& q,
                              const std::vector<float>& k, const std::vector<float>& v,
                              const std::vector<float>& dout) {
  const int H = c.heads, KVH = c.kv_heads, D = c.head_dim, T = c.rows, qs = H * D, ks = KVH * D;
  Reference r;
  r.o.assign(static_cast<size_t>(T) * qs, 0.0);
  r.dq.assign(r.o.size(), 0.0);
  r.dk.assign(static_cast<size_t>(T) * ks, 0.0);
  r.dv.assign(r.dk.size(), 0.0);
  r.p.assign(static_cast<size_t>(H) * T * T, 0.0);
  r.capd.assign(r.p.size(), 0.0);
  for (int h = 0; h < H; ++h) {
    const int g = h / (H / KVH);
    for (int t = 0; t < T; ++t) {
      int first, last;
      pg::kernels::attention_key_range(t, T, c.mask, &first, &last);
      if (last <= first) continue;
      double* p = r.p.data() + (static_cast<size_t>(h) * T + t) * T;
      double* capd = r.capd.data() + (static_cast<size_t>(h) * T + t) * T;
      double mx = -INFINITY;
      for (int j = first; j < last; ++j) {
        double s = 0;
        for (int d = 0; d < D; ++d) s += static_cast<double>(q[t * qs + h * D + d]) * k[j * ks + g * D + d];
        s *= shape.scale;
        if (c.softcap > 0) {
          const double th = std::tanh(s / c.softcap);
          s = c.softcap * th;
          capd[j] = 1 - th * th;
        }
        p[j] = s;
        mx = std::max(mx, s);
      }
      double sum = 0;
      for (int j = first; j < last; ++j) sum += (p[j] = std::exp(p[j] - mx));
      for (int j = first; j < last; ++j) p[j] /= sum;
      // Forward o = p v; backward dp = do . v, ds = p (dp - sum p dp), through the cap, scaled.
      double pdp = 0;
      std::vector<double> dp(T, 0.0);
      for (int j = first; j < last; ++j) {
        for (int d = 0; d < D; ++d) {
          r.o[t * qs + h * D + d] += p[j] * v[j * ks + g * D + d];
          dp[j] += static_cast<double>(dout[t * qs + h * D + d]) * v[j * ks + g * D + d];
          r.dv[j * ks + g * D + d] += p[j] * dout[t * qs + h * D + d];
        }
        pdp += p[j] * dp[j];
      }
      for (int j = first; j < last; ++j) {
        double ds = p[j] * (dp[j] - pdp);
        if (c.softcap > 0) ds *= capd[j];
        ds *= shape.scale;
        for (int d = 0; d < D; ++d) {
          r.dq[t * qs + h * D + d] += ds * k[j * ks + g * D + d];
          r.dk[j * ks + g * D + d] += ds * q[t * qs + h * D + d];
        }
      }
    }
  }
  return r;
}

// Float rounding only: a relative bound on values of order 1, an absolute one near zero.
void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size() && reported < 5; ++i)
    if (!(std::fabs(got[i] - want[i]) <= 2e-5 * (1 + std::fabs(want[i])))) {
      ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", want " << want[i];
      ++reported;
    }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (float cap : {0.0f, 2.0f}) {
    const std::string capped = cap > 0 ? " soft-cap" : "";
    out.push_back({"bidirectional GQA" + capped, 4, 2, 16, 37, cap, {false, 0, 0}});
    out.push_back({"causal GQA" + capped, 4, 2, 16, 37, cap, {true, 0, 0}});
    out.push_back({"prefix-LM GQA" + capped, 4, 2, 16, 37, cap, {true, 13, 0}});
    out.push_back({"sliding window GQA" + capped, 4, 2, 16, 37, cap, {true, 0, 5}});
    out.push_back({"sliding window + prefix GQA" + capped, 4, 2, 16, 37, cap, {true, 9, 4}});
    // 4 * 101^2 * 32 multiply-adds: above the threading threshold.
    out.push_back({"prefix-LM GQA threaded" + capped, 4, 2, 32, 101, cap, {true, 40, 0}});
  }
  out.push_back({"MQA prefix-LM soft-cap, one row", 4, 1, 8, 1, 3.0f, {true, 1, 0}});
  return out;
}

TEST(TrainAttention, GemmPathMatchesPlainLoops) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto rnd = [&](size_t n) {
    std::vector<float> x(n);
    for (float& e : x) e = nd(rng);
    return x;
  };
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    AttentionShape shape;
    shape.num_heads = c.heads;
    shape.num_kv_heads = c.kv_heads;
    shape.head_dim = c.head_dim;
    // Larger than 1 / sqrt(D) so the scores reach the soft-cap's curved part.
    shape.scale = 2.0f / std::sqrt(static_cast<float>(c.head_dim));
    shape.softcap = c.softcap;
    const size_t qn = static_cast<size_t>(c.rows) * c.heads * c.head_dim;
    const size_t kn = static_cast<size_t>(c.rows) * c.kv_heads * c.head_dim;
    const std::vector<float> q = rnd(qn), k = rnd(kn), v = rnd(kn), dout = rnd(qn);
    const Reference ref = reference_attention(c, shape, q, k, v, dout);

    std::vector<float> o(qn, 123.0f);  // the forward overwrites o
    pg::train::AttentionSaved<float> saved;
    pg::train::attention_forward(q.data(), k.data(), v.data(), c.rows, shape, c.mask, o.data(), &saved);
    expect_close("o", o, ref.o);
    expect_close("p", saved.p, ref.p);
    for (size_t i = 0; i < ref.p.size(); ++i)
      if (ref.p[i] == 0.0) ASSERT_EQ(saved.p[i], 0.0f) << "p outside the mask at " << i;
    if (c.softcap > 0) expect_close("capd", saved.capd, ref.capd);

    // The backward adds: start from non-zero gradients; a null one is skipped.
    struct Wanted {
      bool dq, dk, dv;
    };
    for (const Wanted w : {Wanted{true, true, true}, Wanted{false, true, true}, Wanted{true, false, true},
                           Wanted{true, true, false}, Wanted{false, false, true}}) {
      SCOPED_TRACE(std::string("dq ") + (w.dq ? "on" : "null") + ", dk " + (w.dk ? "on" : "null") + ", dv " +
                   (w.dv ? "on" : "null"));
      std::vector<float> dq(qn, 0.5f), dk(kn, -0.25f), dv(kn, 1.0f);
      pg::train::attention_backward(dout.data(), q.data(), k.data(), v.data(), c.rows, shape, c.mask, saved,
                                    w.dq ? dq.data() : nullptr, w.dk ? dk.data() : nullptr, w.dv ? dv.data() : nullptr);
      auto start_plus = [](double start, std::vector<double> x) {
        for (double& e : x) e += start;
        return x;
      };
      // A null gradient's buffer stays as it was.
      expect_close("dq", dq, w.dq ? start_plus(0.5, ref.dq) : std::vector<double>(qn, 0.5));
      expect_close("dk", dk, w.dk ? start_plus(-0.25, ref.dk) : std::vector<double>(kn, -0.25));
      expect_close("dv", dv, w.dv ? start_plus(1.0, ref.dv) : std::vector<double>(kn, 1.0));
    }
  }
}

}  // namespace
