#pragma once
// Training data: JSONL lines {"image": PATH or [PATHS], "prefix": TEXT, "suffix": TEXT}
// (optionally "mask": PATH, a ground-truth mask PNG for evaluation, nonzero inside)
// (big_vision's and Roboflow's export format; image paths relative to the JSONL file), and
// their conversion into token sequences exactly as transformers' PaliGemmaProcessor builds
// them with a suffix: <image> x N, <bos>, prefix + "\n", suffix tokens, <eos>.
#include <cstdint>
#include <map>
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

// The order of the examples in epoch e: a Fisher-Yates shuffle driven by mt19937_64 (the
// same on every platform, unlike std::shuffle), seeded by (seed, epoch), so a resumed run
// sees exactly the batches it would have seen; 0 .. n-1 in order without `shuffle`. Shared
// by the fine-tuning and contrastive-pretraining loops.
std::vector<int> epoch_order(int n, uint64_t seed, int64_t epoch, bool shuffle = true);

// The resized image preprocess_image normalises (it skips the resize only for PIL bicubic at
// the model's size already): normalize_image(model_sized(x, size, f), f) ==
// preprocess_image(x, size, f), with a quarter of the memory in between.
Image model_sized(const Image& image, int size, ResizeFilter filter);

// A training set held compactly: each distinct image once (by path, and by content), already resized to the model's
// size as 8-bit RGB (a quarter of its f32 pixels, and shared by all the examples of that image: a world image has about
// five), and each example's tokens (build_sequence). example(i) builds the TrainExample with exactly the pixels
// preprocess_image gives (normalize_image is its last step), while 20k world images at 224 px take 3 GB instead of 60
// as f32 per example.
class ExampleStore {
 public:
  ExampleStore(const ModelConfig& config, ResizeFilter filter, int max_tokens)
      : image_size_(config.vision.image_size), filter_(filter), max_tokens_(max_tokens) {}
  // Adds the record (false, with the drop counted, when it does not fit max_tokens).
  bool add(const DatasetRecord& record, const Tokenizer& tokenizer, const ModelConfig& config, TruncationStats* stats);
  size_t size() const { return items_.size(); }
  size_t image_count() const { return images_.size(); }
  TrainExample example(size_t i) const;

 private:
  struct Item {
    std::vector<int> ids;
    int prefix_len = 0;
    std::vector<int> images;  // indices into images_
  };
  int image_size_;
  ResizeFilter filter_;
  int max_tokens_;
  std::vector<Image> images_;
  std::map<std::string, int> image_index_;  // path -> images_ index (each file decoded once)
  // Hash of the resized pixels -> images_ indices: the same picture under two file names (the
  // world's segment splits draw the same scenes as the other splits) is kept once too.
  std::multimap<uint64_t, int> content_index_;
  std::vector<Item> items_;
};

}  // namespace pg::train
