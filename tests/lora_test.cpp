// LoRA: the adapters' gradients follow exactly from the (golden-checked) weight gradients,
// W_eff = W + s B A  =>  dL/dB = s G A^T, dL/dA = s B^T G with G = dL/dW_eff; PEFT files round
// trip with PEFT's key names; `run --lora` (unmerged) equals the merged checkpoint; the
// trainer trains only the adapters.
#include "train/lora.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "paligemma/checkpoint.h"
#include "paligemma/config.h"
#include "paligemma/generate.h"
#include "paligemma/image.h"
#include "paligemma/model.h"
#include "paligemma/quantize.h"
#include "paligemma/tokenizer.h"
#include "test_util.h"
#include "train/checkpoint_io.h"
#include "train/dataset.h"
#include "train/paligemma_grad.h"
#include "train/trainer.h"

namespace {

namespace fs = std::filesystem;

struct Fixture {
  std::string dir = pg::test::fixture("models/pg2_gqa_window");
  pg::Checkpoint ckpt = pg::Checkpoint::open(dir);
  pg::ModelConfig config = pg::load_model_config(dir);
  pg::train::Parameters base = pg::train::Parameters::from_checkpoint(ckpt);
};

std::vector<pg::train::TrainExample> two_examples(const Fixture& f) {
  const pg::Tokenizer tok = pg::Tokenizer::load(f.dir + "/tokenizer.model");
  std::vector<pg::train::TrainExample> batch(2);
  const char* photos[] = {"chelsea.png", "rocket.jpg"};
  const char* suffixes[] = {"a cat", "<loc0010><loc0020><loc0900><loc0990> rocket"};
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(pg::train::build_sequence(tok, f.config, "caption en", suffixes[i], 1, 0, &batch[i], nullptr));
    batch[i].pixels = pg::preprocess_image(pg::load_image(pg::test::fixture(std::string("photos/") + photos[i])),
                                           f.config.vision.image_size, pg::ResizeFilter::PilBicubic);
  }
  return batch;
}

// Every tensor of `got` within 1e-4 of the largest value of the same tensor in `want`.
void expect_gradients_close(const pg::train::Parameters& want, const pg::train::Parameters& got) {
  for (const auto& [name, t] : want.tensors()) {
    double scale = 0, worst = 0;
    for (float v : t.data) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    const auto& other = got.at(name).data;
    for (size_t i = 0; i < t.data.size(); ++i)
      worst = std::max(worst, static_cast<double>(std::fabs(t.data[i] - other[i])));
    EXPECT_LE(worst, 1e-4 * scale + 1e-9) << name;
  }
}

// Adapters with B random too (fresh ones have B = 0, which would make dA vanish).
pg::train::LoraAdapters random_adapters(const pg::train::Parameters& base, bool vision) {
  pg::train::LoraConfig c;
  c.rank = 3;
  c.alpha = 6;
  c.vision = vision;
  c.seed = 11;
  pg::train::LoraAdapters lora = pg::train::init_lora(base, c);
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 0.05f);
  for (auto& [name, t] : lora.tensors.tensors())
    if (name.find("@lora_B") != std::string::npos)
      for (float& v : t.data) v = d(rng);
  return lora;
}

TEST(Lora, TargetsAndInit) {
  const Fixture f;
  pg::train::LoraConfig c;
  const auto text_only = pg::train::lora_target_weights(f.base, c);
  EXPECT_EQ(text_only.size(), 7u * f.config.text.num_layers);
  c.vision = true;
  EXPECT_EQ(pg::train::lora_target_weights(f.base, c).size(),
            7u * f.config.text.num_layers + 6u * f.config.vision.num_layers);
  c.targets = {"q_proj", "v_proj"};
  c.vision = false;
  const pg::train::LoraAdapters lora = pg::train::init_lora(f.base, c);
  EXPECT_EQ(lora.tensors.tensors().size(), 2u * 2 * f.config.text.num_layers);
  const std::string w = "language_model.model.layers.1.self_attn.q_proj.weight";
  const auto& a = lora.tensors.at(w + "@lora_A");
  const auto& b = lora.tensors.at(w + "@lora_B");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{8, f.base.at(w).shape[1]}));
  EXPECT_EQ(b.shape, (std::vector<int64_t>{f.base.at(w).shape[0], 8}));
  const float bound = 1.0f / std::sqrt(static_cast<float>(a.shape[1]));
  for (float v : a.data) EXPECT_LE(std::fabs(v), bound);
  for (float v : b.data) EXPECT_EQ(v, 0.0f) << "B starts at zero: training starts from the base model";
  c.targets = {"nothing"};
  EXPECT_NE(pg::test::error_of([&] { pg::train::init_lora(f.base, c); }).find("no weight"), std::string::npos);
}

