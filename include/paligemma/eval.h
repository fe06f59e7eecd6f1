#pragma once
// Per-task evaluation of PaliGemma answers against reference targets: the task of each
// example from its prefix (PaliGemma's conventions), then per task
//   Caption  exact match (trimmed) and CIDEr-D, as pycocoevalcap's `Cider` class (what COCO
//            reports; it is the CIDEr-D variant: clipping, Gaussian length penalty, x10)
//   Answer   VQA accuracy after the official VQA normalisation (see vqa_normalize)
//   Detect   COCO mAP, mAP@0.5, mAP@0.75 over the evaluated set (detection_map)
//   Segment  RefCOCO mIoU of the first predicted object's mask (referring_mask_score)
//   Ocr, Other  exact match (trimmed)
// score_examples is a pure function of the examples (how the predictions were made does not
// matter: the trainer's validation pass calls it too); evaluate_model runs a model over records.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "paligemma/generate.h"
#include "paligemma/image.h"
#include "paligemma/mask_codec.h"
#include "paligemma/metrics.h"
#include "paligemma/model.h"
#include "paligemma/structured.h"

namespace pg {

class Tokenizer;

enum class EvalTask { Caption, Answer, Detect, Segment, Ocr, Other };
inline constexpr int kEvalTaskCount = 6;

// The first word of the prefix (leading whitespace skipped, ASCII case ignored):
// "caption" -> Caption; "answer" / "question" -> Answer; "detect" -> Detect;
// "segment" -> Segment; "ocr" -> Ocr; anything else -> Other.
EvalTask task_of_prefix(const std::string& prefix);
const char* task_name(EvalTask task);  // "caption", "answer", "detect", "segment", "ocr", "other"

// ---- text normalisation ----

// Leading / trailing whitespace removed (space, \t, \n, \r, \f, \v).
std::string trim(const std::string& text);

// The official VQA answer normalisation (GT-Vision-Lab/VQA vqaEval.py, as copied in
// salesforce-lavis lavis/common/vqa_tools/vqa_eval.py; big_vision's VQAv2 numbers use the
// same evaluation): \n and \t -> space, trim, processPunctuation (each of ;/[]"{}()=+\_-><@`,?!
// removed when it touches a space or the text has a digit,digit comma, otherwise replaced by a
// space; then up to 32 periods not followed by a digit removed: the original's
// `re.sub(..., re.UNICODE)` passes re.UNICODE (32) as the count), then processDigitArticle
// (lowercase (ASCII), split on whitespace, number words zero..ten and "none" -> digits,
// articles a / an / the dropped, the contraction table applied, joined by one space).
std::string vqa_normalize(const std::string& answer);

// VQA accuracy of one answer. One reference: normalised exact match (1 or 0); the official
// formula would score 0 with a single ground truth (it compares against the *other* answers).
// Several references (e.g. VQAv2's 10): the official average over each reference r of
// min(1, #(other references equal to the answer) / 3), every string normalised as above.
double vqa_accuracy(const std::string& prediction, const std::vector<std::string>& references);

// The tokenisation applied to captions before CIDEr (pycocoevalcap runs the Java PTB
// tokenizer, which we do not run): ASCII lowercase; each of .,?!:;"`()[]{} becomes a space
// (PTBTokenizer drops these tokens); tokens split on whitespace; tokens made only of '-' or
// '\'' are dropped; tokens joined with one space. Clitics ("dog's") are not split.
std::string caption_tokens(const std::string& text);

// ---- CIDEr-D ----

struct CiderScore {
  double score = 0;                  // mean over images (pycocoevalcap's corpus score)
  std::vector<double> per_image;     // one per candidate
};

// pycocoevalcap.cider.Cider().compute_score on already tokenised strings (split on spaces):
// n = 4, sigma = 6; document frequencies from the references of these images;
// idf = log(#images) - log(max(1, df)); per reference, for each n the clipped dot product
// sum min(t_c, t_r) t_r / (|t_c| |t_r|) (not divided when a norm is 0) times
// exp(-(l_c - l_r)^2 / (2 sigma^2)), l = the count of 2-grams as in the original's
// `if n == 1: length += term_freq`; mean over n, mean over references, x10.
// Throws pg::Error if the sizes differ or an image has no reference.
CiderScore cider_d(const std::vector<std::string>& candidates, const std::vector<std::vector<std::string>>& references,
                   int n = 4, double sigma = 6.0);

// ---- scoring ----

struct EvalExample {
  std::string prefix;                // decides the task
  std::vector<std::string> targets;  // reference answers (at least one); detect / segment use the first
  std::string prediction;            // the generated text (<loc>/<seg> kept)
  std::vector<int> tokens;           // optional: the generated ids, for object confidences
  std::vector<float> logprobs;       // optional: one per token
  int image_width = 0, image_height = 0;  // the original (first) image; needed by detect / segment
  std::optional<BinaryMask> ground_truth_mask;  // segment: the image-sized mask, nonzero inside
  std::string image_id;              // detect: the image id (empty: the example index)
};

struct EvalOptions {
  const Tokenizer* tokenizer = nullptr;  // with tokens + logprobs: detections ranked by confidence
  const MaskCodec* codec = nullptr;      // segment: decodes <seg> codes; null -> box IoU
  Bins bins = Bins::Demo;                // how <loc> bins map to pixels (targets and predictions)
};

struct TaskReport {
  EvalTask task = EvalTask::Other;
  size_t examples = 0;
  size_t exact_matches = 0;       // trimmed prediction == trimmed (any) target
  double exact_match = 0;         // exact_matches / examples
  size_t empty_predictions = 0;   // all-whitespace predictions (scored 0)
  // Caption.
  double cider = 0;
  // Answer.
  double vqa_accuracy = 0;
  // Detect.
  DetectionMap detection;            // map / map50 / map75 = -1 without ground-truth boxes
  size_t predicted_objects = 0, ground_truth_objects = 0;
  size_t malformed_answers = 0;      // detect / segment predictions with skipped pieces
  size_t skipped_pieces = 0;         // their ParsedAnswer::skipped entries in all
  size_t malformed_targets = 0;      // targets with skipped pieces (a data problem)
  bool ranked_by_confidence = false; // detect: every prediction had token log-probs
  // Segment.
  ReferringScore referring;          // miou / acc50 / cumulative_iou (masks), missing
  bool box_iou_fallback = false;     // no codec: box IoU instead of mask IoU
  size_t unscored = 0;               // segment examples without a ground truth mask / box
};

struct ExampleScore {
  EvalTask task = EvalTask::Other;
  bool exact_match = false;
  // The task's per-example value: caption CIDEr-D, VQA accuracy, segment IoU, exact match
  // (0/1) for ocr / other; NaN for detect (mAP is a set metric) and unscored segment examples.
  double score = 0;
  size_t skipped_pieces = 0;  // detect / segment prediction
};

struct EvalReport {
  size_t examples = 0;
  std::vector<TaskReport> tasks;          // tasks with examples, in EvalTask order
  std::vector<ExampleScore> per_example;  // one per example, in input order
  std::vector<std::string> notes;         // e.g. which metric replaced which
  const TaskReport* find(EvalTask task) const;
};

// Throws pg::Error only for inconsistent input (a ground-truth mask whose size differs from the
// image, a mask with the wrong data size); empty or malformed predictions score 0.
EvalReport score_examples(const std::vector<EvalExample>& examples, const EvalOptions& options = {});

std::string to_json(const EvalReport& report, int indent = 2);  // a JSON object
std::string format_table(const EvalReport& report);             // a human-readable table

// ---- running a model ----

struct EvalRecord {
  std::vector<std::string> images;   // paths; the first gives the image size
  std::string prefix;
  std::vector<std::string> targets;  // at least one
  std::string mask;                  // optional ground-truth mask PNG (nonzero inside)
  int line = 0;                      // where it came from (for messages)
};
// (The CLI reads them from the training JSONL format with train::load_jsonl: src/eval sits
// below src/train in the layering, so it does not read files of that format itself.)

// A PNG (or any load_image format) as a mask: a pixel is inside when any channel is nonzero.
BinaryMask load_mask(const std::string& path);

struct EvaluateOptions {
  int max_new_tokens = 64;
  int batch_size = 8;  // records decoded together
  ResizeFilter filter = ResizeFilter::PilBicubic;
  EvalOptions scoring;  // tokenizer defaults to the model's
};

struct Evaluation {
  std::vector<EvalExample> examples;  // with predictions, one per record
  std::vector<std::string> stop_reasons;
  EvalReport report;
};

// done / total records, called after each batch.
using EvalProgress = std::function<void(size_t done, size_t total)>;

// Preprocesses each record's images, generates greedily in batches, scores. Throws pg::Error
// naming the record's line for an unreadable image / mask or a mask of the wrong size.
Evaluation evaluate_model(const Model& model, const std::vector<EvalRecord>& records, const EvaluateOptions& options,
                          const EvalProgress& progress = {});

// One JSON line per record of an evaluation (`paligemma eval --predictions`, the trainer's
// validation/step_N.jsonl): line, image, prefix, targets, prediction, task, exact_match, score
// (null where the task has no per-example value), skipped_pieces, stop_reason.
std::string predictions_jsonl(const Evaluation& evaluation, const std::vector<EvalRecord>& records);

}  // namespace pg
