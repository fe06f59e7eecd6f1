#pragma once
// What `paligemma info` reports: parameter counts per part, stored dtypes, and the memory a
// request will need (mapped weights + KV cache + peak activations), computed from the config.
#include <cstdint>
#include <map>
#include <string>

#include "paligemma/model.h"

namespace pg {

struct ParameterCounts {
  int64_t vision = 0, projector = 0, language = 0, other = 0;
  int64_t total() const { return vision + projector + language + other; }
  std::map<std::string, int64_t> by_dtype;  // "BF16" -> parameters stored as bf16
  int64_t weight_bytes = 0;
};

// Quantised matrices (docs/QUANTIZATION.md) count their logical parameters under "int8" /
// "q4" (q4 includes the zero padding of each row's last 32-block); their ".q_scale" tensors
// count only towards weight_bytes.
ParameterCounts count_parameters(const Checkpoint& checkpoint);

// How the big matrices are stored: "bf16", "int8", "q4", ... per group ("int8+bf16" when a
// group mixes formats; "" when it has none).
struct WeightFormats {
  std::string vision;     // SigLIP attention / MLP linears and the projector
  std::string text;       // decoder attention / MLP linears
  std::string embedding;  // token embedding and a stored lm_head
  int quantized_version = 0;  // quantization.json's version, 0 when there is none
  int64_t weight_bytes = 0;   // all tensor bytes (data + scales)
};

WeightFormats weight_formats(const Checkpoint& checkpoint);

struct MemoryEstimate {
  int64_t weight_bytes = 0;      // memory-mapped files (shared with the page cache)
  int64_t kv_cache_bytes = 0;    // keys and values (f32 or bf16) for every position of the request
  int64_t activation_bytes = 0;  // peak of the vision tower and the prefill
  int64_t total() const { return weight_bytes + kv_cache_bytes + activation_bytes; }
};

// For one request: `images` images, `text_tokens` prompt text tokens, `new_tokens` generated.
MemoryEstimate estimate_memory(const ModelConfig& config, int64_t weight_bytes, int images, int text_tokens,
                               int new_tokens, DType kv_cache = DType::F32);

}  // namespace pg