TEST(Lora, GradientsFollowFromTheWeightGradients) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  const Fixture f;
  const auto batch = two_examples(f);
  const pg::train::LoraAdapters lora = random_adapters(f.base, true);
  pg::train::LossOptions o;
  // Full gradients at the merged weights.
  pg::train::Parameters merged = f.base;
  pg::train::merge_lora(lora, merged);
  pg::train::Parameters g = merged.zeros_like();
  const double loss_merged = pg::train::loss_and_gradients(merged, f.config, batch, o, &g).loss;
  // The adapters' gradients on the unmerged base.
  pg::train::Parameters lg = lora.tensors.zeros_like();
  const double loss_lora = pg::train::loss_and_gradients(f.base, f.config, batch, o, nullptr, &lora, &lg).loss;
  EXPECT_NEAR(loss_lora, loss_merged, 1e-5 * std::fabs(loss_merged));
  const double s = lora.config.scale();
  const int r = lora.config.rank;
  int checked = 0;
  for (const auto& [key, t] : lora.tensors.tensors()) {
    if (key.find("@lora_A") == std::string::npos) continue;
    const std::string w = key.substr(0, key.size() - 7);
    const int64_t out = f.base.at(w).shape[0], in = f.base.at(w).shape[1];
    const float* G = g.data(w);
    const float* A = lora.a(w);
    const float* B = lora.b(w);
    std::vector<double> dA(r * in, 0.0), dB(out * r, 0.0);
    double ga = 0, gb = 0;
    for (int64_t o2 = 0; o2 < out; ++o2)
      for (int64_t i = 0; i < in; ++i)
        for (int k = 0; k < r; ++k) {
          dB[o2 * r + k] += s * G[o2 * in + i] * A[k * in + i];
          dA[k * in + i] += s * B[o2 * r + k] * G[o2 * in + i];
        }
    for (double v : dA) ga = std::max(ga, std::fabs(v));
    for (double v : dB) gb = std::max(gb, std::fabs(v));
    const float* gotA = lg.data(w + "@lora_A");
    const float* gotB = lg.data(w + "@lora_B");
    for (size_t i = 0; i < dA.size(); ++i) ASSERT_NEAR(gotA[i], dA[i], 1e-4 * ga + 1e-9) << w << " lora_A " << i;
    for (size_t i = 0; i < dB.size(); ++i) ASSERT_NEAR(gotB[i], dB[i], 1e-4 * gb + 1e-9) << w << " lora_B " << i;
    ++checked;
  }
  EXPECT_EQ(checked, 7 * f.config.text.num_layers + 6 * f.config.vision.num_layers);
}

