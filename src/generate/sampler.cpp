#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/random.h"
#include "paligemma/generate.h"

namespace pg {

namespace {
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64_next(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int argmax(const float* logits, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;  // first maximum wins, as torch.argmax
  return best;
}

namespace {
// log(sum(exp(logits))) in double, shifted by the maximum.
double log_sum_exp(const float* logits, int n) {
  const double mx = logits[argmax(logits, n)];
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return mx + std::log(sum);
}
}  // namespace

float log_prob(const float* logits, int n, int index) {
  return static_cast<float>(logits[index] - log_sum_exp(logits, n));
}

void log_softmax(const float* logits, int n, std::vector<float>& out) {
  out.resize(n);
  const double lse = log_sum_exp(logits, n);
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - lse);
}

int sample_token(const float* logits, int n, float temperature, int top_k, float top_p, Rng& rng) {
  if (temperature <= 0.0f) return argmax(logits, n);
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  // Highest first; ties by lower id so the order is total and reproducible.
  auto by_logit = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  int keep = (top_k > 0 && top_k < n) ? top_k : n;
  if (keep < n) {
    std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_logit);
    order.resize(keep);
  } else {
    std::sort(order.begin(), order.end(), by_logit);
  }
  std::vector<double> p(order.size());
  const double mx = logits[order[0]] / static_cast<double>(temperature);
  double sum = 0.0;
  for (size_t i = 0; i < order.size(); ++i) {
    p[i] = std::exp(logits[order[i]] / static_cast<double>(temperature) - mx);
    sum += p[i];
  }
  for (auto& v : p) v /= sum;
  if (top_p < 1.0f) {
    double cum = 0.0;
    size_t cut = order.size();
    for (size_t i = 0; i < order.size(); ++i) {
      cum += p[i];
      if (cum >= top_p) {
        cut = i + 1;
        break;
      }
    }
    order.resize(cut);
    p.resize(cut);
    double s = std::accumulate(p.begin(), p.end(), 0.0);
    for (auto& v : p) v /= s;
  }
  double u = rng.uniform();
  for (size_t i = 0; i < p.size(); ++i) {
    if (u < p[i]) return order[i];
    u -= p[i];
  }
  return order.back();
}

}  // namespace pg
