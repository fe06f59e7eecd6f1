// The mask VQ-VAE trainer (include/paligemma/vae_train.h): world masks streamed in scene
// order, Adam on the VQ-VAE loss of src/seg/mask_vae.h, data-initialised codebook with
// dead-code restarts, held-out IoU, vae-oid-layout npz output and a resumable state.
#include "paligemma/vae_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/random.h"
#include "paligemma/error.h"
#include "paligemma/finetune.h"
#include "paligemma/mask_codec.h"
#include "paligemma/npz.h"
#include "paligemma/segmentation.h"
#include "paligemma/world.h"
#include "seg/mask_vae.h"
#include "train/optimizer.h"

namespace pg {

namespace {

constexpr int kMaskPixels = 64 * 64;
constexpr int kCells = 16;
constexpr int64_t kStateVersion = 1;
const std::string kCodebookKey = "_vq_vae._embedding";

WorldOptions world_options(uint64_t seed, int world_size, int max_objects) {
  WorldOptions o;
  o.seed = seed;
  o.images = 1;  // make_world_scene takes any index; validation only wants a positive count
  o.size = world_size;
  o.max_objects = max_objects;
  o.text_probability = 0.0;  // text is not an object: no font needed, the same scenes otherwise
  return o;
}

std::vector<float> object_mask64(const WorldObject& object) {
  std::vector<uint8_t> scaled(object.mask.data.size());
  for (size_t i = 0; i < scaled.size(); ++i) scaled[i] = object.mask.data[i] ? 255 : 0;  // big_vision's uint8 masks
  return mask_to_64(scaled.data(), object.mask.width, object.mask.height, pixel_box(object.box));
}

// The objects of scenes 0, 1, 2, ... of one seed, in drawing order; the position (scene,
// object) is all the state there is.
class WorldMaskStream {
 public:
  WorldMaskStream(uint64_t seed, int world_size, int max_objects)
      : options_(world_options(seed, world_size, max_objects)) {}

  void seek(int64_t scene, int64_t object) {
    scene_ = scene;
    object_ = object;
    loaded_ = -1;
  }
  int64_t scene() const { return scene_; }
  int64_t object() const { return object_; }

  // Appends n masks of 64 * 64 values to out.
  void next(int n, std::vector<float>& out) {
    for (int i = 0; i < n;) {
      if (loaded_ != scene_) {
        current_ = make_world_scene(options_, scene_);
        loaded_ = scene_;
      }
      if (object_ >= static_cast<int64_t>(current_.objects.size())) {
        ++scene_;
        object_ = 0;
        continue;
      }
      const std::vector<float> m = object_mask64(current_.objects[static_cast<size_t>(object_)]);
      out.insert(out.end(), m.begin(), m.end());
      ++object_;
      ++i;
    }
  }

