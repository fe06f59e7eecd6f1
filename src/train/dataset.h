#pragma once
// Training data: JSONL lines {"image": PATH or [PATHS], "prefix": TEXT, "suffix": TEXT}
// (optionally "mask": PATH, a ground-truth mask PNG for evaluation, nonzero inside)
// (big_vision's and Roboflow's export format; image paths relative to the JSONL file), and
// their conversion into token sequences exactly as transformers' PaliGemmaProcessor builds
// them with a suffix: <image> x N, <bos>, prefix + "\n", suffix tokens, <eos>.
#include <string>
#include <vector>

#include "paligemma/config.h"
#include "paligemma/image.h"
#include "paligemma/tokenizer.h"
#include "train/paligemma_grad.h"

namespace pg::train {

struct DatasetRecord {
  std::vector<std::string> images;  // resolved paths
  std::string prefix, suffix;
  std::string mask;  // optional "mask": a ground-truth mask PNG (resolved path), empty when absent
  int line = 0;  // 1-based line in the file
};

struct BadLine {
  int line = 0;
  std::string reason;
};

struct Dataset {
  std::string path;
  std::vector<DatasetRecord> records;
  std::vector<BadLine> skipped;  // lines left out (only with skip_bad_lines)
};

// Reads a JSONL file. A malformed line (not JSON, a missing or non-string field, an image
// or mask file that does not exist) throws pg::Error "FILE:LINE: reason", or with skip_bad_lines is
// recorded in `skipped` and left out. Blank lines are ignored. Throws when no record is left.
Dataset load_jsonl(const std::string& path, bool skip_bad_lines);

// What happened to over-long sequences, for the run's report.
struct TruncationStats {
  int truncated = 0;  // suffix cut to fit max_tokens (its <eos> then is lost too)
  int dropped = 0;    // the prompt alone did not fit: example left out
};

// Token ids and the prefix length for one record (no image decoding). With max_tokens > 0,
// a longer sequence keeps its whole prompt and as much of the suffix as fits; returns false
// (and counts a drop) when not even one suffix token fits.
bool build_sequence(const Tokenizer& tokenizer, const ModelConfig& config, const std::string& prefix,
                    const std::string& suffix, int num_images, int max_tokens, TrainExample* example,
                    TruncationStats* stats);

// The full example: images decoded and preprocessed for the model, then build_sequence.
bool make_example(const DatasetRecord& record, const Tokenizer& tokenizer, const ModelConfig& config,
                  ResizeFilter filter, int max_tokens, TrainExample* example, TruncationStats* stats);

}  // namespace pg::train
