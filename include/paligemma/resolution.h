#pragma once
// Changing a checkpoint's image resolution: PaliGemma's stage 2 ("high-res finetuning") starts
// from the stage-1 weights with the vision tower's position embeddings resampled to the new
// patch grid. Everything else (patch embedding, layers, projector, decoder) is resolution free.
//
// The resampling is big_vision's `resample_posemb` (big_vision/models/vit.py): the [N, D]
// table as a sqrt(N) x sqrt(N) grid, zoomed with scipy.ndimage.zoom(order=1) to the new side:
// linear interpolation with the corners aligned (grid_mode=False), output pixel o of a side
// sampling the input at o * (old - 1) / (new - 1), in double, rounded to the stored dtype.
#include <string>
#include <vector>

namespace pg {

// `grid` is old_side * old_side rows of `dim` values (row-major, the patch order); returns
// new_side * new_side rows. Throws pg::Error for a size mismatch or a side < 1.
std::vector<float> resample_position_embedding(const std::vector<float>& grid, int old_side, int new_side, int dim);

struct ResolutionOptions {
  int image_size = 0;  // the new vision_config.image_size, a multiple of patch_size
  bool quiet = true;   // false: progress lines on stderr
};

// Writes `out_dir` as `model_dir` at the new resolution: config.json with
// vision_config.image_size (and every num_image_tokens field it carries) updated, one
// model.safetensors with every tensor as stored (names and dtypes kept) except the position
// embedding, resampled; preprocessor_config.json / processor_config.json, when present, with
// their size / image_seq_length updated; the directory's other files (tokenizer.model, the
// VQ-VAE npz, ...) copied. `out_dir` must not exist or be empty. Throws pg::Error naming the
// problem (unreadable model, quantised checkpoint, size not a multiple of the patch size, ...);
// on error nothing is left in out_dir.
void change_resolution(const std::string& model_dir, const std::string& out_dir, const ResolutionOptions& options);

}  // namespace pg
