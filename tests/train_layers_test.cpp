// Every backward in src/train/layers.h against central finite differences of its forward, in
// double (step 1e-5: truncation ~1e-10, rounding ~1e-11, so 1e-6 relative is a tight bound a
// wrong term cannot pass). The scalar checked is L = sum(g * f(inputs)) with a random g, so
// every output element's derivative is exercised. Also: each training forward equals the
// inference kernel (float) it mirrors, so the trainer differentiates the model we run.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/ops.h"
#include "test_util.h"
#include "train/layers.h"

namespace {

using Vec = std::vector<double>;
using pg::kernels::AttentionMask;
using pg::kernels::AttentionShape;

Vec random_vec(size_t n, std::mt19937& rng, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  Vec v(n);
  for (double& x : v) x = d(rng);
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks analytic[i] == d loss / d param[i] for every i by central differences.
void check_gradient(const std::string& what, Vec& param, const Vec& analytic, const std::function<double()>& loss) {
  ASSERT_EQ(param.size(), analytic.size()) << what;
  constexpr double h = 1e-5;
  for (size_t i = 0; i < param.size(); ++i) {
    const double saved = param[i];
    param[i] = saved + h;
    const double up = loss();
    param[i] = saved - h;
    const double down = loss();
    param[i] = saved;
    const double numeric = (up - down) / (2 * h);
    ASSERT_NEAR(analytic[i], numeric, 1e-6 * (std::fabs(numeric) + std::fabs(analytic[i])) + 1e-8)
        << what << "[" << i << "]";
  }
}

TEST(TrainLayers, LinearBackward) {
  std::mt19937 rng(1);
  const int M = 3, K = 5, N = 4;
  Vec x = random_vec(M * K, rng), w = random_vec(N * K, rng), b = random_vec(N, rng), g = random_vec(M * N, rng);
  auto loss = [&] {
    Vec y(M * N);
    pg::train::linear_forward(x.data(), M, K, w.data(), b.data(), N, y.data());
    return dot(g, y);
  };
  Vec dx(M * K, 0.5), dw(N * K, -0.25), db(N, 1.0);  // backward adds: start from non-zero
  pg::train::linear_backward(g.data(), x.data(), w.data(), M, K, N, dx.data(), dw.data(), db.data());
  for (double& v : dx) v -= 0.5;
  for (double& v : dw) v += 0.25;
  for (double& v : db) v -= 1.0;
  check_gradient("dx", x, dx, loss);
  check_gradient("dw", w, dw, loss);
  check_gradient("db", b, db, loss);
}

TEST(TrainLayers, LayerNormBackward) {
  std::mt19937 rng(2);
  const int rows = 3, n = 7;
  Vec x = random_vec(rows * n, rng, 2.0), w = random_vec(n, rng), b = random_vec(n, rng), g = random_vec(rows * n, rng);
  auto loss = [&] {
    Vec y(rows * n), mean(rows), rstd(rows);
    pg::train::layer_norm_forward(x.data(), rows, n, w.data(), b.data(), 1e-6, y.data(), mean.data(), rstd.data());
    return dot(g, y);
  };
  Vec y(rows * n), mean(rows), rstd(rows), dx(rows * n, 0.0), dw(n, 0.0), db(n, 0.0);
  pg::train::layer_norm_forward(x.data(), rows, n, w.data(), b.data(), 1e-6, y.data(), mean.data(), rstd.data());
  pg::train::layer_norm_backward(g.data(), x.data(), rows, n, w.data(), mean.data(), rstd.data(), dx.data(), dw.data(),
                                 db.data());
  check_gradient("dx", x, dx, loss);
  check_gradient("dw", w, dw, loss);
  check_gradient("db", b, db, loss);
}

TEST(TrainLayers, RmsNormBackward) {
  std::mt19937 rng(3);
  const int rows = 4, n = 6;
  Vec x = random_vec(rows * n, rng, 2.0), w = random_vec(n, rng, 0.3), g = random_vec(rows * n, rng);
  auto loss = [&] {
    Vec y(rows * n), rstd(rows);
    pg::train::rms_norm_forward(x.data(), rows, n, w.data(), 1e-6, y.data(), rstd.data());
    return dot(g, y);
  };
  Vec y(rows * n), rstd(rows), dx(rows * n, 0.0), dw(n, 0.0);
  pg::train::rms_norm_forward(x.data(), rows, n, w.data(), 1e-6, y.data(), rstd.data());
  pg::train::rms_norm_backward(g.data(), x.data(), rows, n, w.data(), rstd.data(), dx.data(), dw.data());
  check_gradient("dx", x, dx, loss);
  check_gradient("dw", w, dw, loss);
}

TEST(TrainLayers, GeluAndGegluBackward) {
  std::mt19937 rng(4);
  const int n = 40;
  for (bool exact : {false, true}) {
    Vec x = random_vec(n, rng, 2.0), up = random_vec(n, rng), g = random_vec(n, rng);
    auto gelu_loss = [&] {
      Vec y(n);
      if (exact)
        pg::train::gelu_erf_forward(x.data(), n, y.data());
      else
        pg::train::gelu_tanh_forward(x.data(), n, y.data());
      return dot(g, y);
    };
    Vec dx(n, 0.0);
    if (exact)
      pg::train::gelu_erf_backward(g.data(), x.data(), n, dx.data());
    else
      pg::train::gelu_tanh_backward(g.data(), x.data(), n, dx.data());
    check_gradient(exact ? "gelu_erf" : "gelu_tanh", x, dx, gelu_loss);

    auto geglu_loss = [&] {
      Vec h(n);
      pg::train::geglu_forward(x.data(), up.data(), n, exact, h.data());
      return dot(g, h);
    };
    Vec dgate(n, 0.0), dup(n, 0.0);
    pg::train::geglu_backward(g.data(), x.data(), up.data(), n, exact, dgate.data(), dup.data());
    check_gradient("geglu gate", x, dgate, geglu_loss);
    check_gradient("geglu up", up, dup, geglu_loss);
  }
}

TEST(TrainLayers, SoftCapBackward) {
  std::mt19937 rng(5);
  const int n = 30;
  const double cap = 3.0;
  Vec x = random_vec(n, rng, 4.0), g = random_vec(n, rng);
  auto loss = [&] {
    Vec y(n);
    pg::train::soft_cap_forward(x.data(), n, cap, y.data());
    return dot(g, y);
  };
  Vec y(n), dx(n, 0.0);
  pg::train::soft_cap_forward(x.data(), n, cap, y.data());
  pg::train::soft_cap_backward(g.data(), y.data(), n, cap, dx.data());
  check_gradient("soft_cap", x, dx, loss);
}

TEST(TrainLayers, RopeBackward) {
  std::mt19937 rng(6);
  const int rows = 5, heads = 3, D = 8;
  std::vector<float> cf(rows * D / 2), sf(rows * D / 2);
  for (int r = 0; r < rows; ++r)
    pg::kernels::rope_angles(r + 1, D, 10000.0f, cf.data() + r * D / 2, sf.data() + r * D / 2);
  const Vec c(cf.begin(), cf.end()), s(sf.begin(), sf.end());
  Vec x = random_vec(rows * heads * D, rng), g = random_vec(x.size(), rng);
  auto loss = [&] {
    Vec y = x;
    pg::train::rope_forward(y.data(), rows, heads, D, c.data(), s.data());
    return dot(g, y);
  };
  Vec dx = g;
  pg::train::rope_backward(dx.data(), rows, heads, D, c.data(), s.data());
  check_gradient("rope", x, dx, loss);
}

struct AttentionCase {
  const char* name;
  int heads, kv_heads, head_dim, rows;
  float softcap;
  AttentionMask mask;
};

TEST(TrainLayers, AttentionBackward) {
  const AttentionCase cases[] = {
      {"bidirectional MHA", 2, 2, 4, 5, 0.0f, {false, 0, 0}},
      {"causal GQA", 4, 2, 4, 6, 0.0f, {true, 0, 0}},
      {"prefix-LM MQA soft-cap", 4, 1, 4, 7, 2.0f, {true, 3, 0}},
      {"sliding window + prefix, soft-cap", 2, 1, 6, 7, 1.5f, {true, 2, 3}},
  };
  std::mt19937 rng(7);
  for (const AttentionCase& c : cases) {
    AttentionShape shape;
    shape.num_heads = c.heads;
    shape.num_kv_heads = c.kv_heads;
    shape.head_dim = c.head_dim;
    shape.scale = 0.7f;
    shape.softcap = c.softcap;
    const int T = c.rows, qn = T * c.heads * c.head_dim, kn = T * c.kv_heads * c.head_dim;
    Vec q = random_vec(qn, rng), k = random_vec(kn, rng), v = random_vec(kn, rng), g = random_vec(qn, rng);
    auto loss = [&] {
      Vec o(qn);
      pg::train::AttentionSaved<double> saved;
      pg::train::attention_forward(q.data(), k.data(), v.data(), T, shape, c.mask, o.data(), &saved);
      return dot(g, o);
    };
    Vec o(qn), dq(qn, 0.0), dk(kn, 0.0), dv(kn, 0.0);
    pg::train::AttentionSaved<double> saved;
    pg::train::attention_forward(q.data(), k.data(), v.data(), T, shape, c.mask, o.data(), &saved);
    pg::train::attention_backward(g.data(), q.data(), k.data(), v.data(), T, shape, c.mask, saved, dq.data(), dk.data(),
                                  dv.data());
    check_gradient(std::string(c.name) + " dq", q, dq, loss);
    check_gradient(std::string(c.name) + " dk", k, dk, loss);
    check_gradient(std::string(c.name) + " dv", v, dv, loss);
  }
}

TEST(TrainLayers, CrossEntropyBackwardAndValues) {
  std::mt19937 rng(8);
  const int rows = 4, V = 11;
  const std::vector<int> targets = {3, -1, 0, 10};
  const Vec weight = {0.5, 0.0, 0.25, 0.25};
  for (double eps : {0.0, 0.1}) {
    Vec z = random_vec(rows * V, rng, 2.0);
    auto loss = [&] {
      return pg::train::cross_entropy<double>(z.data(), rows, V, targets.data(), weight.data(), eps, nullptr);
    };
    Vec dz(rows * V);
    const double l = pg::train::cross_entropy<double>(z.data(), rows, V, targets.data(), weight.data(), eps, dz.data());
    EXPECT_DOUBLE_EQ(l, loss());
    check_gradient("dlogits eps=" + std::to_string(eps), z, dz, loss);
    for (int i = 0; i < V; ++i) EXPECT_EQ(dz[V + i], 0.0) << "a row without a target has no gradient";
  }
  // Uniform logits: -log(1 / V) whatever the smoothing; weights sum the rows.
  Vec z(rows * V, 1.5);
  EXPECT_NEAR(pg::train::cross_entropy<double>(z.data(), rows, V, targets.data(), weight.data(), 0.1, nullptr),
              std::log(V), 1e-12);
  // A confident right answer: loss -> 0 without smoothing, > 0 with it.
  Vec sharp(V, 0.0);
  sharp[4] = 40.0;
  const int t4 = 4;
  const double one = 1.0;
  EXPECT_LT(pg::train::cross_entropy<double>(sharp.data(), 1, V, &t4, &one, 0.0, nullptr), 1e-12);
  EXPECT_GT(pg::train::cross_entropy<double>(sharp.data(), 1, V, &t4, &one, 0.1, nullptr), 1.0);
}

// The training forwards compute what the inference kernels compute.
TEST(TrainLayers, ForwardsMatchInferenceKernels) {
  std::mt19937 rng(9);
  std::normal_distribution<float> d(0.0f, 1.0f);
  auto rnd = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  };
  const int rows = 5, n = 24;
  std::vector<float> x = rnd(rows * n), w = rnd(n), b = rnd(n), y(rows * n), mean(rows), rstd(rows);
  pg::train::layer_norm_forward(x.data(), rows, n, w.data(), b.data(), 1e-6f, y.data(), mean.data(), rstd.data());
  std::vector<float> ref = x;
  pg::kernels::layer_norm(ref.data(), rows, n, w.data(), b.data(), 1e-6f);
  for (int i = 0; i < rows * n; ++i) EXPECT_NEAR(y[i], ref[i], 1e-5f) << "layer_norm " << i;

  pg::train::rms_norm_forward(x.data(), rows, n, w.data(), 1e-6f, y.data(), rstd.data());
  pg::kernels::rms_norm(x.data(), ref.data(), rows, n, w.data(), 1e-6f);
  for (int i = 0; i < rows * n; ++i) EXPECT_NEAR(y[i], ref[i], 1e-5f) << "rms_norm " << i;

  pg::train::gelu_tanh_forward(x.data(), x.size(), y.data());
  ref = x;
  pg::kernels::gelu_tanh(ref.data(), ref.size());
  for (int i = 0; i < rows * n; ++i) EXPECT_NEAR(y[i], ref[i], 1e-5f) << "gelu_tanh " << i;

  AttentionShape shape;
  shape.num_heads = 4;
  shape.num_kv_heads = 2;
  shape.head_dim = 8;
  shape.scale = 0.35f;
  shape.softcap = 5.0f;
  AttentionMask mask{true, 3, 0};
  const int T = 9;
  std::vector<float> q = rnd(T * 32), k = rnd(T * 16), v = rnd(T * 16), o(T * 32), o_ref(T * 32);
  pg::train::AttentionSaved<float> saved;
  pg::train::attention_forward(q.data(), k.data(), v.data(), T, shape, mask, o.data(), &saved);
  pg::kernels::KVView kv;
  // The kernels take K/V as [kv_heads][stride][D]; training rows are [T][kv_heads * D].
  std::vector<float> kh(T * 16), vh(T * 16);
  for (int t = 0; t < T; ++t)
    for (int g = 0; g < 2; ++g)
      for (int e = 0; e < 8; ++e) {
        kh[(g * T + t) * 8 + e] = k[t * 16 + g * 8 + e];
        vh[(g * T + t) * 8 + e] = v[t * 16 + g * 8 + e];
      }
  kv.k = kh.data();
  kv.v = vh.data();
  kv.dtype = pg::DType::F32;
  kv.stride = T;
  pg::kernels::attention_reference(q.data(), T, 0, kv, T, shape, mask, o_ref.data());
  for (int i = 0; i < T * 32; ++i) EXPECT_NEAR(o[i], o_ref[i], 1e-5f) << "attention " << i;
}

}  // namespace