TEST(Lora, PeftFilesRoundTripAndRunWithoutMerging) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  const Fixture f;
  pg::test::TempDir dir;
  const pg::train::LoraAdapters lora = random_adapters(f.base, true);
  pg::train::save_peft(lora, f.dir, dir.file("adapter"));
  // PEFT's names and config.
  pg::MappedFile file(dir.file("adapter/adapter_model.safetensors"));
  const pg::SafetensorsFile st = pg::parse_safetensors("adapter", file.data(), file.size());
  bool found = false;
  for (const auto& t : st.tensors)
    found |= t.name == "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight";
  EXPECT_TRUE(found);
  std::ifstream in(dir.file("adapter/adapter_config.json"));
  const nlohmann::json cfg = nlohmann::json::parse(in);
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 3);
  EXPECT_EQ(cfg["lora_alpha"], 6.0);
  const pg::train::LoraAdapters back = pg::train::load_peft(dir.file("adapter"), f.base);
  ASSERT_EQ(back.tensors.tensors().size(), lora.tensors.tensors().size());
  for (const auto& [name, t] : lora.tensors.tensors()) EXPECT_EQ(back.tensors.at(name).data, t.data) << name;

  // The unmerged adapter at inference equals the merged checkpoint.
  pg::train::Parameters merged = f.base;
  pg::train::merge_lora(lora, merged);
  pg::train::export_hf_checkpoint(merged, f.ckpt, pg::DType::F32, dir.file("merged"));
  pg::ModelOptions with_lora;
  with_lora.lora_dir = dir.file("adapter");
  auto a = pg::Model::load(f.dir, with_lora);
  auto b = pg::Model::load(dir.file("merged"));
  pg::GenerationOptions g;
  g.max_new_tokens = 6;
  g.stop_at_eos = false;
  g.keep_step_logits = true;
  pg::Request r;
  r.pixels.push_back(pg::preprocess_image(pg::load_image(pg::test::fixture("photos/chelsea.png")),
                                          f.config.vision.image_size, pg::ResizeFilter::PilBicubic));
  r.prompt = "caption en";
  const auto ra = pg::generate(*a, {r}, g)[0];
  const auto rb = pg::generate(*b, {r}, g)[0];
  EXPECT_EQ(ra.tokens, rb.tokens);
  ASSERT_EQ(ra.step_logits.size(), rb.step_logits.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < ra.step_logits.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::fabs(ra.step_logits[i] - rb.step_logits[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(rb.step_logits[i])));
  }
  EXPECT_LT(worst, 1e-4 * scale);
  // Without the adapter the answer's logits differ (the adapter does something).
  auto base_model = pg::Model::load(f.dir);
  const auto rc = pg::generate(*base_model, {r}, g)[0];
  double diff = 0;
  for (size_t i = 0; i < std::min(rc.step_logits.size(), rb.step_logits.size()); ++i)
    diff = std::max(diff, static_cast<double>(std::fabs(rc.step_logits[i] - rb.step_logits[i])));
  EXPECT_GT(diff, 1e-3 * scale);
}

TEST(Lora, BadAdaptersAreRefused) {
  const Fixture f;
  pg::test::TempDir dir;
  EXPECT_NE(pg::test::error_of([&] { pg::train::load_peft(dir.path(), f.base); }).find("adapter_config.json"),
            std::string::npos);
  pg::train::LoraConfig c;
  c.rank = 4;
  pg::train::save_peft(pg::train::init_lora(f.base, c), f.dir, dir.file("a"));
  // A rank that disagrees with the tensors.
  std::ifstream in(dir.file("a/adapter_config.json"));
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["r"] = 5;
  std::ofstream(dir.file("a/adapter_config.json")) << cfg.dump();
  const std::string err = pg::test::error_of([&] { pg::train::load_peft(dir.file("a"), f.base); });
  EXPECT_NE(err.find("expected"), std::string::npos) << err;
  // A module the model does not have.
  pg::ModelOptions o;
  o.lora_dir = dir.file("missing");
  EXPECT_NE(pg::test::error_of([&] { pg::Model::load(f.dir, o); }).find("adapter_config.json"), std::string::npos);
}

TEST(Lora, TrainerTrainsOnlyTheAdapters) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  const Fixture f;
  pg::test::TempDir dir;
  fs::copy_file(pg::test::fixture("photos/chelsea.png"), dir.file("chelsea.png"));
  std::ofstream(dir.file("train.jsonl")) << R"({"image": "chelsea.png", "prefix": "caption en", "suffix": "a cat"})"
                                         << "\n";
  pg::train::TrainerConfig c;
  c.model_dir = f.dir;
  c.train_path = dir.file("train.jsonl");
  c.out_dir = dir.file("run");
  c.batch_size = 1;
  c.max_steps = 30;
  c.optimizer.lr = 1e-2;
  c.schedule = pg::train::ScheduleKind::Constant;
  c.warmup_fraction = 0;
  c.trainable = pg::train::TrainableSet::Lora;
  c.lora.rank = 8;
  c.export_merged = true;
  c.export_dtype = pg::DType::F32;
  c.quiet = true;
  const auto s = pg::train::run_finetune(c);
  EXPECT_LT(s.history.back().loss, 0.5 * s.history.front().loss);
  EXPECT_TRUE(fs::exists(dir.file("run/adapter/adapter_model.safetensors")));
  EXPECT_TRUE(fs::exists(dir.file("run/model/model.safetensors")));
  const pg::train::Parameters state = pg::train::load_parameters(dir.file("run/state/params.safetensors"));
  for (const auto& [name, t] : state.tensors()) EXPECT_NE(name.find("@lora_"), std::string::npos) << name;
}

}  // namespace

