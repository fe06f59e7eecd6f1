#include "train/validation.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "paligemma/error.h"
#include "paligemma/model.h"

namespace pg::train {
namespace fs = std::filesystem;

namespace {

struct Headline {
  const char* key;   // in the JSON
  const char* name;  // in the progress line
  double value;
};

Headline headline(const TaskReport& t) {
  switch (t.task) {
    case EvalTask::Caption: return {"cider", "CIDEr", t.cider};
    case EvalTask::Answer: return {"vqa_accuracy", "VQA", t.vqa_accuracy};
    case EvalTask::Detect: return {"map50", "mAP50", t.detection.map50};
    case EvalTask::Segment: return {"miou", t.box_iou_fallback ? "box mIoU" : "mIoU", t.referring.miou};
    default: return {"exact_match", "exact", t.exact_match};
  }
}

}  // namespace

std::map<std::string, double> task_metrics(const EvalReport& report) {
  std::map<std::string, double> out;
  for (const TaskReport& t : report.tasks) {
    const std::string task = task_name(t.task);
    const Headline h = headline(t);
    out[task + ".examples"] = static_cast<double>(t.examples);
    out[task + ".exact_match"] = t.exact_match;
    out[task + "." + h.key] = h.value;
  }
  return out;
}

std::string task_metrics_line(const EvalReport& report) {
  std::string line;
  for (const TaskReport& t : report.tasks) {
    const Headline h = headline(t);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s%s %s %.3f", line.empty() ? "" : ", ", task_name(t.task), h.name, h.value);
    line += buf;
  }
  return line;
}

Validator::Validator(const TrainerConfig& config, const Dataset& validation, int limit) : config_(config) {
  for (const DatasetRecord& r : validation.records) {
    if (limit > 0 && records_.size() >= static_cast<size_t>(limit)) break;
    records_.push_back(eval_record(r));
  }
  if (!config.vae_path.empty()) codec_ = std::make_unique<MaskCodec>(MaskCodec::load(config.vae_path));
}

EvalReport Validator::run(const Checkpoint& checkpoint, const Parameters& params, const LoraAdapters* lora,
                          int64_t step) const {
  // The trained tensors as views of the trainer's f32 copies (frozen ones stay the mapped
  // checkpoint's); the model is bound anew each time, since load widens the small tensors.
  std::vector<TensorView> current;
  for (const auto& [name, t] : params.tensors())
    if (checkpoint.has(name)) current.push_back({name, DType::F32, t.shape, t.data.data()});
  ModelOptions mo;
  mo.populate_weights = false;
  mo.image_cache_entries = 0;
  mo.final_logit_softcap = config_.loss.final_logit_softcap;
  mo.sliding_window = config_.loss.hf_sliding_window ? SlidingWindowMode::Transformers : SlidingWindowMode::Off;
  if (lora) {  // the adapters as PEFT files, applied unmerged as `run --lora` does
    mo.lora_dir = config_.out_dir + "/validation_adapter";
    save_peft(*lora, fs::absolute(config_.model_dir).string(), mo.lora_dir);
  }
  const std::unique_ptr<Model> model = Model::load(config_.model_dir, checkpoint.with_tensors(current), mo);
  EvaluateOptions eo;
  eo.max_new_tokens = config_.eval_max_new_tokens;
  eo.batch_size = std::max(1, config_.batch_size);
  eo.filter = config_.resize;
  eo.scoring.codec = codec_.get();
  const bool quiet = config_.quiet;
  const Evaluation ev = evaluate_model(*model, records_, eo, [quiet](size_t done, size_t total) {
    if (!quiet) std::fprintf(stderr, "\rvalidation: generating %zu/%zu%s", done, total, done == total ? "\n" : "");
  });
  fs::create_directories(config_.out_dir + "/validation");
  const std::string path = config_.out_dir + "/validation/step_" + std::to_string(step) + ".jsonl";
  std::ofstream out(path, std::ios::trunc);
  out << predictions_jsonl(ev, records_);
  if (!out) throw Error("cannot write " + path);
  return ev.report;
}

}  // namespace pg::train
