// Running a model over evaluation records and scoring its answers (see paligemma/eval.h).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "paligemma/error.h"
#include "paligemma/eval.h"

namespace pg {

BinaryMask load_mask(const std::string& path) {
  const Image img = load_image(path);
  BinaryMask m;
  m.width = img.width;
  m.height = img.height;
  m.data.resize(static_cast<size_t>(img.width) * img.height);
  for (size_t i = 0; i < m.data.size(); ++i)
    m.data[i] = (img.rgb[3 * i] | img.rgb[3 * i + 1] | img.rgb[3 * i + 2]) ? 1 : 0;
  return m;
}

Evaluation evaluate_model(const Model& model, const std::vector<EvalRecord>& records, const EvaluateOptions& options,
                          const EvalProgress& progress) {
  if (options.max_new_tokens < 1) throw Error("evaluate: max_new_tokens must be >= 1");
  if (options.batch_size < 1) throw Error("evaluate: batch_size must be >= 1");
  GenerationOptions gen;
  gen.mode = DecodingMode::Greedy;
  gen.max_new_tokens = options.max_new_tokens;
  gen.batch_size = options.batch_size;
  const int S = model.config().vision.image_size;
  Evaluation out;
  out.examples.reserve(records.size());
  for (size_t start = 0; start < records.size(); start += options.batch_size) {
    const size_t end = std::min(records.size(), start + static_cast<size_t>(options.batch_size));
    std::vector<Request> requests;
    for (size_t i = start; i < end; ++i) {
      const EvalRecord& r = records[i];
      const std::string where = "record " + std::to_string(i + 1) + (r.line ? " (line " + std::to_string(r.line) + ")" : "");
      if (r.targets.empty()) throw Error(where + ": no reference target");
      EvalExample ex;
      ex.prefix = r.prefix;
      ex.targets = r.targets;
      ex.image_id = std::to_string(i);
      Request req;
      req.prompt = r.prefix;
      try {
        for (size_t k = 0; k < r.images.size(); ++k) {
          const Image img = load_image(r.images[k]);
          if (k == 0) {
            ex.image_width = img.width;
            ex.image_height = img.height;
          }
          req.pixels.push_back(preprocess_image(img, S, options.filter));
        }
        if (!r.mask.empty()) {
          BinaryMask m = load_mask(r.mask);
          if (m.width != ex.image_width || m.height != ex.image_height)
            throw Error("mask " + r.mask + " is " + std::to_string(m.width) + "x" + std::to_string(m.height) +
                        " but the image is " + std::to_string(ex.image_width) + "x" + std::to_string(ex.image_height));
          ex.ground_truth_mask = std::move(m);
        }
      } catch (const Error& e) {
        throw Error(where + ": " + e.what());
      }
      requests.push_back(std::move(req));
      out.examples.push_back(std::move(ex));
    }
    std::vector<Result> results = generate(model, requests, gen);
    for (size_t k = 0; k < results.size(); ++k) {
      EvalExample& ex = out.examples[start + k];
      ex.prediction = results[k].text;
      ex.tokens = std::move(results[k].tokens);
      ex.logprobs = std::move(results[k].logprobs);
      out.stop_reasons.push_back(results[k].stop_reason);
    }
    if (progress) progress(end, records.size());
  }
  EvalOptions scoring = options.scoring;
  if (!scoring.tokenizer) scoring.tokenizer = &model.tokenizer();
  out.report = score_examples(out.examples, scoring);
  return out;
}

std::string predictions_jsonl(const Evaluation& ev, const std::vector<EvalRecord>& records) {
  std::string lines;
  for (size_t i = 0; i < ev.examples.size() && i < records.size(); ++i) {
    const EvalExample& ex = ev.examples[i];
    const ExampleScore& s = ev.report.per_example[i];
    nlohmann::json j;
    j["line"] = records[i].line;
    j["image"] = records[i].images;
    j["prefix"] = ex.prefix;
    j["targets"] = ex.targets;
    j["prediction"] = ex.prediction;
    j["task"] = task_name(s.task);
    j["exact_match"] = s.exact_match;
    if (std::isfinite(s.score))
      j["score"] = s.score;
    else
      j["score"] = nullptr;
    j["skipped_pieces"] = s.skipped_pieces;
    j["stop_reason"] = ev.stop_reasons[i];
    lines += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  return lines;
}

}  // namespace pg