 private:
  WorldOptions options_;
  int64_t scene_ = 0, object_ = 0, loaded_ = -1;
  WorldScene current_;
};

double perplexity_of(const std::vector<int64_t>& counts, int* used) {
  int64_t total = 0;
  int distinct = 0;
  for (int64_t c : counts) {
    total += c;
    distinct += c > 0;
  }
  if (used) *used = distinct;
  if (total == 0) return 0.0;
  double entropy = 0.0;
  for (int64_t c : counts)
    if (c > 0) {
      const double p = static_cast<double>(c) / static_cast<double>(total);
      entropy -= p * std::log(p);
    }
  return std::exp(entropy);
}

struct Evaluation {
  double iou = 0, baseline = 0, perplexity = 0;
  int codes_used = 0;
};

Evaluation evaluate(const train::Parameters& params, const std::vector<float>& masks, int count, int codebook) {
  Evaluation e;
  std::vector<int64_t> counts(static_cast<size_t>(codebook), 0);
  const std::vector<float> ones(kMaskPixels, 1.0f);
  constexpr int kChunk = 64;  // bounds the decoder's activations
  for (int start = 0; start < count; start += kChunk) {
    const int n = std::min(kChunk, count - start);
    const float* m = masks.data() + static_cast<size_t>(start) * kMaskPixels;
    const std::vector<int> codes = seg::mask_vae_encode(params, m, n);
    for (int c : codes) ++counts[static_cast<size_t>(c)];
    const std::vector<float> logits = seg::mask_vae_decode(params, codes.data(), n);
    for (int i = 0; i < n; ++i) {
      e.iou += mask_reconstruction_iou(logits.data() + static_cast<size_t>(i) * kMaskPixels,
                                       m + static_cast<size_t>(i) * kMaskPixels);
      e.baseline += mask_reconstruction_iou(ones.data(), m + static_cast<size_t>(i) * kMaskPixels);
    }
  }
  e.iou /= count;
  e.baseline /= count;
  e.perplexity = perplexity_of(counts, &e.codes_used);
  return e;
}

NpyArray tensor_array(const train::Tensor& t) { return npy_array_f32(t.shape, t.data.data()); }

void write_vae(const std::string& path, const train::Parameters& params, const seg::MaskVaeShape& shape) {
  std::vector<std::pair<std::string, NpyArray>> arrays;
  for (const auto& [name, s] : seg::mask_vae_parameter_shapes(shape))
    arrays.emplace_back(name, tensor_array(params.at(name)));
  write_npz(path, arrays);
}

// Everything a resumed run needs to continue bit for bit.
struct TrainState {
  int64_t step = 0;
  uint64_t rng = 0;
  int64_t scene = 0, object = 0, restarted = 0;
  std::vector<int64_t> usage_window;  // code counts since the last restart check
};

enum Meta : size_t {
  kVersion,
  kStep,
  kChannels,
  kCodeDim,
  kCodebookSize,
  kBatch,
  kSeed,
  kRng,
  kScene,
  kObject,
  kRestarted,
  kWorldSize,
  kMaxObjects,
  kRestartEvery,
  kMetaCount
};

void write_state(const std::string& path, const VaeTrainOptions& o, const TrainState& s,
                 const train::Parameters& params, train::Optimizer& opt) {
  std::vector<int64_t> meta(kMetaCount);
  meta[kVersion] = kStateVersion;
  meta[kStep] = s.step;
  meta[kChannels] = o.channels;
  meta[kCodeDim] = o.code_dim;
  meta[kCodebookSize] = o.codebook;
  meta[kBatch] = o.batch_size;
  meta[kSeed] = static_cast<int64_t>(o.seed);
  meta[kRng] = static_cast<int64_t>(s.rng);
  meta[kScene] = s.scene;
  meta[kObject] = s.object;
  meta[kRestarted] = s.restarted;
  meta[kWorldSize] = o.world_size;
  meta[kMaxObjects] = o.max_objects;
  meta[kRestartEvery] = o.restart_every;
  std::vector<std::pair<std::string, NpyArray>> arrays;
  arrays.emplace_back("meta", npy_array_i64({kMetaCount}, meta.data()));
  arrays.emplace_back("usage_window",
                      npy_array_i64({static_cast<int64_t>(s.usage_window.size())}, s.usage_window.data()));
  for (const auto& [name, t] : params.tensors()) {
    arrays.emplace_back("param/" + name, tensor_array(t));
    arrays.emplace_back("adam_m/" + name, tensor_array(opt.first_moment().at(name)));
    arrays.emplace_back("adam_v/" + name, tensor_array(opt.second_moment().at(name)));
  }
  write_npz(path, arrays);
}

void read_tensor_into(const Npz& npz, const std::string& key, train::Tensor& t) {
  const NpyArray& a = npz.get(key);
  if (a.dtype != "f4" || a.shape != t.shape)
    throw Error(npz.path() + ": '" + key + "' has shape " + shape_string(a.shape) + " (" + a.dtype + "), expected " +
                shape_string(t.shape) + " (f4)");
  t.data = a.as_f32();
}

TrainState read_state(const std::string& path, const VaeTrainOptions& o, train::Parameters& params,
                      train::Optimizer& opt) {
  const Npz npz = Npz::read(path);
  const std::vector<int64_t> meta = npz.get("meta").as_i64();
  if (meta.size() != kMetaCount || meta[kVersion] != kStateVersion)
    throw Error(path + " is not a vae-train state of this version (meta has " + std::to_string(meta.size()) +
                " entries)");
  auto expect = [&](Meta m, int64_t want, const char* option) {
    if (meta[m] != want)
      throw Error("cannot resume from " + path + ": it was written with " + option + " " + std::to_string(meta[m]) +
                  ", this run has " + std::to_string(want) + " (resume with the same configuration)");
  };
  expect(kChannels, o.channels, "--channels");
  expect(kCodeDim, o.code_dim, "--code-dim");
  expect(kCodebookSize, o.codebook, "--codebook");
  expect(kBatch, o.batch_size, "--batch-size");
  expect(kSeed, static_cast<int64_t>(o.seed), "--seed");
  expect(kWorldSize, o.world_size, "--world-size");
  expect(kMaxObjects, o.max_objects, "--max-objects");
  expect(kRestartEvery, o.restart_every, "--restart-every");
  TrainState s;
  s.step = meta[kStep];
  s.rng = static_cast<uint64_t>(meta[kRng]);
  s.scene = meta[kScene];
  s.object = meta[kObject];
  s.restarted = meta[kRestarted];
  s.usage_window = npz.get("usage_window").as_i64();
  if (s.usage_window.size() != static_cast<size_t>(o.codebook))
    throw Error(path + ": 'usage_window' has " + std::to_string(s.usage_window.size()) + " entries, expected " +
                std::to_string(o.codebook));
  // A finished run resumed with its own --steps is done (a pipeline rerun); fewer is an error.
  if (s.step > o.steps)
    throw Error(path + " is already at step " + std::to_string(s.step) + ": pass --steps of at least that to continue");
  for (auto& [name, t] : params.tensors()) {
    read_tensor_into(npz, "param/" + name, t);
    read_tensor_into(npz, "adam_m/" + name, opt.first_moment().at(name));
    read_tensor_into(npz, "adam_v/" + name, opt.second_moment().at(name));
  }
  opt.set_steps(s.step);
  return s;
}

// Fails now, not after the training, when the output cannot be created.
void check_writable(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error("cannot write " + path + ": it is a directory (--out names the .npz file)");
  const std::string probe = path + ".tmp";
  std::ofstream f(probe, std::ios::binary);
  if (!f) throw Error("cannot write " + path + ": " + std::strerror(errno));
  f.close();
  std::remove(probe.c_str());
}

// Codebook rows from random encodings of the first batch (the encoder's scale from the start,
// so every code is near some input and none starts dead).
void init_codebook_from_data(train::Parameters& params, const std::vector<float>& encodings, int D, uint64_t& rng) {
  train::Tensor& e = params.at(kCodebookKey);
  const int K = static_cast<int>(e.shape[0]);
  const int64_t vectors = static_cast<int64_t>(encodings.size()) / D;
  for (int k = 0; k < K; ++k) {
    const int64_t v = static_cast<int64_t>(splitmix64_next(rng) % static_cast<uint64_t>(vectors));
    std::copy_n(encodings.data() + v * D, D, e.data.data() + static_cast<int64_t>(k) * D);
  }
}

}  // namespace

double mask_reconstruction_iou(const float* logits64, const float* mask64) {
  int64_t inter = 0, uni = 0;
  for (int i = 0; i < kMaskPixels; ++i) {
    const bool a = logits64[i] > 0.0f, b = mask64[i] > 0.5f;
    inter += a && b;
    uni += a || b;
  }
  return uni == 0 ? 1.0 : static_cast<double>(inter) / static_cast<double>(uni);
}

std::vector<std::vector<float>> world_masks64(uint64_t seed, int count, int world_size, int max_objects) {
  WorldMaskStream stream(seed, world_size, max_objects);
  std::vector<std::vector<float>> out;
  for (int i = 0; i < count; ++i) {
    std::vector<float> m;
    stream.next(1, m);
    out.push_back(std::move(m));
  }
  return out;
}

void validate_vae_train_options(const VaeTrainOptions& o) {
  if (o.out_path.empty()) throw Error("vae-train: an output path (--out) is needed");
  if (o.steps < 1) throw Error("vae-train: --steps must be >= 1, got " + std::to_string(o.steps));
  if (o.batch_size < 1 || o.batch_size > 4096)
    throw Error("vae-train: --batch-size must be in 1..4096, got " + std::to_string(o.batch_size));
  if (!(o.lr > 0) || !std::isfinite(o.lr)) throw Error("vae-train: --lr must be > 0");
  if (o.warmup_steps < 0) throw Error("vae-train: --warmup must be >= 0");
  if (!(o.beta >= 0) || !std::isfinite(o.beta)) throw Error("vae-train: --beta must be >= 0");
  seg::validate_mask_vae_shape(seg::MaskVaeShape{o.channels, o.code_dim, o.codebook});
  if (o.val_masks < 1 || o.val_masks > 100000)
    throw Error("vae-train: --val-masks must be in 1..100000, got " + std::to_string(o.val_masks));
  if (o.val_seed == o.seed)
    throw Error("vae-train: --val-seed must differ from --seed (held-out masks come from other scenes)");
  if (o.world_size < 16 || o.world_size > 4096)
    throw Error("vae-train: --world-size must be in 16..4096, got " + std::to_string(o.world_size));
  if (o.max_objects < 1 || o.max_objects > 16)
    throw Error("vae-train: --max-objects must be in 1..16, got " + std::to_string(o.max_objects));
  if (o.restart_every < 0 || o.eval_every < 0 || o.log_every < 0 || o.save_every < 0)
    throw Error("vae-train: --restart-every, --eval-every, --log-every and --save-every must be >= 0");
}

VaeTrainSummary train_mask_vae(const VaeTrainOptions& o, const std::function<void(const VaeTrainProgress&)>& progress) {
  validate_vae_train_options(o);
  const seg::MaskVaeShape shape{o.channels, o.code_dim, o.codebook};
  const std::string state_path = o.out_path + ".state.npz";
  check_writable(o.out_path);
  if (o.resume) {
    std::ifstream f(state_path);
    if (!f) throw Error("cannot resume: " + state_path + " does not exist (train without --resume first)");
  }

  train::Parameters params = seg::init_mask_vae(shape, o.seed);
  std::vector<std::string> names;
  for (const auto& [name, t] : params.tensors()) names.push_back(name);
  train::OptimizerConfig oc;
  oc.kind = train::OptimizerKind::Adam;
  oc.lr = o.lr;
  train::Optimizer opt(oc, params, names);
  train::Schedule schedule;
  schedule.kind = o.cosine ? train::ScheduleKind::Cosine : train::ScheduleKind::Constant;
  schedule.total_steps = o.steps;
  schedule.warmup_steps = std::min(o.warmup_steps, o.steps);

  WorldMaskStream stream(o.seed, o.world_size, o.max_objects);
  TrainState st;
  if (o.resume) {
    st = read_state(state_path, o, params, opt);
    stream.seek(st.scene, st.object);
  } else {
    st.rng = splitmix64_hash(o.seed ^ 0x7661652D747261ull);  // "vae-tra"
    st.usage_window.assign(static_cast<size_t>(o.codebook), 0);
    WorldMaskStream first(o.seed, o.world_size, o.max_objects);  // peeks at the first batch
    std::vector<float> batch;
    first.next(o.batch_size, batch);
    std::vector<float> enc;
    seg::mask_vae_encode(params, batch.data(), o.batch_size, &enc);
    init_codebook_from_data(params, enc, o.code_dim, st.rng);
  }
  const int64_t start_step = st.step;

  std::vector<float> val;
  for (const auto& m : world_masks64(o.val_seed, o.val_masks, o.world_size, o.max_objects))
    val.insert(val.end(), m.begin(), m.end());

  seg::MaskVaeLossConfig lc;
  lc.beta = o.beta;
  train::Parameters grads = params.zeros_like();
  std::vector<int64_t> log_counts(static_cast<size_t>(o.codebook), 0);
  double sum_loss = 0, sum_recon = 0, sum_cb = 0, sum_commit = 0;
  int64_t logged_steps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  VaeTrainSummary summary;
  Evaluation last_eval;  // the last step always evaluates

  std::vector<float> batch;
  const int K = o.codebook, D = o.code_dim;
  while (st.step < o.steps) {
    batch.clear();
    stream.next(o.batch_size, batch);
    grads.fill(0.0f);
    seg::MaskVaeLoss loss = seg::mask_vae_loss(params, batch.data(), o.batch_size, lc, &grads);
    if (!std::isfinite(loss.total))
      throw Error("vae-train: the loss diverged at step " + std::to_string(st.step + 1) + " (try a lower --lr)");
    opt.step(params, grads, schedule.factor(st.step));
    ++st.step;
    for (int c : loss.codes) {
      ++st.usage_window[static_cast<size_t>(c)];
      ++log_counts[static_cast<size_t>(c)];
    }
    if (o.restart_every > 0 && st.step % o.restart_every == 0) {
      // Dead codes move onto random encodings of this batch; their Adam moments restart too
      // (stale moments would push them straight back).
      float* e = params.data(kCodebookKey);
      float* m = opt.first_moment().data(kCodebookKey);
      float* v = opt.second_moment().data(kCodebookKey);
      const int64_t vectors = static_cast<int64_t>(o.batch_size) * kCells;
      for (int k = 0; k < K; ++k) {
        if (st.usage_window[static_cast<size_t>(k)] > 0) continue;
        const int64_t pick = static_cast<int64_t>(splitmix64_next(st.rng) % static_cast<uint64_t>(vectors));
        std::copy_n(loss.encodings.data() + pick * D, D, e + static_cast<int64_t>(k) * D);
        std::fill_n(m + static_cast<int64_t>(k) * D, D, 0.0f);
        std::fill_n(v + static_cast<int64_t>(k) * D, D, 0.0f);
        ++st.restarted;
      }
      std::fill(st.usage_window.begin(), st.usage_window.end(), 0);
    }
    sum_loss += loss.total;
    sum_recon += loss.reconstruction;
    sum_cb += loss.codebook;
    sum_commit += loss.commitment;
    ++logged_steps;

    const bool last = st.step == o.steps;
    const bool eval_now = last || (o.eval_every > 0 && st.step % o.eval_every == 0);
    const bool log_now = eval_now || (o.log_every > 0 && st.step % o.log_every == 0);
    if (eval_now) last_eval = evaluate(params, val, o.val_masks, K);
    if (log_now) {
      VaeTrainProgress p;
      p.step = st.step;
      p.total_steps = o.steps;
      p.loss = sum_loss / logged_steps;
      p.reconstruction = sum_recon / logged_steps;
      p.codebook_loss = sum_cb / logged_steps;
      p.commitment = sum_commit / logged_steps;
      p.perplexity = perplexity_of(log_counts, &p.codes_used);
      p.restarted = st.restarted;
      p.val_iou = eval_now ? last_eval.iou : -1.0;
      p.seconds = elapsed();
      p.seconds_per_step = p.seconds / static_cast<double>(st.step - start_step);
      p.eta_seconds = p.seconds_per_step * static_cast<double>(o.steps - st.step);
      summary.loss = p.loss;
      summary.reconstruction = p.reconstruction;
      if (progress) progress(p);
      sum_loss = sum_recon = sum_cb = sum_commit = 0;
      logged_steps = 0;
      std::fill(log_counts.begin(), log_counts.end(), 0);
    }
    if (last || (o.save_every > 0 && st.step % o.save_every == 0)) {
      st.scene = stream.scene();
      st.object = stream.object();
      write_vae(o.out_path, params, shape);
      write_state(state_path, o, st, params, opt);
    }
  }
  if (st.step == start_step) {  // resumed at its end: nothing to train, the result re-measured
    last_eval = evaluate(params, val, o.val_masks, K);
    write_vae(o.out_path, params, shape);
  }
  summary.steps = st.step;
  summary.start_step = start_step;
  summary.val_iou = last_eval.iou;
  summary.baseline_iou = last_eval.baseline;
  summary.codes_used = last_eval.codes_used;
  summary.perplexity = last_eval.perplexity;
  summary.seconds = elapsed();
  summary.seconds_per_step = st.step > start_step ? summary.seconds / static_cast<double>(st.step - start_step) : 0.0;
  summary.out_path = o.out_path;
  summary.state_path = state_path;
  summary.channels = o.channels;
  summary.code_dim = o.code_dim;
  summary.codebook = o.codebook;
  return summary;
}

}  // namespace pg
