#pragma once
// A Hugging Face model directory's weights: `model.safetensors`, or the shards named by
// `model.safetensors.index.json`. Files are memory-mapped; tensors are views into the
// mappings, never copies. Names are normalised to one canonical layout (the original
// PaliGemma one) so the model code does not care which transformers version wrote them:
//   model.language_model.X   -> language_model.model.X
//   model.vision_tower.X     -> vision_tower.X
//   model.multi_modal_projector.X -> multi_modal_projector.X
//   lm_head.X                -> language_model.lm_head.X
//   vision_tower.X (X not under vision_model.) -> vision_tower.vision_model.X  (transformers 5.x)
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "paligemma/tensor.h"

namespace pg {

class MappedFile;  // RAII read-only mmap, defined in src/io/mapped_file.h

// Maps a tensor name of either layout to the canonical one.
std::string canonical_tensor_name(const std::string& stored_name);

class Checkpoint {
 public:
  // Throws pg::Error naming the directory/file/tensor when anything is missing, truncated
  // or inconsistent (header longer than the file, offsets outside the data, size not equal
  // to numel * dtype size, unknown dtype, duplicate tensor across shards, ...).
  static Checkpoint open(const std::string& model_dir);

  bool has(const std::string& canonical_name) const;
  // Throws "checkpoint DIR has no tensor NAME" when absent.
  const TensorView& get(const std::string& canonical_name) const;
  // As get(), and also checks the shape: throws "tensor NAME in FILE has shape [a, b] but
  // config.json implies [c, d]".
  const TensorView& get(const std::string& canonical_name,
                        const std::vector<int64_t>& expected_shape) const;

  std::vector<std::string> names() const;  // canonical names, sorted
  const std::string& file_of(const std::string& canonical_name) const;
  // The name as the file spells it (e.g. "model.language_model.norm.weight").
  const std::string& stored_name_of(const std::string& canonical_name) const;
  const std::string& dir() const { return dir_; }
  size_t total_bytes() const;  // sum of tensor bytes
  size_t file_count() const { return files_.size(); }
  // MappedFile::populate on every file (the files in parallel).
  void populate() const;

  // This checkpoint with some tensors replaced by views into the caller's memory (e.g. the
  // trainer's current weights, evaluated without writing them out). Each replacement names a
  // tensor of this checkpoint by its canonical name and has its shape; the dtype may differ
  // (a trainer's f32 copy of a bf16 tensor). The caller's memory must outlive the result, and
  // so share the mapped files. Throws pg::Error for an unknown name or another shape.
  Checkpoint with_tensors(const std::vector<TensorView>& replacements) const;

 private:
  std::string dir_;
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::vector<std::string> file_paths_;
  struct Entry {
    TensorView view;  // view.name is the canonical name
    size_t file_index;
    std::string stored_name;
  };
  std::unordered_map<std::string, Entry> tensors_;
};

}  // namespace pg
