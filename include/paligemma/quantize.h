#pragma once
// `paligemma quantize`: rewrites a checkpoint with its big matrices in int8 or q4, in the
// versioned, memory-mappable format of docs/QUANTIZATION.md, which Model::load reads
// directly. The writer streams: the output is never held in memory (a 10B model quantised to
// int8 is ~10 GB; 28B in q4 ~16 GB), only a bounded buffer of quantised rows.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace pg {

inline constexpr const char* kQuantizedFormatName = "paligemma.cpp-quantized";
inline constexpr int kQuantizedFormatVersion = 1;
// Suffix of the scale tensor that accompanies every quantised matrix NAME.
inline constexpr const char* kQuantScaleSuffix = ".q_scale";

enum class QuantType {
  Keep,  // leave the matrix in its stored float dtype ("bf16" / "keep" on the command line)
  Int8,  // symmetric per row, f32 scale per row
  Q4     // 32-element blocks, f16 scale per block
};

// "int8", "q4", "keep" (for Keep; "bf16", "f16", "f32", "none" and "keep" all parse to it).
const char* quant_type_name(QuantType type);
// Throws pg::Error naming `what` (e.g. "--type") for anything else.
QuantType parse_quant_type(const std::string& text, const std::string& what);

struct QuantizeOptions {
  QuantType text = QuantType::Int8;       // decoder attention / MLP linears
  QuantType vision = QuantType::Int8;     // SigLIP attention / MLP linears and the projector
  QuantType embedding = QuantType::Int8;  // token embedding (= tied output layer) and lm_head
  bool force = false;                     // allow writing into a non-empty output directory
  uint64_t max_shard_bytes = 4000000000ull;  // data bytes per safetensors shard (HF's 4 GB)
  int threads = 0;                        // OpenMP threads for quantising rows (0: all)
  uint64_t buffer_bytes = 64ull << 20;    // f32 rows converted at once (bounds the memory)
};

struct QuantizeProgress {
  size_t tensor_index = 0;  // 1-based index of the tensor being written
  size_t tensor_count = 0;
  std::string tensor;       // its name
  uint64_t bytes_done = 0;  // output data bytes written so far
  uint64_t bytes_total = 0;
  double seconds = 0;       // since the start of writing
  bool finished = false;    // last call
};
using QuantizeProgressFn = std::function<void(const QuantizeProgress&)>;

struct QuantizeSummary {
  std::string out_dir;
  int shards = 0;
  uint64_t total_bytes = 0;                 // tensor bytes written (data + scales)
  uint64_t source_bytes = 0;                // tensor bytes in the source
  std::map<std::string, int64_t> tensors;   // "int8" / "q4" / "BF16" ... -> tensor count
  std::map<std::string, uint64_t> bytes;    // same keys -> bytes (quantised: data + scales)
  double seconds = 0;
};

// Quantises the checkpoint in `src_dir` (config.json, *.safetensors, tokenizer.model) into
// `out_dir`. Throws pg::Error for: an unreadable source, a source that is already quantised,
// an existing non-empty `out_dir` (unless options.force), an unwritable directory, a full
// disk or any failed write. Files are written under temporary names and renamed at the end;
// quantization.json, written last, marks a complete output.
QuantizeSummary quantize_checkpoint(const std::string& src_dir, const std::string& out_dir,
                                    const QuantizeOptions& options,
                                    const QuantizeProgressFn& progress = {});

// The contents of a model directory's quantization.json.
struct QuantizationManifest {
  std::string path;
  int version = 0;
  std::string text, vision, embedding;  // quant_type_name of each group
  std::string source;
};

// Reads MODEL_DIR/quantization.json: nullopt when there is none; throws pg::Error naming the
// file when it is not valid JSON, has another "format", or a version this build does not
// know ("unsupported quantization.json version 7 ... (this build reads version 1)").
std::optional<QuantizationManifest> read_quantization_manifest(const std::string& model_dir);

}  // namespace pg
