#pragma once
// Turning (images, prompt) requests into answers: image encoding, prompt prefill, and
// greedy / sampled / beam-search decoding with per-token log-probabilities.
#include <cstdint>
#include <string>
#include <vector>

#include "paligemma/model.h"

namespace pg {

enum class DecodingMode { Greedy, Sample, Beam };

struct GenerationOptions {
  DecodingMode mode = DecodingMode::Greedy;
  int max_new_tokens = 64;
  // Sampling (mode Sample), applied in transformers' order: temperature, top-k, top-p.
  // Unlike transformers' generate, top_k is off unless set (transformers defaults to 50),
  // temperature 0 means greedy, and top-k keeps exactly k ids (ties broken by lower id).
  float temperature = 1.0f;
  int top_k = 0;       // 0: off
  float top_p = 1.0f;  // 1: off
  uint64_t seed = 0;   // request i of a batch samples with seed + i
  // Beam search (mode Beam): sum of log-probs, no length normalisation (as big_vision;
  // transformers' default length_penalty is 1). At most 64 beams.
  int num_beams = 4;
  bool stop_at_eos = true;
  bool keep_step_logits = false;  // keep the logits of every step (for --dump)
  int max_context = 0;            // 0: text_config.max_position_embeddings
  int batch_size = 8;             // requests decoded together (each holds a KV cache)
};

struct Request {
  std::vector<std::vector<float>> pixels;  // one [3, S, S] CHW array per image
  std::string prompt;                      // the prefix, e.g. "caption en"
};

struct Timings {
  double image_encode_s = 0;
  double prefill_s = 0;
  double decode_s = 0;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  int images_encoded = 0;    // images run through the vision tower
  int images_from_cache = 0; // images whose features came from the model's ImageFeatureCache
};

struct Result {
  std::vector<int> prompt_ids;
  std::vector<int> tokens;      // generated ids, including <eos> when it stopped there
  std::vector<float> logprobs;  // log p(token | context) under the model, one per token
  float score = 0;              // sum of logprobs
  std::string text;             // decoded answer (special tokens dropped, <loc>/<seg> kept)
  std::string stop_reason;      // "eos", "max_new_tokens" or "context"
  std::vector<float> image_features;  // [images * tokens_per_image, hidden]
  std::vector<float> step_logits;     // [tokens, vocab] when keep_step_logits
  Timings timings;                    // of the whole batch this request ran in
};

// Runs a batch of requests. Throws pg::Error for bad requests (empty prompt, wrong image
// size, prompt longer than the context) before any work is done.
std::vector<Result> generate(const Model& model, const std::vector<Request>& requests,
                             const GenerationOptions& options);

// Token choice helpers, exposed for tests.
int argmax(const float* logits, int n);
// log_softmax(logits)[index], in double precision.
float log_prob(const float* logits, int n, int index);

}  // namespace pg
