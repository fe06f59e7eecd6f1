// The attention kernels (every kernel path this CPU supports, forced in turn) against a naive
// double-precision attention written here, on random data: bidirectional, causal, sliding
// window, prefix block, decode, GQA 1/2/8, soft-cap on/off, head_dim 16/72/256, f32 and bf16
// K/V, lengths that are not multiples of the block sizes, rows that see no key.
//
// Tolerance: max |out - ref| <= 2e-5 * max |ref| for every path and both K/V dtypes in the f32
// mode (the reference widens the same bf16 values, so bf16 storage adds no error of its own
// here). The AMX tile of the bf16 mode is checked against the reference on bf16-rounded
// q, k, v with a per-element bound on the probabilities' rounding (amx_tol below).
// Cache rows past kv_len hold NaN: any read of them shows up in the finite check.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/attention_impl.h"
#include "paligemma/backend.h"
#include "paligemma/tensor.h"

namespace pg::kernels {
namespace {

constexpr double kRelTol = 2e-5;

struct Case {
  const char* name;
  int heads, kv_heads, head_dim;
  int T, q_begin, kv_len;
  bool causal = false;
  int prefix = 0, window = 0;
  float softcap = 0.0f;
  float q_scale = 1.0f;   // query magnitude (larger: peakier softmax)
  int stride_pad = 0;     // cache capacity beyond kv_len
  int check_every = 1;    // compare every n-th query row (and the last)
  bool run_reference_path = true;
};

// The mask rules restated per (query, key) pair, independently of attention_key_range.
bool visible(int q, int k, int kv_len, const Case& c) {
  if (k >= kv_len) return false;
  if (c.prefix > 0 && q < c.prefix && k < c.prefix) return true;
  if (!c.causal) return true;
  if (k > q) return false;
  return c.window <= 0 || q - k < c.window;
}

std::vector<KernelPath> supported_paths() {
  std::vector<KernelPath> paths;
  for (KernelPath p : {KernelPath::Reference, KernelPath::Avx2, KernelPath::Avx512, KernelPath::Amx})
    if (kernel_path_supported(p)) paths.push_back(p);
  return paths;
}

struct PathGuard {
  KernelPath saved = kernel_path();
  Precision saved_precision = precision();
  ~PathGuard() {
    set_kernel_path(saved);
    set_precision(saved_precision);
    attn::set_amx_min_rows_for_testing(16);
  }
};

bool amx_supported() { return kernel_path_supported(KernelPath::Amx) && bf16_supported(KernelPath::Amx); }

float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// Deliberately wrong variants of the algorithm, to show the AMX tolerance rejects them.
enum class Mutation { None, NoScale, MaskOffByOne, NoSoftcap };

// Double-precision attention on the given (already rounded, where the kernel rounds) operands,
// for the query rows `rows`: ref [rows][H * D], and abs_ref = sum_j p_j |v_j| per element (the
// scale of the error the bf16 rounding of the probabilities can make, see AmxTolerance).
void yardstick(const Case& c, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
               int stride, const std::vector<int>& rows, Mutation mut, std::vector<double>* ref,
               std::vector<double>* abs_ref) {
  const int H = c.heads, D = c.head_dim, r = H / c.kv_heads;
  const double scale = mut == Mutation::NoScale ? 1.0 : 1.0 / std::sqrt(static_cast<double>(static_cast<float>(D)));
  const double cap = mut == Mutation::NoSoftcap ? 0.0 : c.softcap;
  ref->assign(rows.size() * H * D, 0.0);
  abs_ref->assign(rows.size() * H * D, 0.0);
  std::vector<double> s(std::max(c.kv_len, 1));
  for (size_t ri = 0; ri < rows.size(); ++ri) {
    const int t = rows[ri], qp = c.q_begin + t;
    for (int h = 0; h < H; ++h) {
      const int g = h / r;
      const float* qv = q.data() + (static_cast<size_t>(t) * H + h) * D;
      double mx = -INFINITY;
      for (int j = 0; j < c.kv_len; ++j) {
        s[j] = -INFINITY;
        const bool vis = mut == Mutation::MaskOffByOne ? visible(qp + 1, j, c.kv_len, c) : visible(qp, j, c.kv_len, c);
        if (!vis) continue;
        const float* kr = k.data() + (static_cast<size_t>(g) * stride + j) * D;
        double acc = 0.0;
        for (int d = 0; d < D; ++d) acc += static_cast<double>(qv[d]) * kr[d];
        acc *= scale;
        if (cap > 0.0) acc = cap * std::tanh(acc / cap);
        s[j] = acc;
        mx = std::max(mx, acc);
      }
      if (mx == -INFINITY) continue;
      double sum = 0.0;
      for (int j = 0; j < c.kv_len; ++j) sum += s[j] == -INFINITY ? 0.0 : std::exp(s[j] - mx);
      double* o = ref->data() + (ri * H + h) * D;
      double* a = abs_ref->data() + (ri * H + h) * D;
      for (int j = 0; j < c.kv_len; ++j) {
        if (s[j] == -INFINITY) continue;
        const double p = std::exp(s[j] - mx) / sum;
        const float* vr = v.data() + (static_cast<size_t>(g) * stride + j) * D;
        for (int d = 0; d < D; ++d) {
          o[d] += p * vr[d];
          a[d] += p * std::abs(vr[d]);
        }
      }
    }
  }
}

// AMX tolerance, per output element (i, d), against the yardstick on the SAME bf16-rounded
// q, k, v the kernel multiplies:
//   |out - ref| <= (2^-8 + 3e-4) * sum_j p_ij |v_jd| + 1e-6.
// Why: the kernel's only rounding beyond the operands is P -> bf16 before P V. bf16 keeps 8
// significant bits, so round to nearest even makes each p~_ij = p_ij (1 + e), |e| <= 2^-8
// (reached just below a power of two, e.g. p ~ 0.998), and the sum l is taken over the
// unrounded f32 p, so out - ref = sum_j (p~_ij - p_ij) v_jd / l has |.| <= 2^-8 sum_j pi_ij |v_jd|
// (pi the normalised probabilities): a bound, not an estimate. The 3e-4 covers the f32 parts
// (the tile products' f32 accumulation over up to 4096 keys, n * 2^-24 = 2.4e-4 worst case, the
// scores' f32 error entering e^s, the vector exp / tanh at ~1e-7), the 1e-6 outputs near zero.
// A wrong kernel breaks it by orders of magnitude (AmxToleranceRejectsWrongKernels).
double amx_tol(double abs_ref) { return (std::ldexp(1.0, -8) + 3e-4) * abs_ref + 1e-6; }

void run_case(const Case& c) {
  const int H = c.heads, KVH = c.kv_heads, D = c.head_dim, T = c.T, r = H / KVH;
  const int stride = c.kv_len + c.stride_pad;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  std::mt19937 rng(1234 + T * 7 + D * 131 + H);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(T) * H * D);
  for (float& x : q) x = nd(rng) * c.q_scale;
  const size_t kv_size = static_cast<size_t>(KVH) * stride * D;
  std::vector<float> k(kv_size), v(kv_size);
  for (int g = 0; g < KVH; ++g)
    for (int j = 0; j < stride; ++j)
      for (int d = 0; d < D; ++d) {
        const size_t i = (static_cast<size_t>(g) * stride + j) * D + d;
        const bool valid = j < c.kv_len;
        k[i] = valid ? nd(rng) : std::numeric_limits<float>::quiet_NaN();
        v[i] = valid ? nd(rng) : std::numeric_limits<float>::quiet_NaN();
      }