namespace {

TEST(TrainLayers, DropoutMaskAndBackward) {
  const std::vector<uint8_t> keep = pg::train::dropout_mask(100000, 0.25f, 42);
  int kept = 0;
  for (uint8_t k : keep) kept += k;
  EXPECT_NEAR(kept / 100000.0, 0.75, 0.01);
  EXPECT_EQ(pg::train::dropout_mask(1000, 0.25f, 42), pg::train::dropout_mask(1000, 0.25f, 42)) << "reproducible";
  EXPECT_NE(pg::train::dropout_mask(1000, 0.25f, 42), pg::train::dropout_mask(1000, 0.25f, 43));
  for (uint8_t k : pg::train::dropout_mask(100, 0.0f, 1)) EXPECT_EQ(k, 1);
  // y = x * keep / (1 - p) is linear: its backward is the same product, checked by differences.
  std::mt19937 rng(10);
  const std::vector<uint8_t> m = pg::train::dropout_mask(20, 0.5f, 3);
  Vec x = random_vec(20, rng), g = random_vec(20, rng);
  auto loss = [&] {
    Vec y = x;
    pg::train::apply_dropout(y.data(), m, 0.5f);
    return dot(g, y);
  };
  Vec dx = g;
  pg::train::apply_dropout(dx.data(), m, 0.5f);
  check_gradient("dropout", x, dx, loss);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(dx[i], m[i] ? 2 * g[i] : 0.0);
}

}  // namespace