namespace {

// The frozen base read in place (views into the mapped checkpoint, multiplied by the
// kernels) gives the adapters the same loss and gradients as an f32 copy of it.
TEST(Lora, FrozenBaseInPlaceMatchesACopy) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  const Fixture f;
  const auto batch = two_examples(f);
  const pg::train::Parameters views = pg::train::Parameters::from_checkpoint(
      f.ckpt, [](const std::string& n) { return n.find("position_embedding") == std::string::npos; });
  EXPECT_EQ(views.views().size(), 6u * f.config.vision.num_layers + 7u * f.config.text.num_layers + 2)
      << "every linear, the projector and the embedding";
  EXPECT_LT(views.total_numel(), f.base.total_numel() / 10) << "only small tensors are copied";
  const pg::train::LoraAdapters lora = random_adapters(f.base, true);
  pg::train::LossOptions o;
  pg::train::Parameters g_copy = lora.tensors.zeros_like(), g_view = lora.tensors.zeros_like();
  const double l_copy = pg::train::loss_and_gradients(f.base, f.config, batch, o, nullptr, &lora, &g_copy).loss;
  const double l_view = pg::train::loss_and_gradients(views, f.config, batch, o, nullptr, &lora, &g_view).loss;
  EXPECT_NEAR(l_view, l_copy, 1e-5 * std::fabs(l_copy));
  expect_gradients_close(g_copy, g_view);
  // Merging materialises only the adapted weights.
  pg::train::Parameters merged = views;
  pg::train::merge_lora(lora, merged);
  EXPECT_LT(merged.views().size(), views.views().size());
}

}  // namespace

namespace {

// QLoRA: a quantised base (int8 here, q4 in the trainer run) is a frozen view; the adapters
// get the loss and gradients of an f32 copy of the same dequantised weights.
TEST(Lora, QuantisedBaseMatchesItsDequantisedCopy) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  const Fixture f;
  pg::test::TempDir dir;
  pg::QuantizeOptions q;
  q.text = q.vision = q.embedding = pg::QuantType::Int8;
  pg::quantize_checkpoint(f.dir, dir.file("int8"), q);
  const pg::Checkpoint qckpt = pg::Checkpoint::open(dir.file("int8"));
  auto frozen = [](const std::string& n) { return n.find("position_embedding") == std::string::npos; };
  const pg::train::Parameters qbase = pg::train::Parameters::from_checkpoint(qckpt, f.config, frozen);
  int quantised = 0;
  for (const auto& [name, v] : qbase.views()) quantised += v.format == pg::kernels::WeightFormat::Int8;
  EXPECT_EQ(quantised, 6 * f.config.vision.num_layers + 7 * f.config.text.num_layers + 2);
  pg::train::Parameters copy = qbase;
  for (const std::string& name : qbase.names())
    if (qbase.view(name)) copy.materialize(name);
  EXPECT_TRUE(copy.views().empty());
  const auto batch = two_examples(f);
  const pg::train::LoraAdapters lora = random_adapters(f.base, false);
  pg::train::LossOptions o;
  pg::train::Parameters g_view = lora.tensors.zeros_like(), g_copy = lora.tensors.zeros_like();
  const double l_view = pg::train::loss_and_gradients(qbase, f.config, batch, o, nullptr, &lora, &g_view).loss;
  const double l_copy = pg::train::loss_and_gradients(copy, f.config, batch, o, nullptr, &lora, &g_copy).loss;
  EXPECT_NEAR(l_view, l_copy, 1e-5 * std::fabs(l_copy));
  expect_gradients_close(g_copy, g_view);
  // A quantised matrix cannot itself train.
  EXPECT_NE(pg::test::error_of([&] {
              pg::train::Parameters::from_checkpoint(qckpt, f.config, [](const std::string&) { return false; });
            }).find("cannot train"),
            std::string::npos);
}

