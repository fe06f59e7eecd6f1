#pragma once
// What the trainer writes: the fine-tuned model as a Hugging Face checkpoint directory (the
// source's tensor names, layout and config.json, so transformers and `paligemma run` load
// it), and the training state for an exact resume (f32 master weights, Adam moments, step,
// data position, RNG) in safetensors + JSON.
#include <cstdint>
#include <fstream>
#include <string>

#include "paligemma/checkpoint.h"
#include "paligemma/tensor.h"
#include "train/parameters.h"

namespace pg::train {

// Writes params into `out_dir` as model.safetensors (tensors named as the source checkpoint
// stores them, in `dtype`: BF16 as released, or F32), plus copies of the source's
// config.json and tokenizer.model. Replaces files of the same names.
void export_hf_checkpoint(const Parameters& params, const Checkpoint& source, DType dtype, const std::string& out_dir);

// Parameters <-> one safetensors file of f32 tensors under their canonical names.
void save_parameters(const Parameters& params, const std::string& path);
Parameters load_parameters(const std::string& path);

// A run's metrics.jsonl opened for appending the steps after `start`: on a resume (start > 0)
// it keeps the lines up to the saved state (a crash may have logged more), else starts empty.
std::ofstream open_metrics_log(const std::string& path, int64_t start);

}  // namespace pg::train
