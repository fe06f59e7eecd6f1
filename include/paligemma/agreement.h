#pragma once
// How closely one model's next-token distributions follow another's (a quantised checkpoint
// against its source, one kernel path against another): top-1 agreement and
// KL(p_reference || p_other) over the whole vocabulary, in double.
#include <string>
#include <vector>

#include "paligemma/model.h"

namespace pg {

struct DistributionAgreement {
  int positions = 0;
  int top1_agree = 0;
  double kl_sum = 0, max_kl = 0;

  // One position: two rows of V logits.
  void add(const float* reference_logits, const float* other_logits, int V);
  // Another set of positions.
  void merge(const DistributionAgreement& other);
  double mean_kl() const { return positions ? kl_sum / positions : 0.0; }
  double top1_rate() const { return positions ? static_cast<double>(top1_agree) / positions : 0.0; }
};

// Teacher-forced comparison on one request: `reference` answers greedily (new_tokens steps,
// past <eos>); then both models score the same sequence (prompt + that answer) and their
// distributions are compared at every answer position (the prediction after the prompt and
// after each answer token). Both models must share the tokenizer and vocabulary.
DistributionAgreement compare_models(const Model& reference, const Model& other, const std::vector<float>& pixels,
                                     const std::string& prompt, int new_tokens);

}  // namespace pg
