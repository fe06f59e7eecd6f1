// The trainer's loss and gradients against PyTorch autograd on transformers' PaliGemma
// (tools/golden/make_grad_golden.py; fixtures in tests/fixtures/grad_golden/<model>/): the
// same checkpoint, the same two-example batch built by PaliGemmaProcessor with a suffix.
//   - our token sequences and prefix lengths equal the processor's input_ids / token_type_ids;
//   - losses: big_vision's reduction, transformers' reduction, and label smoothing 0.1;
//   - every parameter's gradient within 1e-4 of its tensor's largest value, against float64
//     autograd (transformers' own f32 autograd is off by up to ~3e-4 of it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "paligemma/checkpoint.h"
#include "paligemma/config.h"
#include "paligemma/image.h"
#include "paligemma/tokenizer.h"
#include "test_util.h"
#include "train/dataset.h"
#include "train/optimizer.h"
#include "train/paligemma_grad.h"
#include "train/parameters.h"

namespace {

using pg::train::LossOptions;
using pg::train::LossReduction;
using pg::train::TrainExample;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

struct Golden {
  std::string name;
  nlohmann::json meta;
  pg::MappedFile batch_file, grads_file;
  pg::SafetensorsFile batch, grads;
  std::map<std::string, const pg::TensorView*> batch_t, grads_t;
};

std::unique_ptr<Golden> load_golden(const std::string& model) {
  auto g = std::make_unique<Golden>();
  const std::string dir = pg::test::fixture("grad_golden/" + model);
  g->name = model;
  g->meta = read_json(dir + "/meta.json");
  g->batch_file = pg::MappedFile(dir + "/batch.safetensors");
  g->grads_file = pg::MappedFile(dir + "/grads.safetensors");
  g->batch = pg::parse_safetensors(dir + "/batch.safetensors", g->batch_file.data(), g->batch_file.size());
  g->grads = pg::parse_safetensors(dir + "/grads.safetensors", g->grads_file.data(), g->grads_file.size());
  for (const auto& t : g->batch.tensors) g->batch_t[t.name] = &t;
  for (const auto& t : g->grads.tensors) g->grads_t[t.name] = &t;
  return g;
}

const float* f32(const pg::TensorView& t) {
  EXPECT_EQ(t.dtype, pg::DType::F32) << t.name;
  return static_cast<const float*>(t.data);
}

class GradGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(GradGolden, SequencesLossesAndEveryGradient) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);  // exact f32 products (the bf16 mode rounds them)
  const std::string model = GetParam();
  const std::string mdir = pg::test::fixture("models/" + model);
  const auto golden = load_golden(model);
  const nlohmann::json& meta = golden->meta;
  const pg::Checkpoint ckpt = pg::Checkpoint::open(mdir);
  const pg::ModelConfig config = pg::load_model_config(mdir);
  const pg::Tokenizer tokenizer = pg::Tokenizer::load(mdir + "/tokenizer.model");
  const pg::train::Parameters params = pg::train::Parameters::from_checkpoint(ckpt);

  // The batch: our sequences must be the processor's (left padding removed).
  const int B = meta["batch_size"], n_img = meta["num_images_per_example"];
  const int S = config.vision.image_size;
  const size_t image_values = static_cast<size_t>(3) * S * S;
  const float* pixels = f32(*golden->batch_t.at("pixel_values"));
  std::vector<TrainExample> batch(B);
  for (int b = 0; b < B; ++b) {
    const auto& ex = meta["examples"][b];
    ASSERT_TRUE(pg::train::build_sequence(tokenizer, config, ex["prefix"], ex["suffix"], n_img, 0, &batch[b], nullptr));
    std::vector<int> want;
    int prefix = 0;
    for (size_t t = 0; t < meta["input_ids"][b].size(); ++t) {
      if (meta["attention_mask"][b][t] == 0) continue;
      want.push_back(meta["input_ids"][b][t]);
      prefix += meta["token_type_ids"][b][t] == 0;
    }
    EXPECT_EQ(batch[b].ids, want) << model << " example " << b;
    EXPECT_EQ(batch[b].prefix_len, prefix) << model << " example " << b;
    batch[b].pixels.assign(pixels + b * n_img * image_values, pixels + (b + 1) * n_img * image_values);
    // Our image preprocessing of the same photos gives the processor's pixel values.
    for (int i = 0; i < n_img; ++i) {
      const std::vector<float> ours =
          pg::preprocess_image(pg::load_image(pg::test::fixture("photos/" + ex["images"][i].get<std::string>())), S,
                               pg::ResizeFilter::PilBicubic);
      double worst = 0;
      for (size_t k = 0; k < image_values; ++k)
        worst = std::max(worst, std::fabs(static_cast<double>(ours[k]) - batch[b].pixels[i * image_values + k]));
      EXPECT_LT(worst, 1e-5) << model << " example " << b << " image " << i;
    }
  }

  LossOptions options;
  options.hf_sliding_window = true;  // the golden is transformers, sliding layers included
  options.final_logit_softcap = true;
  // Loss-only passes: transformers' reduction and label smoothing.
  LossOptions hf = options;
  hf.reduction = LossReduction::Token;
  EXPECT_NEAR(pg::train::loss_and_gradients(params, config, batch, hf, nullptr).loss, meta["loss_hf"].get<double>(),
              2e-4)
      << model;
  LossOptions smooth = options;
  smooth.label_smoothing = 0.1f;
  EXPECT_NEAR(pg::train::loss_and_gradients(params, config, batch, smooth, nullptr).loss,
              meta["loss_bv_ls"].get<double>(), 2e-4)
      << model;

  // big_vision's reduction with gradients.
  pg::train::Parameters grads = params.zeros_like();
  const auto result = pg::train::loss_and_gradients(params, config, batch, options, &grads);
  EXPECT_NEAR(result.loss, meta["loss_bv"].get<double>(), 2e-4) << model;
  for (int b = 0; b < B; ++b)
    EXPECT_NEAR(result.example_loss[b], meta["per_example_loss_bv"][b].get<double>(), 2e-4) << model << " " << b;

  std::map<std::string, std::string> canonical;  // stored name -> canonical name
  for (const std::string& n : ckpt.names()) canonical[ckpt.stored_name_of(n)] = n;
  const std::vector<int> row_ids = meta["grads"]["row_ids"].get<std::vector<int>>();
  int checked = 0;
  for (const auto& [stored_key, view] : golden->grads_t) {
    const bool rows = stored_key.size() > 5 && stored_key.substr(stored_key.size() - 5) == "@rows";
    const std::string stored = rows ? stored_key.substr(0, stored_key.size() - 5) : stored_key;
    ASSERT_TRUE(canonical.count(stored)) << "golden gradient of unknown tensor " << stored;
    const pg::train::Tensor& ours = grads.at(canonical[stored]);
    const float* want = f32(*view);
    const int64_t n = static_cast<int64_t>(view->numel());
    const int64_t width = rows ? ours.shape.back() : 0;
    if (rows) {
      ASSERT_EQ(n, static_cast<int64_t>(row_ids.size()) * width) << stored;
    } else {
      ASSERT_EQ(n, ours.numel()) << stored;
    }
    double scale = 0;
    for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
    // 1e-4 of the tensor's largest gradient; SigLIP's k_proj.bias has an exactly zero gradient
    // (softmax ignores a constant shift of the scores), so an absolute floor for it.
    const double tol = 1e-4 * scale + 1e-7;
    double worst = 0;
    int64_t worst_i = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float got = rows ? ours.data[static_cast<int64_t>(row_ids[i / width]) * width + i % width] : ours.data[i];
      const double err = std::fabs(static_cast<double>(got) - want[i]);
      if (err > worst) {
        worst = err;
        worst_i = i;
      }
    }
    EXPECT_LE(worst, tol) << model << " " << stored << (rows ? " (rows)" : "") << ": element " << worst_i << " off by "
                          << worst << ", " << worst / std::max(scale, 1e-30) << " of the largest gradient " << scale;
    ++checked;
  }
  // Every parameter of the checkpoint has a golden gradient.
  EXPECT_EQ(checked, static_cast<int>(ckpt.names().size())) << model;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GradGolden,
                         ::testing::Values("pg1_mqa", "pg1_untied_lm_head", "pg2_gqa_window", "pg2_qpas",
                                           "pg2_two_images"));

}  // namespace