TEST(Lora, TrainsOnAQ4BaseAndRunsUnmerged) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  const Fixture f;
  pg::test::TempDir dir;
  pg::QuantizeOptions q;
  q.text = q.vision = q.embedding = pg::QuantType::Q4;
  pg::quantize_checkpoint(f.dir, dir.file("q4"), q);
  fs::copy_file(pg::test::fixture("photos/chelsea.png"), dir.file("chelsea.png"));
  std::ofstream(dir.file("train.jsonl")) << R"({"image": "chelsea.png", "prefix": "caption en", "suffix": "a cat"})"
                                         << "\n";
  pg::train::TrainerConfig c;
  c.model_dir = dir.file("q4");
  c.train_path = dir.file("train.jsonl");
  c.out_dir = dir.file("run");
  c.batch_size = 1;
  c.max_steps = 20;
  c.optimizer.lr = 1e-2;
  c.schedule = pg::train::ScheduleKind::Constant;
  c.warmup_fraction = 0;
  c.trainable = pg::train::TrainableSet::Lora;
  c.quiet = true;
  const auto s = pg::train::run_finetune(c);
  EXPECT_LT(s.history.back().loss, 0.5 * s.history.front().loss);
  pg::ModelOptions mo;
  mo.lora_dir = dir.file("run/adapter");
  auto model = pg::Model::load(dir.file("q4"), mo);
  pg::Request r;
  r.pixels.push_back(pg::preprocess_image(pg::load_image(dir.file("chelsea.png")), f.config.vision.image_size,
                                          pg::ResizeFilter::PilBicubic));
  r.prompt = "caption en";
  pg::GenerationOptions g;
  g.max_new_tokens = 8;
  EXPECT_EQ(pg::generate(*model, {r}, g)[0].text, "a cat") << "the adapter learned the answer on the q4 base";
  // Full fine-tuning of a quantised checkpoint is refused with a clear message.
  c.trainable = pg::train::TrainableSet::Full;
  c.out_dir = dir.file("full");
  EXPECT_NE(pg::test::error_of([&] { pg::train::run_finetune(c); }).find("cannot train"), std::string::npos);
}

}  // namespace

