#pragma once
// Choosing the next token from a row of logits.
#include <cstdint>
#include <vector>

namespace pg {

// SplitMix64-seeded xoshiro256**: the same stream on every platform and standard library
// (std::mt19937 is, but std::*_distribution are not).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1) with 53 random bits

 private:
  uint64_t s_[4];
};

// The id of the largest logit; the first one on ties, as torch.argmax.
int argmax(const float* logits, int n);

// log_softmax of a row, in double precision, as floats.
void log_softmax(const float* logits, int n, std::vector<float>& out);

// Samples an id: logits / temperature, keep the top_k largest (0: all), then the smallest
// set of most likely ids whose probability reaches top_p (transformers' TopPLogitsWarper
// keeps at least one). temperature <= 0 means greedy.
int sample_token(const float* logits, int n, float temperature, int top_k, float top_p, Rng& rng);

}  // namespace pg