  AttentionShape shape;
  shape.num_heads = H;
  shape.num_kv_heads = KVH;
  shape.head_dim = D;
  shape.scale = scale;
  shape.softcap = c.softcap;
  AttentionMask mask;
  mask.causal = c.causal;
  mask.prefix_len = c.prefix;
  mask.window = c.window;

  PathGuard guard;
  for (DType dtype : {DType::F32, DType::BF16}) {
    // bf16 storage: round once; the reference sees the widened values.
    std::vector<uint16_t> k16(kv_size), v16(kv_size);
    std::vector<float> kw = k, vw = v;
    if (dtype == DType::BF16)
      for (size_t i = 0; i < kv_size; ++i) {
        k16[i] = f32_to_bf16(k[i]);
        v16[i] = f32_to_bf16(v[i]);
        kw[i] = bf16_to_f32(k16[i]);
        vw[i] = bf16_to_f32(v16[i]);
      }

    // Double-precision reference on the checked rows.
    std::vector<int> rows;
    for (int t = 0; t < T; ++t)
      if (t % c.check_every == 0 || t == T - 1) rows.push_back(t);
    std::vector<double> ref(rows.size() * H * D, 0.0);
    double max_ref = 0.0;
    std::vector<double> s(std::max(c.kv_len, 1));
    for (size_t ri = 0; ri < rows.size(); ++ri) {
      const int t = rows[ri], qp = c.q_begin + t;
      for (int h = 0; h < H; ++h) {
        const int g = h / r;
        const float* qv = q.data() + (static_cast<size_t>(t) * H + h) * D;
        double mx = -INFINITY;
        for (int j = 0; j < c.kv_len; ++j) {
          s[j] = -INFINITY;
          if (!visible(qp, j, c.kv_len, c)) continue;
          const float* kr = kw.data() + (static_cast<size_t>(g) * stride + j) * D;
          double acc = 0.0;
          for (int d = 0; d < D; ++d) acc += static_cast<double>(qv[d]) * kr[d];
          acc *= scale;
          if (c.softcap > 0.0f) acc = c.softcap * std::tanh(acc / c.softcap);
          s[j] = acc;
          mx = std::max(mx, acc);
        }
        if (mx == -INFINITY) continue;  // no visible key: zeros
        double sum = 0.0;
        for (int j = 0; j < c.kv_len; ++j) sum += s[j] == -INFINITY ? 0.0 : std::exp(s[j] - mx);
        double* o = ref.data() + (ri * H + h) * D;
        for (int j = 0; j < c.kv_len; ++j) {
          if (s[j] == -INFINITY) continue;
          const double p = std::exp(s[j] - mx) / sum;
          const float* vr = vw.data() + (static_cast<size_t>(g) * stride + j) * D;
          for (int d = 0; d < D; ++d) o[d] += p * vr[d];
        }
        for (int d = 0; d < D; ++d) max_ref = std::max(max_ref, std::abs(o[d]));
      }
    }

    KVView kv;
    kv.k = dtype == DType::BF16 ? static_cast<const void*>(k16.data()) : k.data();
    kv.v = dtype == DType::BF16 ? static_cast<const void*>(v16.data()) : v.data();
    kv.dtype = dtype;
    kv.stride = stride;
    for (KernelPath path : supported_paths()) {
      if (path == KernelPath::Reference && !c.run_reference_path) continue;
      SCOPED_TRACE(std::string(c.name) + " path=" + kernel_path_name(path) + " kv=" + dtype_name(dtype));
      set_kernel_path(path);
      set_precision(Precision::F32);  // f32 attention (the AMX tile is the bf16 mode's, below)
      std::vector<float> out(q.size(), std::numeric_limits<float>::quiet_NaN());  // every entry must be written
      attention(q.data(), T, c.q_begin, kv, c.kv_len, shape, mask, out.data());
      int non_finite = 0;
      for (float x : out) non_finite += !std::isfinite(x);
      EXPECT_EQ(non_finite, 0);
      double max_err = 0.0;
      for (size_t ri = 0; ri < rows.size(); ++ri)
        for (int i = 0; i < H * D; ++i)
          max_err = std::max(max_err, std::abs(out[static_cast<size_t>(rows[ri]) * H * D + i] -
                                               ref[ri * H * D + i]));
      if (max_ref == 0.0)
        EXPECT_EQ(max_err, 0.0) << "rows without keys must be exactly zero";
      else
        EXPECT_LE(max_err, kRelTol * max_ref) << "max |ref| " << max_ref;
    }

    // The AMX tile (bf16 mode), forced for every row count (min_rows 1), and at the default
    // dispatch (min_rows 16) where that picks it (fewer rows take the f32 tile, checked above).
    if (!amx_supported()) continue;
    std::vector<float> q16(q.size()), k16w(kv_size), v16w(kv_size);
    for (size_t i = 0; i < q.size(); ++i) q16[i] = round_bf16(q[i]);
    for (size_t i = 0; i < kv_size; ++i) {  // NaN past kv_len stays NaN (never read)
      k16w[i] = round_bf16(kw[i]);
      v16w[i] = round_bf16(vw[i]);
    }
    std::vector<double> ref16, abs16;
    yardstick(c, q16, k16w, v16w, stride, rows, Mutation::None, &ref16, &abs16);
    for (int min_rows : {1, 16}) {
      if (T < min_rows) continue;
      SCOPED_TRACE(std::string(c.name) + " amx bf16 kv=" + dtype_name(dtype) + " min_rows=" + std::to_string(min_rows));
      set_kernel_path(KernelPath::Amx);
      set_precision(Precision::BF16);
      attn::set_amx_min_rows_for_testing(min_rows);
      std::vector<float> out(q.size(), std::numeric_limits<float>::quiet_NaN());
      attention(q.data(), T, c.q_begin, kv, c.kv_len, shape, mask, out.data());
      int non_finite = 0;
      for (float x : out) non_finite += !std::isfinite(x);
      EXPECT_EQ(non_finite, 0);
      double worst = 0.0;  // max |err| / tol
      int bad = 0;
      for (size_t ri = 0; ri < rows.size(); ++ri)
        for (int i = 0; i < H * D; ++i) {
          const size_t e = ri * H * D + i;
          const double err = std::abs(out[static_cast<size_t>(rows[ri]) * H * D + i] - ref16[e]);
          if (abs16[e] == 0.0) {
            bad += err != 0.0;  // rows without keys: exactly zero
            continue;
          }
          worst = std::max(worst, err / amx_tol(abs16[e]));
          bad += err > amx_tol(abs16[e]);
        }
      EXPECT_EQ(bad, 0) << "max |err| / tol " << worst;
    }
    attn::set_amx_min_rows_for_testing(16);
  }
}

// {name, heads, kv_heads, head_dim, T, q_begin, kv_len, causal, prefix, window, softcap, q_scale,
//  stride_pad, check_every, run_reference_path}
const Case kCases[] = {
    {"bidir_d16_t1", 2, 2, 16, 1, 0, 1},
    {"bidir_d16_t7", 2, 2, 16, 7, 0, 7, false, 0, 0, 0.0f, 1.0f, 3},
    {"bidir_gqa2_d72_t33", 4, 2, 72, 33, 0, 33},
    {"bidir_gqa8_d256_t33", 8, 1, 256, 33, 0, 33},
    {"bidir_d72_t300_peaky", 2, 2, 72, 300, 0, 300, false, 0, 0, 0.0f, 3.0f},
    {"causal_gqa2_d16_t300", 4, 2, 16, 300, 0, 300, true},
    {"causal_gqa8_d72_t33", 8, 1, 72, 33, 0, 33, true},
    {"causal_window_d16_t300", 2, 2, 16, 300, 0, 300, true, 0, 40},
    {"causal_prefix_window_softcap_d72_t300", 4, 2, 72, 300, 0, 300, true, 50, 40, 5.0f, 3.0f, 5},
    {"causal_prefix_softcap50_gqa2_d256_t260", 8, 4, 256, 260, 0, 260, true, 256, 0, 50.0f, 8.0f, 0, 2},
    {"chunk_prefill_prefix_gqa2_d256", 8, 4, 256, 33, 267, 300, true, 256, 0, 50.0f, 8.0f, 20},
    {"chunk_prefill_gqa8_d256", 8, 1, 256, 7, 293, 300, true, 256},
    {"decode_gqa8_d256_kv300", 8, 1, 256, 1, 299, 300, true, 256, 0, 0.0f, 1.0f, 16},
    {"decode_gqa2_d256_kv300_softcap", 8, 4, 256, 1, 299, 300, true, 256, 0, 50.0f, 8.0f},
    {"decode_gqa2_d256_window", 8, 4, 256, 1, 299, 300, true, 20, 64, 50.0f, 2.0f},
    {"decode_d72_kv7", 2, 2, 72, 1, 6, 7, true},
    {"decode_gqa8_d256_kv1", 8, 1, 256, 1, 0, 1, true, 1},
    {"decode_gqa2_d16_kv33", 4, 2, 16, 1, 32, 33, true},
    {"decode_bidir_d72_kv300", 2, 2, 72, 1, 299, 300, false},
    {"empty_rows_window", 2, 2, 16, 12, 0, 5, true, 0, 3},
    {"empty_cache", 2, 2, 16, 3, 0, 0, false},
    {"long_bidir_d72_t4096", 2, 2, 72, 4096, 0, 4096, false, 0, 0, 0.0f, 1.0f, 0, 61, false},
};

class AttentionKernel : public testing::TestWithParam<Case> {};

TEST_P(AttentionKernel, MatchesDoubleReference) { run_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(AttentionCases, AttentionKernel, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

// The AMX tolerance must not be so loose that a wrong kernel passes: for each deliberate error
// (scores not scaled, the mask shifted by one key, the soft-cap left out), the wrong
// yardstick's output, taken as the kernel's, must break amx_tol on many elements.
TEST(AttentionKernelSetup, AmxToleranceRejectsWrongKernels) {
  const Case cases[] = {
      {"causal_prefix_softcap", 8, 4, 256, 40, 0, 40, true, 20, 0, 50.0f, 8.0f},
      {"bidir_d72_t300", 2, 2, 72, 300, 0, 300, false},
      {"causal_d72_t300", 2, 2, 72, 300, 0, 300, true},
  };
  for (const Case& c : cases) {
    const int H = c.heads, D = c.head_dim, stride = c.kv_len;
    std::mt19937 rng(99);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> q(static_cast<size_t>(c.T) * H * D), k(static_cast<size_t>(c.kv_heads) * stride * D),
        v(k.size());
    for (float& x : q) x = round_bf16(nd(rng) * c.q_scale);
    for (float& x : k) x = round_bf16(nd(rng));
    for (float& x : v) x = round_bf16(nd(rng));
    std::vector<int> rows(c.T);
    for (int t = 0; t < c.T; ++t) rows[t] = t;
    std::vector<double> ref, abs_ref, wrong, wrong_abs;
    yardstick(c, q, k, v, stride, rows, Mutation::None, &ref, &abs_ref);
    std::vector<Mutation> muts = {Mutation::NoScale};
    if (c.causal) muts.push_back(Mutation::MaskOffByOne);
    if (c.softcap > 0.0f) muts.push_back(Mutation::NoSoftcap);
    for (Mutation m : muts) {
      SCOPED_TRACE(std::string(c.name) + " mutation " + std::to_string(static_cast<int>(m)));
      yardstick(c, q, k, v, stride, rows, m, &wrong, &wrong_abs);
      size_t broken = 0;
      double worst = 0.0;
      for (size_t e = 0; e < ref.size(); ++e) {
        const double ratio = std::abs(wrong[e] - ref[e]) / amx_tol(abs_ref[e]);
        broken += ratio > 1.0;
        worst = std::max(worst, ratio);
      }
      EXPECT_GT(broken, ref.size() / 100) << "max |wrong - ref| / tol " << worst;
      EXPECT_GT(worst, 10.0);
    }
  }
}

TEST(AttentionKernelSetup, RejectsOtherKvDtypes) {
  AttentionShape shape;
  shape.num_heads = shape.num_kv_heads = 1;
  shape.head_dim = 4;
  AttentionMask mask;
  float q[4] = {}, out[4];
  uint16_t kv[4] = {};
  PathGuard guard;
  for (KernelPath path : supported_paths()) {
    set_kernel_path(path);
    EXPECT_ANY_THROW(attention(q, 1, 0, KVView{kv, kv, DType::F16, 1}, 1, shape, mask, out));
  }
}

TEST(AttentionKernelSetup, VectorExpAndTanhAccuracy) {
  std::vector<float> x;
  for (double a = -87.3; a <= 88.0; a += 0.0007) x.push_back(static_cast<float>(a));
  const int n = static_cast<int>(x.size());
  std::vector<float> e(n), th(n);
  using Fn = void (*)(const float*, float*, float*, int);
  std::vector<std::pair<const char*, Fn>> fns;
  if (kernel_path_supported(KernelPath::Avx2)) fns.push_back({"avx2", attn::vector_math_avx2});
  if (kernel_path_supported(KernelPath::Avx512)) fns.push_back({"avx512", attn::vector_math_avx512});
  for (const auto& [name, fn] : fns) {
    SCOPED_TRACE(name);
    fn(x.data(), e.data(), th.data(), n);
    double max_rel = 0.0, max_abs_tanh = 0.0;
    for (int i = 0; i < n; ++i) {
      const double ex = std::exp(static_cast<double>(x[i]));
      max_rel = std::max(max_rel, std::abs(e[i] - ex) / ex);
      max_abs_tanh = std::max(max_abs_tanh, std::abs(th[i] - std::tanh(static_cast<double>(x[i]))));
    }
    EXPECT_LT(max_rel, 2e-7);
    EXPECT_LT(max_abs_tanh, 2e-7);
    const float special[4] = {-INFINITY, -100.0f, 0.0f, 1000.0f};
    float se[4], st[4];
    fn(special, se, st, 4);
    EXPECT_EQ(se[0], 0.0f);
    EXPECT_EQ(se[1], 0.0f);
    EXPECT_EQ(se[2], 1.0f);
    EXPECT_TRUE(std::isfinite(se[3]));
    EXPECT_EQ(st[0], -1.0f);
    EXPECT_EQ(st[2], 0.0f);
    EXPECT_EQ(st[3], 1.0f);
  }
}

}  // namespace
}  // namespace pg::kernels