// One optimizer step from the golden gradients (pg2_gqa_window): SGD, SGD after clipping,
// Adam with big_vision's decay (its "kernel" mask) and with torch.optim.AdamW's (matrices).
// The clipped variants get the golden gradients scaled by the golden clip factor (the full
// embedding gradient, needed for the global norm, is not stored); the norm itself is checked
// against our own full gradients.
TEST(GradGoldenOptimizer, OneStepOfEachVariant) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);  // exact f32 products (the bf16 mode rounds them)
  const std::string model = "pg2_gqa_window";
  const std::string mdir = pg::test::fixture("models/" + model);
  const std::string dir = pg::test::fixture("grad_golden/" + model);
  const nlohmann::json meta = read_json(dir + "/meta.json");
  const nlohmann::json& om = meta["optimizer"];
  const pg::Checkpoint ckpt = pg::Checkpoint::open(mdir);
  const pg::train::Parameters start = pg::train::Parameters::from_checkpoint(ckpt);
  std::map<std::string, std::string> canonical;
  for (const std::string& n : ckpt.names()) canonical[ckpt.stored_name_of(n)] = n;

  const auto golden = load_golden(model);
  pg::MappedFile optim_file(dir + "/optim.safetensors");
  const pg::SafetensorsFile optim =
      pg::parse_safetensors(dir + "/optim.safetensors", optim_file.data(), optim_file.size());
  std::map<std::string, const pg::TensorView*> after;
  for (const auto& t : optim.tensors) after[t.name] = &t;

  // The golden gradients as a Parameters (embedding rows outside the stored ones are 0).
  const std::vector<int> grad_rows = meta["grads"]["row_ids"].get<std::vector<int>>();
  pg::train::Parameters g = start.zeros_like();
  for (const auto& [key, view] : golden->grads_t) {
    const bool rows = key.size() > 5 && key.substr(key.size() - 5) == "@rows";
    pg::train::Tensor& t = g.at(canonical.at(rows ? key.substr(0, key.size() - 5) : key));
    const float* src = f32(*view);
    if (!rows) {
      std::copy_n(src, t.numel(), t.data.begin());
      continue;
    }
    const int64_t width = t.shape.back();
    for (size_t r = 0; r < grad_rows.size(); ++r)
      std::copy_n(src + r * width, width, t.data.begin() + static_cast<int64_t>(grad_rows[r]) * width);
  }

  const double clip_scale = om["clip"]["scale"];
  const std::vector<int> rows = om["row_ids"].get<std::vector<int>>();
  struct Variant {
    const char* name;
    pg::train::OptimizerConfig config;
    bool clipped;
  };
  pg::train::OptimizerConfig sgd;
  sgd.kind = pg::train::OptimizerKind::Sgd;
  sgd.lr = 0.1;
  pg::train::OptimizerConfig adam_bv;
  adam_bv.lr = 1e-3;
  adam_bv.weight_decay = 0.1;
  adam_bv.decay_style = pg::train::DecayStyle::BigVision;
  adam_bv.decay_mask = pg::train::DecayMask::BigVisionKernels;
  pg::train::OptimizerConfig adam_torch = adam_bv;
  adam_torch.decay_style = pg::train::DecayStyle::Torch;
  adam_torch.decay_mask = pg::train::DecayMask::Matrices;
  const Variant variants[] = {{"sgd", sgd, false},
                              {"sgd_clip", sgd, true},
                              {"adamw_bv_clip", adam_bv, true},
                              {"adamw_torch_clip", adam_torch, true}};
  std::vector<std::string> all;
  for (const auto& [n, t] : start.tensors()) all.push_back(n);
  for (const Variant& v : variants) {
    pg::train::Parameters p = start;
    pg::train::Parameters grads = g;
    if (v.clipped)
      for (auto& [n, t] : grads.tensors())
        for (float& x : t.data) x = static_cast<float>(x * clip_scale);
    pg::train::Optimizer opt(v.config, p, all);
    opt.step(p, grads, 1.0);
    int compared = 0;
    for (const auto& [key, view] : after) {
      const std::string prefix = std::string(v.name) + "/";
      if (key.rfind(prefix, 0) != 0) continue;
      std::string stored = key.substr(prefix.size());
      const bool is_rows = stored.size() > 5 && stored.substr(stored.size() - 5) == "@rows";
      if (is_rows) stored = stored.substr(0, stored.size() - 5);
      const pg::train::Tensor& ours = p.at(canonical.at(stored));
      const float* want = f32(*view);
      const int64_t width = ours.shape.back();
      const int64_t n = static_cast<int64_t>(view->numel());
      for (int64_t i = 0; i < n; ++i) {
        const float got = is_rows ? ours.data[static_cast<int64_t>(rows[i / width]) * width + i % width] : ours.data[i];
        ASSERT_NEAR(got, want[i], 2e-7 + 2e-6 * std::fabs(want[i])) << v.name << " " << stored << " element " << i;
      }
      ++compared;
    }
    EXPECT_EQ(compared, static_cast<int>(om["tensors"].size())) << v.name;
  }

  // The global norm that sets the clip factor, from our own full gradients.
  const pg::Tokenizer tokenizer = pg::Tokenizer::load(mdir + "/tokenizer.model");
  const pg::ModelConfig config = pg::load_model_config(mdir);
  std::vector<TrainExample> batch(meta["batch_size"].get<int>());
  const float* pixels = f32(*golden->batch_t.at("pixel_values"));
  const size_t image_values = static_cast<size_t>(3) * config.vision.image_size * config.vision.image_size;
  for (size_t b = 0; b < batch.size(); ++b) {
    const auto& ex = meta["examples"][b];
    ASSERT_TRUE(pg::train::build_sequence(tokenizer, config, ex["prefix"], ex["suffix"], 1, 0, &batch[b], nullptr));
    batch[b].pixels.assign(pixels + b * image_values, pixels + (b + 1) * image_values);
  }
  LossOptions options;
  options.hf_sliding_window = true;
  pg::train::Parameters ours = start.zeros_like();
  pg::train::loss_and_gradients(start, config, batch, options, &ours);
  const double norm = om["global_norm"];
  EXPECT_NEAR(pg::train::global_norm(ours), norm, 1e-5 * norm);
  EXPECT_NEAR(pg::train::clip_by_global_norm(ours, 1.0), norm, 1e-5 * norm);
  EXPECT_NEAR(pg::train::global_norm(ours), 1.0, 1e-5) << "clipped to max_norm";
}

