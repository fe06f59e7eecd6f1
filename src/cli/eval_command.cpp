// `paligemma eval`: runs a model greedily over a JSONL test set ({"image","prefix","suffix"},
// optional "mask") and reports per-task metrics (CIDEr-D, VQA accuracy, mAP, mIoU, exact match).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "cli/objects_json.h"
#include "core/duration.h"
#include "paligemma/error.h"
#include "paligemma/eval.h"
#include "paligemma/profile.h"
#include "train/dataset.h"
#include "train/validation.h"

namespace pg::cli {
namespace {

struct EvalArgs {
  ModelFlags model;
  std::string data, vae, json_path, predictions_path;
  int max_new_tokens = 64;
  int batch = 8;
  int limit = 0;
  std::string resize = "bicubic";
  std::string bins = "demo";
};

void write_text(const std::string& path, const std::string& text, const char* what) {
  std::ofstream f(path);
  if (!f) throw Error(std::string(what) + ": cannot write " + path);
  f << text;
  if (!f) throw Error(std::string(what) + ": error writing " + path);
}

int run_eval(const EvalArgs& a) {
  if (a.model.dir.empty()) throw Error("--model is required");
  if (a.data.empty()) throw Error("--data is required (a JSONL file of {\"image\", \"prefix\", \"suffix\"})");
  if (a.max_new_tokens < 1) throw Error("--max-new-tokens must be >= 1");
  if (a.batch < 1) throw Error("--batch must be >= 1");
  if (a.limit < 0) throw Error("--limit must be >= 0 (0: every record)");
  ResizeFilter filter;
  if (a.resize == "bicubic") filter = ResizeFilter::PilBicubic;
  else if (a.resize == "bilinear") filter = ResizeFilter::BigVisionBilinear;
  else throw Error("--resize must be bicubic or bilinear, not '" + a.resize + "'");
  const Bins bins = parse_bins(a.bins);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(a.data, ec)) throw Error("--data: test data " + a.data + " does not exist");

  const train::Dataset data = train::load_jsonl(a.data, /*skip_bad_lines=*/false);
  std::vector<EvalRecord> records;
  for (const train::DatasetRecord& r : data.records) {
    if (a.limit > 0 && records.size() >= static_cast<size_t>(a.limit)) break;
    records.push_back(train::eval_record(r));
  }
  auto codec = load_codec(a.vae, a.model.dir);
  auto model = load_model_with_progress(a.model);

  EvaluateOptions options;
  options.max_new_tokens = a.max_new_tokens;
  options.batch_size = a.batch;
  options.filter = filter;
  options.scoring.codec = codec.get();
  options.scoring.bins = bins;
  const auto t0 = std::chrono::steady_clock::now();
  auto progress = [&](size_t done, size_t total) {
    if (a.model.quiet) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double eta = done ? s / static_cast<double>(done) * static_cast<double>(total - done) : NAN;
    std::cerr << "eval: " << done << " / " << total << " examples, " << clock_string(s) << " elapsed, ETA "
              << clock_string(eta) << "\n";
  };
  Evaluation ev = evaluate_model(*model, records, options, progress);

  std::cout << format_table(ev.report);
  if (!a.json_path.empty()) write_text(a.json_path, to_json(ev.report) + "\n", "--json");
  if (!a.predictions_path.empty()) {
    const std::string lines = predictions_jsonl(ev, records);
    write_text(a.predictions_path, lines, "--predictions");
  }
  if (profile::enabled()) std::cerr << profile::report();
  return 0;
}

}  // namespace

Runner add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Score a model's greedy answers on a JSONL test set, per task");
  add_model_flags(*cmd, args->model);
  cmd->add_option("--data", args->data,
                  "Test data: JSONL lines {\"image\", \"prefix\", \"suffix\"[, \"mask\": PNG]}, paths relative to the file");
  cmd->add_option("--vae", args->vae, "big_vision's vae-oid.npz: segment answers scored by mask IoU (default: the model directory's vae-oid.npz; else box IoU)");
  cmd->add_option("--max-new-tokens", args->max_new_tokens, "Most tokens to generate per answer")->capture_default_str();
  cmd->add_option("--batch", args->batch, "Records decoded together")->capture_default_str();
  cmd->add_option("--limit", args->limit, "Evaluate only the first N records (0: all)")->capture_default_str();
  cmd->add_option("--json", args->json_path, "Write the report as JSON to this file");
  cmd->add_option("--predictions", args->predictions_path,
                  "Write one JSON line per record (prediction, targets, task, score) to this file");
  cmd->add_option("--resize", args->resize, "Resize filter: bicubic (transformers/PIL) or bilinear (big_vision)")
      ->capture_default_str();
  cmd->add_option("--bins", args->bins, "Box convention: demo (bin / 1024 * size) or bigvision (bin / 1023 * size)")
      ->capture_default_str();
  return [args] { return run_eval(*args); };
}

}  // namespace pg::cli
