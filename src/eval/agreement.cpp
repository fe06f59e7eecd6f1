#include "paligemma/agreement.h"

#include <algorithm>
#include <cmath>

#include "paligemma/error.h"
#include "paligemma/generate.h"

namespace pg {
namespace {

void log_softmax(const float* x, int V, std::vector<double>& out) {
  double m = -INFINITY;
  for (int i = 0; i < V; ++i) m = std::max(m, static_cast<double>(x[i]));
  double s = 0;
  for (int i = 0; i < V; ++i) s += std::exp(static_cast<double>(x[i]) - m);
  const double lse = m + std::log(s);
  out.resize(V);
  for (int i = 0; i < V; ++i) out[i] = static_cast<double>(x[i]) - lse;
}

// Logits at every position of `ids` (the prompt block bidirectional, the rest causal).
std::vector<float> score(const Model& m, const std::vector<int>& ids, int prompt_len, const std::vector<float>& pixels) {
  auto features = m.encode_image_cached(pixels);
  const int T = static_cast<int>(ids.size());
  KVCache cache = m.new_cache(T, prompt_len);
  std::vector<float> logits(static_cast<size_t>(T) * m.vocab_size());
  std::vector<DecoderStep> steps(1);
  steps[0] = {&cache, ids.data(), T, features->data(), m.config().image_tokens_per_image(), logits.data(), true};
  m.decode(steps);
  return logits;
}

}  // namespace

void DistributionAgreement::add(const float* r, const float* x, int V) {
  std::vector<double> lp, lq;
  log_softmax(r, V, lp);
  log_softmax(x, V, lq);
  double kl = 0;
  for (int i = 0; i < V; ++i) kl += std::exp(lp[i]) * (lp[i] - lq[i]);
  positions += 1;
  top1_agree += (std::max_element(r, r + V) - r) == (std::max_element(x, x + V) - x);
  kl_sum += kl;
  max_kl = std::max(max_kl, kl);
}

void DistributionAgreement::merge(const DistributionAgreement& o) {
  positions += o.positions;
  top1_agree += o.top1_agree;
  kl_sum += o.kl_sum;
  max_kl = std::max(max_kl, o.max_kl);
}

DistributionAgreement compare_models(const Model& reference, const Model& other, const std::vector<float>& pixels,
                                     const std::string& prompt, int new_tokens) {
  if (reference.vocab_size() != other.vocab_size())
    throw Error("cannot compare models with vocabularies of " + std::to_string(reference.vocab_size()) + " and " +
                std::to_string(other.vocab_size()) + " tokens");
  if (new_tokens < 1) throw Error("compare needs at least one new token");
  GenerationOptions o;
  o.max_new_tokens = new_tokens;
  o.stop_at_eos = false;
  Result answer = generate(reference, {Request{{pixels}, prompt}}, o)[0];
  std::vector<int> ids = answer.prompt_ids;
  const int L = static_cast<int>(ids.size());
  // The last answer token's own prediction is not needed: score prompt + answer[:-1].
  ids.insert(ids.end(), answer.tokens.begin(), answer.tokens.end() - 1);
  const std::vector<float> ref = score(reference, ids, L, pixels);
  const std::vector<float> oth = score(other, ids, L, pixels);
  const int V = reference.vocab_size();
  DistributionAgreement a;
  for (int p = L - 1; p < static_cast<int>(ids.size()); ++p)
    a.add(ref.data() + static_cast<size_t>(p) * V, oth.data() + static_cast<size_t>(p) * V, V);
  return a;
}

}  // namespace pg