TEST(TrainSchedule, BigVisionShapes) {
  pg::train::Schedule s;
  s.kind = pg::train::ScheduleKind::Cosine;
  s.total_steps = 100;
  s.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(s.factor(0), 0.0);
  EXPECT_DOUBLE_EQ(s.factor(5), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(10), 1.0);
  EXPECT_NEAR(s.factor(55), 0.5, 1e-12);  // halfway through the decay
  EXPECT_NEAR(s.factor(100), 0.0, 1e-12);
  s.kind = pg::train::ScheduleKind::Constant;
  EXPECT_DOUBLE_EQ(s.factor(3), 0.3);
  EXPECT_DOUBLE_EQ(s.factor(70), 1.0);
  s.kind = pg::train::ScheduleKind::Rsqrt;
  s.timescale = 10;
  EXPECT_DOUBLE_EQ(s.factor(10), 1.0);
  EXPECT_NEAR(s.factor(40), 1.0 / 2.0, 1e-12);  // sqrt((40 + 10 - 10) / 10) = 2
}

TEST(TrainOptimizer, ClipOnlyAboveTheNormAndDecayMasks) {
  pg::train::Parameters g;
  pg::train::Tensor t;
  t.shape = {2};
  t.data = {3.0f, 4.0f};
  g.add("x", t);
  EXPECT_DOUBLE_EQ(pg::train::clip_by_global_norm(g, 10.0), 5.0);
  EXPECT_FLOAT_EQ(g.at("x").data[1], 4.0f) << "below max_norm: unchanged";
  EXPECT_DOUBLE_EQ(pg::train::clip_by_global_norm(g, 1.0), 5.0);
  EXPECT_FLOAT_EQ(g.at("x").data[0], 0.6f);
  pg::train::Tensor m;
  m.shape = {2, 2};
  m.data.assign(4, 1.0f);
  using pg::train::DecayMask;
  EXPECT_TRUE(pg::train::decays(DecayMask::Matrices, "language_model.model.layers.0.mlp.up_proj.weight", m));
  EXPECT_FALSE(pg::train::decays(DecayMask::Matrices, "language_model.model.norm.weight", t));
  EXPECT_FALSE(pg::train::decays(DecayMask::BigVisionKernels, "language_model.model.layers.0.mlp.up_proj.weight", m));
  EXPECT_TRUE(pg::train::decays(DecayMask::BigVisionKernels,
                                "vision_tower.vision_model.encoder.layers.3.self_attn.out_proj.weight", m));
  EXPECT_TRUE(pg::train::decays(DecayMask::BigVisionKernels, "multi_modal_projector.linear.weight", m));
  EXPECT_FALSE(pg::train::decays(DecayMask::BigVisionKernels,
                                 "vision_tower.vision_model.embeddings.position_embedding.weight", m));
}

