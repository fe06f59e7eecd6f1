#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "core/duration.h"
#include "paligemma/checkpoint.h"
#include "paligemma/config.h"
#include "paligemma/error.h"
#include "paligemma/tokenizer.h"
#include "train/checkpoint_io.h"
#include "train/dataset.h"
#include "train/loss_plot.h"
#include "train/validation.h"

namespace pg::train {
namespace fs = std::filesystem;

bool is_trainable(const std::string& name, TrainableSet set) {
  const bool vision = name.rfind("vision_tower.", 0) == 0;
  const bool attention = name.rfind("language_model.", 0) == 0 && name.find(".self_attn.") != std::string::npos;
  return set == TrainableSet::Full || (set == TrainableSet::FrozenVision && !vision) ||
         (set == TrainableSet::AttentionOnly && attention);
}

std::vector<std::string> trainable_names(const Parameters& params, TrainableSet set) {
  std::vector<std::string> out;
  for (const auto& [name, t] : params.tensors())
    if (is_trainable(name, set)) out.push_back(name);
  return out;
}

namespace {

// Every record of `data` that fits, images decoded once each (ExampleStore).
ExampleStore load_examples(const Dataset& data, const Tokenizer& tokenizer, const ModelConfig& config,
                           const TrainerConfig& tc, TruncationStats* stats, const char* what) {
  ExampleStore out(config, tc.resize, tc.max_tokens);
  for (size_t i = 0; i < data.records.size(); ++i) {
    try {
      out.add(data.records[i], tokenizer, config, stats);
    } catch (const Error& e) {
      throw Error(data.path + ":" + std::to_string(data.records[i].line) + ": " + e.what());
    }
    if (!tc.quiet && (i + 1 == data.records.size() || (i + 1) % 50 == 0))
      std::fprintf(stderr, "\rfinetune: %s data %zu/%zu examples (%zu images)", what, i + 1, data.records.size(),
                   out.image_count());
  }
  if (!tc.quiet) std::fprintf(stderr, "\n");
  if (out.size() == 0) throw Error(data.path + ": no example fits --max-tokens " + std::to_string(tc.max_tokens));
  return out;
}

double mean_loss(const Parameters& params, const ModelConfig& config, const std::vector<TrainExample>& examples,
                 const LossOptions& options, int batch, const LoraAdapters* lora) {
  double sum = 0;
  for (size_t i = 0; i < examples.size(); i += batch) {
    const std::vector<TrainExample> b(examples.begin() + i,
                                      examples.begin() + std::min(examples.size(), i + static_cast<size_t>(batch)));
    LossOptions o = options;
    o.reduction = LossReduction::PerExample;
    o.dropout = 0.0f;  // evaluation is deterministic
    o.lora_dropout = 0.0f;
    o.checkpoint_layers = false;  // no backward
    for (double l : loss_and_gradients(params, config, b, o, nullptr, lora).example_loss) sum += l;
  }
  return sum / static_cast<double>(examples.size());
}

nlohmann::json run_identity(const TrainerConfig& c, int examples) {
  return {{"train", fs::absolute(c.train_path).string()},
          {"examples", examples},
          {"batch_size", c.batch_size},
          {"grad_accum", c.grad_accum},
          {"seed", c.seed},
          {"shuffle", c.shuffle},
          {"epochs", c.epochs},
          {"max_steps", c.max_steps},
          {"trainable", static_cast<int>(c.trainable)},
          {"lora", c.trainable == TrainableSet::Lora ? nlohmann::json{{"r", c.lora.rank},
                                                                      {"alpha", c.lora.alpha},
                                                                      {"targets", c.lora.targets},
                                                                      {"vision", c.lora.vision},
                                                                      {"seed", c.lora.seed},
                                                                      {"dropout", c.lora.dropout}}
                                                     : nlohmann::json()},
          {"optimizer", static_cast<int>(c.optimizer.kind)},
          {"dropout", c.loss.dropout}};
}

}  // namespace

TrainSummary run_finetune(const TrainerConfig& tc) {
  if (tc.batch_size < 1 || tc.grad_accum < 1 || tc.batch_size % tc.grad_accum != 0)
    throw Error("--batch-size must be a positive multiple of --grad-accum (got " + std::to_string(tc.batch_size) +
                " and " + std::to_string(tc.grad_accum) + ")");
  if (tc.epochs < 1 && tc.max_steps <= 0) throw Error("--epochs must be >= 1 (or give --max-steps)");
  if (tc.out_dir.empty()) throw Error("finetune needs --out DIR");
  const Checkpoint ckpt = Checkpoint::open(tc.model_dir);
  const ModelConfig config = load_model_config(tc.model_dir);
  const Tokenizer tokenizer = Tokenizer::load(tc.model_dir + "/tokenizer.model");

  TrainSummary summary;
  const Dataset train_data = load_jsonl(tc.train_path, tc.skip_bad_lines);
  summary.skipped_lines = static_cast<int>(train_data.skipped.size());
  for (const BadLine& b : train_data.skipped)
    std::fprintf(stderr, "finetune: %s:%d: skipped: %s\n", tc.train_path.c_str(), b.line, b.reason.c_str());
  TruncationStats stats;
  const ExampleStore train = load_examples(train_data, tokenizer, config, tc, &stats, "train");
  summary.train_examples = static_cast<int>(train.size());
  summary.truncated = stats.truncated;
  summary.dropped = stats.dropped;
  if (stats.truncated || stats.dropped)
    std::fprintf(stderr,
                 "finetune: --max-tokens %d: %d examples had their suffix cut to fit, %d did not fit at all and "
                 "were left out\n",
                 tc.max_tokens, stats.truncated, stats.dropped);
  std::vector<TrainExample> val;
  std::unique_ptr<Validator> validator;
  if (!tc.val_path.empty()) {
    const Dataset val_data = load_jsonl(tc.val_path, tc.skip_bad_lines);
    TruncationStats vstats;
    const ExampleStore store = load_examples(val_data, tokenizer, config, tc, &vstats, "validation");
    for (size_t i = 0; i < store.size(); ++i) val.push_back(store.example(i));
    if (tc.eval_metrics != 0) validator = std::make_unique<Validator>(tc, val_data, tc.eval_metrics);
  } else if (tc.eval_metrics != 0) {
    throw Error("--eval-metrics needs validation data (--val)");
  }

  const int n = static_cast<int>(train.size());
  const int64_t steps_per_epoch = (n + tc.batch_size - 1) / tc.batch_size;
  const int64_t total = tc.max_steps > 0 ? tc.max_steps : steps_per_epoch * tc.epochs;
  Schedule schedule;
  schedule.kind = tc.schedule;
  schedule.total_steps = total;
  schedule.warmup_steps = static_cast<int64_t>(std::llround(tc.warmup_fraction * static_cast<double>(total)));

  fs::create_directories(tc.out_dir);
  const std::string state_dir = tc.out_dir + "/state";
  // Frozen matrices stay in the mapped checkpoint (read by the kernels); only what trains,
  // and the small tensors read directly (norms, biases, position embedding), are f32 copies.
  Parameters params = Parameters::from_checkpoint(ckpt, config, [&](const std::string& name) {
    return name.find("position_embedding") == std::string::npos && !is_trainable(name, tc.trainable);
  });
  // What the optimizer updates: the model's own tensors, or the LoRA adapters (base frozen).
  const bool use_lora = tc.trainable == TrainableSet::Lora;
  LoraAdapters lora;
  if (use_lora) lora = init_lora(params, tc.lora);
  Parameters& trained = use_lora ? lora.tensors : params;
  std::vector<std::string> names;
  if (use_lora)
    for (const auto& [name, t] : lora.tensors.tensors()) names.push_back(name);
  else
    names = trainable_names(params, tc.trainable);
  if (names.empty()) throw Error("nothing to train: the chosen set has no tensor in this checkpoint");
  Optimizer optimizer(tc.optimizer, trained, names);
  int64_t start = 0;
  const nlohmann::json identity = run_identity(tc, n);
  if (tc.resume && fs::exists(state_dir + "/state.json")) {
    std::ifstream in(state_dir + "/state.json");
    const nlohmann::json state = nlohmann::json::parse(in);
    if (state["run"] != identity)
      throw Error("cannot resume from " + state_dir + ": it belongs to a different run (" + state["run"].dump() +
                  ", this run: " + identity.dump() + ")");
    // The saved tensors replace ours by name (frozen views stay as they are).
    Parameters saved = load_parameters(state_dir + "/params.safetensors");
    for (auto& [name, t] : saved.tensors()) trained.at(name) = std::move(t);
    if (tc.optimizer.kind == OptimizerKind::Adam) {
      optimizer.first_moment() = load_parameters(state_dir + "/adam_m.safetensors");
      optimizer.second_moment() = load_parameters(state_dir + "/adam_v.safetensors");
    }
    start = state["step"];
    optimizer.set_steps(start);
    if (!tc.quiet)
      std::fprintf(stderr, "finetune: resuming at step %lld of %lld\n", (long long)start, (long long)total);
  }
  auto save_state = [&](int64_t step) {
    fs::create_directories(state_dir);
    save_parameters(trained, state_dir + "/params.safetensors");
    if (tc.optimizer.kind == OptimizerKind::Adam) {
      save_parameters(optimizer.first_moment(), state_dir + "/adam_m.safetensors");
      save_parameters(optimizer.second_moment(), state_dir + "/adam_v.safetensors");
    }
    const nlohmann::json state = {{"step", step}, {"run", identity}};
    std::ofstream(state_dir + "/state.json.tmp") << state.dump(2) << "\n";
    fs::rename(state_dir + "/state.json.tmp", state_dir + "/state.json");
  };

  Parameters grads;
  for (const std::string& name : names) {
    Tensor z;
    z.shape = trained.at(name).shape;
    z.data.assign(trained.at(name).data.size(), 0.0f);
    grads.add(name, std::move(z));
  }
  std::ofstream metrics = open_metrics_log(tc.out_dir + "/metrics.jsonl", start);
  summary.steps = start;
  if (!tc.quiet)
    std::fprintf(stderr,
                 "finetune: %d examples, %lld steps (%lld per epoch), batch %d (%d x %d), training %zu tensors "
                 "(%.1f M values)%s; %zu frozen matrices read in place\n",
                 n, (long long)total, (long long)steps_per_epoch, tc.batch_size, tc.grad_accum,
                 tc.batch_size / tc.grad_accum, names.size(), static_cast<double>(trained.total_numel()) / 1e6,
                 use_lora ? " of LoRA adapters" : "", params.views().size());
  // Validation loss (and task metrics) of the model as it is now, into rec.
  auto validate = [&](StepRecord& rec) {
    rec.val_loss = mean_loss(params, config, val, tc.loss, tc.batch_size, use_lora ? &lora : nullptr);
    if (!validator) return;
    const EvalReport report = validator->run(ckpt, params, use_lora ? &lora : nullptr, rec.step);
    rec.val_metrics = task_metrics(report);
    if (!tc.quiet)
      std::fprintf(stderr, "step %lld validation: loss %.4f, %s\n", (long long)rec.step, rec.val_loss,
                   task_metrics_line(report).c_str());
  };
  // A fresh run with validation data first measures the starting point (step 0 of the log).
  if (start == 0 && !val.empty()) {
    StepRecord before;
    validate(before);
    nlohmann::json line = {{"step", 0}, {"val_loss", before.val_loss}};
    if (!before.val_metrics.empty()) line["val_metrics"] = before.val_metrics;
    metrics << line.dump() << "\n" << std::flush;
    summary.initial_val_loss = before.val_loss;
    summary.initial_val_metrics = before.val_metrics;
  }
  const auto t0 = std::chrono::steady_clock::now();
  int cached_epoch = -1;
  std::vector<int> order;
  for (int64_t step = start; step < total; ++step) {
    const int epoch = static_cast<int>(step / steps_per_epoch);
    if (epoch != cached_epoch) {
      order = epoch_order(n, tc.seed, epoch, tc.shuffle);
      cached_epoch = epoch;
    }
    const int64_t first = (step % steps_per_epoch) * tc.batch_size;
    const int count = static_cast<int>(std::min<int64_t>(tc.batch_size, n - first));
    std::vector<TrainExample> batch;
    for (int i = 0; i < count; ++i) batch.push_back(train.example(order[first + i]));
    int tokens = 0;
    for (const auto& ex : batch) tokens += ex.num_targets();
    const auto ts = std::chrono::steady_clock::now();
    grads.fill(0.0f);
    double loss = 0;
    const int micro = std::max(1, count / tc.grad_accum);
    for (int m0 = 0; m0 < count; m0 += micro) {
      const std::vector<TrainExample> part(batch.begin() + m0, batch.begin() + std::min(count, m0 + micro));
      LossOptions o = tc.loss;
      o.scale = static_cast<double>(part.size()) / count;
      o.total_tokens = tokens;
      if (use_lora) o.lora_dropout = static_cast<float>(tc.lora.dropout);
      // Dropout masks from (seed, step, micro-batch): a resumed run draws the same ones.
      o.dropout_seed = (tc.seed + 1) * 0xD1B54A32D192ED03ull + static_cast<uint64_t>(step) * 0x100000001B3ull +
                       static_cast<uint64_t>(m0);
      loss += (use_lora ? loss_and_gradients(params, config, part, o, nullptr, &lora, &grads)
                        : loss_and_gradients(params, config, part, o, &grads))
                  .loss;
    }
    const double factor = schedule.factor(optimizer.steps());
    const double norm = optimizer.step(trained, grads, factor);
    if (!std::isfinite(loss) || !std::isfinite(norm))
      throw Error("training diverged at step " + std::to_string(step + 1) + " (loss " + std::to_string(loss) +
                  ", gradient norm " + std::to_string(norm) + "): lower --lr or enable --clip-norm");
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    StepRecord rec;
    rec.step = step + 1;
    rec.epoch = epoch;
    rec.loss = loss;
    rec.lr = tc.optimizer.lr * factor;
    rec.grad_norm = norm;
    rec.tokens = tokens;
    rec.tokens_per_s = tokens / std::max(dt, 1e-9);
    const bool last = step + 1 == total;
    if (!val.empty() && (last || (tc.eval_every > 0 && (step + 1) % tc.eval_every == 0))) validate(rec);
    summary.history.push_back(rec);
    nlohmann::json line = {{"step", rec.step},
                           {"epoch", rec.epoch},
                           {"loss", rec.loss},
                           {"lr", rec.lr},
                           {"grad_norm", rec.grad_norm},
                           {"tokens", rec.tokens},
                           {"tokens_per_s", rec.tokens_per_s}};
    if (rec.val_loss >= 0) line["val_loss"] = rec.val_loss;
    if (!rec.val_metrics.empty()) line["val_metrics"] = rec.val_metrics;
    metrics << line.dump() << "\n" << std::flush;
    if (!tc.quiet) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double eta = elapsed / static_cast<double>(step + 1 - start) * static_cast<double>(total - step - 1);
      std::fprintf(stderr, "step %lld/%lld  loss %.4f%s  lr %.2e  |g| %.3g  %.3g tok/s  ETA %s\n", (long long)rec.step,
                   (long long)total, rec.loss,
                   rec.val_loss >= 0 ? ("  val " + std::to_string(rec.val_loss)).c_str() : "", rec.lr, rec.grad_norm,
                   rec.tokens_per_s, clock_string(eta).c_str());
    }
    const bool stop = tc.stop_after > 0 && step + 1 - start == tc.stop_after && !last;
    if (last || stop || (tc.save_every > 0 && (step + 1) % tc.save_every == 0)) save_state(step + 1);
    summary.steps = step + 1;
    if (stop) break;
  }
  summary.finished = summary.steps == total;
  if (!summary.history.empty()) summary.final_val_loss = summary.history.back().val_loss;