// SigLIP's sigmoid contrastive loss: the loss and every gradient against PyTorch float64
// autograd of the paper's formula (tools/golden/make_siglip_loss_golden.py), in double and
// in float, and by central differences; a zero embedding is an error.
TEST(TrainLayers, SigmoidContrastiveLoss) {
  std::ifstream in(pg::test::fixture("siglip_loss/golden.json"));
  ASSERT_TRUE(in) << "missing tests/fixtures/siglip_loss/golden.json";
  const nlohmann::json golden = nlohmann::json::parse(in);
  ASSERT_EQ(golden["cases"].size(), 3u);
  for (const auto& c : golden["cases"]) {
    const int n = c["n"], dim = c["dim"];
    Vec img = c["img"].get<Vec>(), txt = c["txt"].get<Vec>();
    double tp = c["t_prime"], b = c["b"];
    Vec di(img.size(), 0.0), dt(txt.size(), 0.0);
    double dtp = 0, db = 0;
    const double loss =
        pg::train::sigmoid_contrastive_loss(img.data(), txt.data(), n, dim, tp, b, di.data(), dt.data(), &dtp, &db);
    EXPECT_NEAR(loss, c["loss"].get<double>(), 1e-12 * std::fabs(c["loss"].get<double>()) + 1e-14);
    const Vec want_i = c["d_img"].get<Vec>(), want_t = c["d_txt"].get<Vec>();
    for (size_t i = 0; i < di.size(); ++i) ASSERT_NEAR(di[i], want_i[i], 1e-12) << "d img " << i;
    for (size_t i = 0; i < dt.size(); ++i) ASSERT_NEAR(dt[i], want_t[i], 1e-12) << "d txt " << i;
    EXPECT_NEAR(dtp, c["d_t_prime"].get<double>(), 1e-12);
    EXPECT_NEAR(db, c["d_b"].get<double>(), 1e-12);
    // Float: the same to float rounding.
    std::vector<float> fi(img.begin(), img.end()), ft(txt.begin(), txt.end()), gfi(img.size()), gft(txt.size());
    float ftp = 0, fdb = 0;
    const double floss = pg::train::sigmoid_contrastive_loss(fi.data(), ft.data(), n, dim, static_cast<float>(tp),
                                                             static_cast<float>(b), gfi.data(), gft.data(), &ftp, &fdb);
    EXPECT_NEAR(floss, loss, 1e-5 * std::fabs(loss));
    for (size_t i = 0; i < di.size(); ++i) ASSERT_NEAR(gfi[i], want_i[i], 1e-5) << "float d img " << i;
    // Central differences of the same function (double).
    auto f = [&] { return pg::train::sigmoid_contrastive_loss<double>(img.data(), txt.data(), n, dim, tp, b, nullptr,
                                                                       nullptr, nullptr, nullptr); };
    check_gradient("siglip d img", img, di, f);
    check_gradient("siglip d txt", txt, dt, f);
    Vec tpv{tp}, bv{b};
    auto ft2 = [&] { return pg::train::sigmoid_contrastive_loss<double>(img.data(), txt.data(), n, dim, tpv[0], bv[0],
                                                                         nullptr, nullptr, nullptr, nullptr); };
    check_gradient("siglip d t'", tpv, Vec{dtp}, ft2);
    check_gradient("siglip d b", bv, Vec{db}, ft2);
  }
  Vec zero(4 * 3, 0.0), one(4 * 3, 1.0);
  EXPECT_NE(pg::test::error_of([&] {
              pg::train::sigmoid_contrastive_loss<double>(zero.data(), one.data(), 4, 3, 0.0, 0.0, nullptr, nullptr,
                                                          nullptr, nullptr);
            }).find("all zeros"),
            std::string::npos);
}