// Dropout at the model level: p = 0 is the plain model; a seed replays; the gradient with a
// fixed mask agrees with central differences of the same (deterministic) loss on the
// largest-gradient entries of a few tensors (float: the entries are chosen so that the
// difference quotient is accurate to ~1%; a missing 1/(1-p) is 100% off at p = 0.5).
TEST(TrainDropout, ReplaysAndDifferentiates) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  const std::string mdir = pg::test::fixture("models/pg2_gqa_window");
  const pg::Checkpoint ckpt = pg::Checkpoint::open(mdir);
  const pg::ModelConfig config = pg::load_model_config(mdir);
  const pg::Tokenizer tok = pg::Tokenizer::load(mdir + "/tokenizer.model");
  pg::train::Parameters params = pg::train::Parameters::from_checkpoint(ckpt);
  std::vector<TrainExample> batch(1);
  ASSERT_TRUE(pg::train::build_sequence(tok, config, "caption en", "a cat on a sofa", 1, 0, &batch[0], nullptr));
  batch[0].pixels = pg::preprocess_image(pg::load_image(pg::test::fixture("photos/chelsea.png")),
                                         config.vision.image_size, pg::ResizeFilter::PilBicubic);
  LossOptions plain;
  LossOptions drop = plain;
  drop.dropout = 0.5f;
  drop.dropout_seed = 9;
  const double l0 = pg::train::loss_and_gradients(params, config, batch, plain, nullptr).loss;
  LossOptions zero = plain;
  zero.dropout_seed = 9;
  EXPECT_EQ(pg::train::loss_and_gradients(params, config, batch, zero, nullptr).loss, l0);
  const double l1 = pg::train::loss_and_gradients(params, config, batch, drop, nullptr).loss;
  EXPECT_EQ(pg::train::loss_and_gradients(params, config, batch, drop, nullptr).loss, l1) << "same seed, same masks";
  EXPECT_NE(l1, l0);
  LossOptions other = drop;
  other.dropout_seed = 10;
  EXPECT_NE(pg::train::loss_and_gradients(params, config, batch, other, nullptr).loss, l1);

  pg::train::Parameters g = params.zeros_like();
  pg::train::loss_and_gradients(params, config, batch, drop, &g);
  for (const std::string name :
       {"language_model.model.layers.1.mlp.down_proj.weight", "language_model.model.layers.2.self_attn.o_proj.weight",
        "language_model.model.layers.0.self_attn.q_proj.weight"}) {
    std::vector<float>& w = params.at(name).data;
    const std::vector<float>& gw = g.at(name).data;
    const size_t i =
        std::max_element(gw.begin(), gw.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }) -
        gw.begin();
    const float saved = w[i], h = 2e-3f;
    w[i] = saved + h;
    const double up = pg::train::loss_and_gradients(params, config, batch, drop, nullptr).loss;
    w[i] = saved - h;
    const double down = pg::train::loss_and_gradients(params, config, batch, drop, nullptr).loss;
    w[i] = saved;
    const double numeric = (up - down) / (2.0 * h);
    EXPECT_NEAR(gw[i], numeric, 0.02 * std::fabs(numeric) + 1e-3) << name << "[" << i << "]";
  }
}