  // The loss curve over the whole run (metrics.jsonl, including steps before a resume).
  std::vector<std::pair<double, double>> train_curve, val_curve;
  {
    std::ifstream in(tc.out_dir + "/metrics.jsonl");
    std::string text;
    while (std::getline(in, text)) {
      const auto j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("loss")) train_curve.emplace_back(j["step"].get<double>(), j["loss"].get<double>());
      if (j.contains("val_loss")) val_curve.emplace_back(j["step"].get<double>(), j["val_loss"].get<double>());
    }
  }
  write_loss_plot(tc.out_dir + "/loss.svg", train_curve, val_curve);
  if (!summary.finished) {
    if (!tc.quiet)
      std::fprintf(stderr, "finetune: stopped at step %lld of %lld; continue with --resume (state in %s)\n",
                   (long long)summary.steps, (long long)total, state_dir.c_str());
    return summary;
  }
  if (use_lora) {
    save_peft(lora, fs::absolute(tc.model_dir).string(), tc.out_dir + "/adapter");
    if (tc.export_merged) {
      Parameters merged = params;
      merge_lora(lora, merged);
      export_hf_checkpoint(merged, ckpt, tc.export_dtype, tc.out_dir + "/model");
    }
  } else {
    export_hf_checkpoint(params, ckpt, tc.export_dtype, tc.out_dir + "/model");
  }
  if (!tc.quiet)
    std::fprintf(
        stderr, "finetune: wrote %s/%s, metrics.jsonl, loss.svg\n", tc.out_dir.c_str(),
        use_lora ? (tc.export_merged ? "adapter (PEFT) and model (merged)" : "adapter (PEFT)") : "model (checkpoint)");
  return summary;
}

}  // namespace pg::train