// LoRA dropout (PEFT's lora_dropout): only the adapter's input is dropped, so with B = 0 the
// loss is the base model's whatever the masks; a seed replays its masks; and the gradient
// with fixed masks agrees with central differences of the same loss, for decoder adapters
// and for vision adapters, whose gradient reaches them through every decoder adapter's
// dropout backward (a missing mask or 1 / (1 - p) there is tens of percent off).
TEST(Lora, DropoutOnTheAdapterInputs) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  const Fixture f;
  const auto batch = two_examples(f);
  pg::train::LossOptions plain;
  pg::train::LossOptions drop = plain;
  drop.lora_dropout = 0.5f;
  drop.dropout_seed = 3;

  pg::train::LoraConfig fresh_config;
  fresh_config.vision = true;
  const pg::train::LoraAdapters fresh = pg::train::init_lora(f.base, fresh_config);
  const double base_loss = pg::train::loss_and_gradients(f.base, f.config, batch, plain, nullptr).loss;
  EXPECT_EQ(pg::train::loss_and_gradients(f.base, f.config, batch, drop, nullptr, &fresh).loss, base_loss)
      << "B = 0: the frozen path must not see the dropout";

  pg::train::LoraAdapters lora = random_adapters(f.base, true);
  const double l0 = pg::train::loss_and_gradients(f.base, f.config, batch, plain, nullptr, &lora).loss;
  const double l1 = pg::train::loss_and_gradients(f.base, f.config, batch, drop, nullptr, &lora).loss;
  EXPECT_NE(l1, l0);
  EXPECT_EQ(pg::train::loss_and_gradients(f.base, f.config, batch, drop, nullptr, &lora).loss, l1) << "replay";
  pg::train::LossOptions other = drop;
  other.dropout_seed = 4;
  EXPECT_NE(pg::train::loss_and_gradients(f.base, f.config, batch, other, nullptr, &lora).loss, l1);

  pg::train::Parameters lg = lora.tensors.zeros_like();
  pg::train::loss_and_gradients(f.base, f.config, batch, drop, nullptr, &lora, &lg);
  int checked = 0;
  for (const std::string w : {"language_model.model.layers.1.mlp.down_proj.weight",
                              "language_model.model.layers.0.self_attn.q_proj.weight",
                              "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight"})
    for (const char* part : {"@lora_A", "@lora_B"}) {
      std::vector<float>& p = lora.tensors.at(w + part).data;
      const std::vector<float>& gp = lg.at(w + part).data;
      const size_t i =
          std::max_element(gp.begin(), gp.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }) -
          gp.begin();
      const float saved = p[i], h = 2e-3f;
      p[i] = saved + h;
      const double up = pg::train::loss_and_gradients(f.base, f.config, batch, drop, nullptr, &lora).loss;
      p[i] = saved - h;
      const double down = pg::train::loss_and_gradients(f.base, f.config, batch, drop, nullptr, &lora).loss;
      p[i] = saved;
      const double numeric = (up - down) / (2.0 * h);
      EXPECT_NEAR(gp[i], numeric, 0.02 * std::fabs(numeric) + 1e-4) << w << part << "[" << i << "]";
      ++checked;
    }
  EXPECT_EQ(checked, 6);
}

// Gradient checkpointing recomputes each layer from its saved input in the backward: the
// loss and every gradient are bit for bit those of the run that saved everything, with
// residual dropout and LoRA dropout (their masks regenerated), for Gemma 1 and Gemma 2, full
// fine-tuning and LoRA on the vision tower too.
TEST(Lora, GradientCheckpointingGivesTheSameGradients) {
  pg::test::BackendGuard guard;
  for (const char* model : {"models/pg2_gqa_window", "models/pg1_mqa"}) {
    Fixture f;
    f.dir = pg::test::fixture(model);
    f.ckpt = pg::Checkpoint::open(f.dir);
    f.config = pg::load_model_config(f.dir);
    f.base = pg::train::Parameters::from_checkpoint(f.ckpt);
    const auto batch = two_examples(f);
    pg::train::LossOptions saved;
    saved.dropout = 0.2f;
    saved.lora_dropout = 0.3f;
    saved.dropout_seed = 8;
    pg::train::LossOptions recomputed = saved;
    recomputed.checkpoint_layers = true;

    pg::train::Parameters g1 = f.base.zeros_like(), g2 = f.base.zeros_like();
    const double l1 = pg::train::loss_and_gradients(f.base, f.config, batch, saved, &g1).loss;
    const double l2 = pg::train::loss_and_gradients(f.base, f.config, batch, recomputed, &g2).loss;
    EXPECT_EQ(l1, l2) << model;
    for (const auto& [name, t] : g1.tensors()) EXPECT_EQ(t.data, g2.at(name).data) << model << " " << name;

    const pg::train::LoraAdapters lora = random_adapters(f.base, true);
    pg::train::Parameters a1 = lora.tensors.zeros_like(), a2 = lora.tensors.zeros_like();
    EXPECT_EQ(pg::train::loss_and_gradients(f.base, f.config, batch, saved, nullptr, &lora, &a1).loss,
              pg::train::loss_and_gradients(f.base, f.config, batch, recomputed, nullptr, &lora, &a2).loss);
    for (const auto& [name, t] : a1.tensors()) EXPECT_EQ(t.data, a2.at(name).data) << model << " " << name;
  }
}

