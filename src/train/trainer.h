#pragma once
// The fine-tuning loop: data (JSONL), batches with gradient accumulation, the optimizer and
// schedule, validation loss at intervals, a metrics log (JSONL) and loss curve (SVG), the
// resumable training state, and the exported Hugging Face checkpoint.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "paligemma/finetune.h"
#include "paligemma/image.h"
#include "train/lora.h"
#include "train/optimizer.h"
#include "train/paligemma_grad.h"

namespace pg::train {

// Whether a TrainableSet updates the tensor `name`; the names of those tensors in params.
bool is_trainable(const std::string& name, TrainableSet set);
std::vector<std::string> trainable_names(const Parameters& params, TrainableSet set);

}  // namespace pg::train
