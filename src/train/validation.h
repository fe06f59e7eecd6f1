#pragma once
// Task metrics during fine-tuning: the model as it is at this step (the trainer's f32 weights
// and adapters, read in place, not written out) generates greedy answers for validation
// records, which are scored as `paligemma eval` scores them (include/paligemma/eval.h):
// caption CIDEr, VQA accuracy, detection mAP@0.5, segmentation mIoU, OCR exact match.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "paligemma/checkpoint.h"
#include "paligemma/eval.h"
#include "paligemma/finetune.h"
#include "train/dataset.h"
#include "train/lora.h"
#include "train/parameters.h"

namespace pg::train {

// The headline value of each task by "task.metric" (StepRecord::val_metrics): caption
// "cider", answer "vqa_accuracy", detect "map50", segment "miou", ocr / other "exact_match";
// "examples" and "exact_match" for every task.
std::map<std::string, double> task_metrics(const EvalReport& report);
// One line for the progress output: "caption cider 3.10, answer vqa 0.85, detect mAP50 0.62".
std::string task_metrics_line(const EvalReport& report);

// A training-format record as an evaluation record (its suffix the one reference).
inline EvalRecord eval_record(const DatasetRecord& r) { return {r.images, r.prefix, {r.suffix}, r.mask, r.line}; }

class Validator {
 public:
  // The first `limit` validation records (all when limit <= 0); `vae` (optional) decodes
  // segment answers into masks. The model directory gives config.json and tokenizer.model.
  Validator(const TrainerConfig& config, const Dataset& validation, int limit);
  bool enabled() const { return !records_.empty(); }
  // Generates with the current weights: the checkpoint with the trained tensors of `params`
  // in place of its own, and `lora` (when given) applied unmerged. The answers go to
  // OUT/validation/step_<step>.jsonl (as `paligemma eval --predictions` writes them).
  EvalReport run(const Checkpoint& checkpoint, const Parameters& params, const LoraAdapters* lora,
                 int64_t step) const;

 private:
  const TrainerConfig& config_;
  std::vector<EvalRecord> records_;
  std::unique_ptr<MaskCodec> codec_;
};

}  // namespace pg::train