// The images of a batch share one vision-tower pass (LossOptions::vision_group_bytes); a
// budget of one byte gives one example per pass. Both must give the same loss and gradients
// up to float summation order, with LoRA dropout on the vision adapters: each image draws its
// masks from its own stream whichever pass it is in (one stream per pass would differ by the
// masks, i.e. by tens of percent), for one and for two images per example.
TEST(Lora, VisionGroupsGiveTheSameGradientsAsOneExampleAtATime) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  for (const char* model : {"models/pg2_gqa_window", "models/pg2_two_images"}) {
    Fixture f;
    f.dir = pg::test::fixture(model);
    f.ckpt = pg::Checkpoint::open(f.dir);
    f.config = pg::load_model_config(f.dir);
    f.base = pg::train::Parameters::from_checkpoint(f.ckpt);
    // One image per example, then two (the photos in both orders).
    std::vector<pg::train::TrainExample> batch = two_examples(f);
    if (std::string(model).find("two_images") != std::string::npos) {
      const pg::Tokenizer tok = pg::Tokenizer::load(f.dir + "/tokenizer.model");
      const std::vector<pg::train::TrainExample> single = batch;
      for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(pg::train::build_sequence(tok, f.config, "caption en", "two photos", 2, 0, &batch[i], nullptr));
        batch[i].pixels = single[i].pixels;
        batch[i].pixels.insert(batch[i].pixels.end(), single[1 - i].pixels.begin(), single[1 - i].pixels.end());
      }
    }
    pg::train::LossOptions grouped;
    grouped.lora_dropout = 0.3f;
    grouped.dropout_seed = 5;
    pg::train::LossOptions alone = grouped;
    alone.vision_group_bytes = 1;
    const pg::train::LoraAdapters lora = random_adapters(f.base, true);
    pg::train::Parameters a1 = lora.tensors.zeros_like(), a2 = lora.tensors.zeros_like();
    const double l1 = pg::train::loss_and_gradients(f.base, f.config, batch, grouped, nullptr, &lora, &a1).loss;
    const double l2 = pg::train::loss_and_gradients(f.base, f.config, batch, alone, nullptr, &lora, &a2).loss;
    EXPECT_NEAR(l1, l2, 1e-5 * std::fabs(l1)) << model;
    expect_gradients_close(a1, a2);
  }
}

// Mixed precision (the default bf16 mode on CPUs with bf16 products): the trained f32 master
// weights enter the forward and input-gradient products rounded to bf16, like frozen ones.
// Gradients then agree with the exact f32 ones to bf16's few digits (a transposed or
// misplaced product would be off by 100%), and the loss to well under a percent.
TEST(Lora, MixedPrecisionGradientsFollowTheF32Ones) {
  pg::test::BackendGuard guard;
  if (!pg::bf16_supported(pg::kernel_path())) GTEST_SKIP() << "no bf16 products on this CPU";
  const Fixture f;
  const auto batch = two_examples(f);
  pg::train::LossOptions o;
  pg::train::Parameters exact = f.base.zeros_like(), mixed = f.base.zeros_like();
  pg::set_precision(pg::Precision::F32);
  const double l32 = pg::train::loss_and_gradients(f.base, f.config, batch, o, &exact).loss;
  pg::set_precision(pg::Precision::BF16);
  const double l16 = pg::train::loss_and_gradients(f.base, f.config, batch, o, &mixed).loss;
  EXPECT_NEAR(l16, l32, 5e-3 * std::fabs(l32));
  double dot = 0, n32 = 0, n16 = 0;
  for (const auto& [name, t] : exact.tensors()) {
    const auto& m = mixed.at(name).data;
    for (size_t i = 0; i < t.data.size(); ++i) {
      dot += static_cast<double>(t.data[i]) * m[i];
      n32 += static_cast<double>(t.data[i]) * t.data[i];
      n16 += static_cast<double>(m[i]) * m[i];
    }
  }
  // The whole gradient points the same way (cosine; measured 0.9975 on this random model,
  // whose loss of ~15 magnifies rounding) and has the same length, within bf16.
  EXPECT_GT(dot / std::sqrt(n32 * n16), 0.99);
  EXPECT_NEAR(std::sqrt(n16), std::sqrt(n32), 0.03 * std::sqrt(n32));
}
