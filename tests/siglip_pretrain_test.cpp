// SigLIP contrastive pretraining of the vision tower (issue 6, point 2a): the loss and every
// gradient against transformers' SiglipModel (PyTorch autograd, tools/golden/
// make_siglip_pretrain_golden.py), a short training on the synthetic world, exact resume,
// the written checkpoint, and bad input.
#include "train/siglip_pretrain.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "paligemma/checkpoint.h"
#include "paligemma/model.h"
#include "paligemma/model_init.h"
#include "paligemma/pretrain.h"
#include "paligemma/safetensors_writer.h"
#include "paligemma/tokenizer_train.h"
#include "paligemma/world.h"
#include "test_util.h"
#include "train/checkpoint_io.h"

namespace {

namespace fs = std::filesystem;
using pg::train::ContrastiveExample;
using pg::train::Parameters;

// ---------------------------------------------------------------- transformers golden

struct Golden {
  Parameters params, grads;
  pg::train::SiglipShapes shapes;
  std::vector<ContrastiveExample> batch;
  double loss = 0;
};

Golden load_golden() {
  const std::string dir = pg::test::fixture("siglip_pretrain");
  Golden g;
  const Parameters params = pg::train::load_parameters(dir + "/model.safetensors");
  for (const auto& [name, t] : params.tensors()) g.params.add(pg::train::our_siglip_name(name), t);
  const Parameters grads = pg::train::load_parameters(dir + "/grads.safetensors");
  for (const auto& [name, t] : grads.tensors()) g.grads.add(pg::train::our_siglip_name(name), t);
  const nlohmann::json meta = nlohmann::json::parse(std::ifstream(dir + "/meta.json"));
  const nlohmann::json& v = meta["vision_config"];
  pg::VisionConfig vc;
  vc.hidden_size = v["hidden_size"];
  vc.intermediate_size = v["intermediate_size"];
  vc.num_layers = v["num_hidden_layers"];
  vc.num_heads = v["num_attention_heads"];
  vc.num_channels = v["num_channels"];
  vc.image_size = v["image_size"];
  vc.patch_size = v["patch_size"];
  vc.layer_norm_eps = v["layer_norm_eps"];
  vc.hidden_act = v["hidden_act"];
  const nlohmann::json& t = meta["text_config"];
  pg::train::TextTowerConfig tc;
  tc.layers = t["num_hidden_layers"];
  tc.hidden = t["hidden_size"];
  tc.heads = t["num_attention_heads"];
  tc.intermediate = t["intermediate_size"];
  tc.max_positions = t["max_position_embeddings"];
  g.shapes = pg::train::siglip_shapes(vc, tc, t["vocab_size"]);
  const Parameters pixels = pg::train::load_parameters(dir + "/batch.safetensors");
  const std::vector<float>& px = pixels.at("pixel_values").data;
  const size_t per_image = static_cast<size_t>(vc.num_channels) * vc.image_size * vc.image_size;
  for (size_t i = 0; i < meta["input_ids"].size(); ++i) {
    ContrastiveExample ex;
    ex.pixels.assign(px.begin() + i * per_image, px.begin() + (i + 1) * per_image);
    ex.ids = meta["input_ids"][i].get<std::vector<int>>();
    ex.caption = std::to_string(i);
    g.batch.push_back(std::move(ex));
  }
  g.loss = meta["loss"];
  return g;
}

// The largest |ours - reference| of a tensor relative to the reference's largest magnitude.
double relative_error(const std::vector<float>& ours, const std::vector<float>& ref) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(ours[i]) - ref[i]));
    scale = std::max(scale, std::abs(static_cast<double>(ref[i])));
  }
  return diff / std::max(scale, 1e-12);
}

TEST(SiglipPretrain, LossAndEveryGradientMatchTransformersSiglipModel) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  const Golden g = load_golden();
  ASSERT_EQ(g.params.tensors().size(), 88u);
  Parameters grads = g.params.zeros_like();
  const auto r = pg::train::contrastive_loss_and_gradients(g.params, g.shapes, g.batch, &grads);
  EXPECT_NEAR(r.loss, g.loss, 1e-5 * std::abs(g.loss));
  double worst = 0;
  std::string worst_name;
  for (const auto& [name, ref] : g.grads.tensors()) {
    ASSERT_TRUE(grads.has(name)) << name;
    // k_proj biases: softmax is invariant to them, their true gradient is ~1e-8 (noise).
    if (name.find("k_proj.bias") != std::string::npos) {
      for (float x : grads.at(name).data) EXPECT_LT(std::abs(x), 1e-5) << name;
      continue;
    }
    const double e = relative_error(grads.at(name).data, ref.data);
    if (e > worst) worst = e, worst_name = name;
    EXPECT_LT(e, 1e-4) << name;
  }
  std::printf("[ siglip ] loss %.7f (transformers %.7f); worst gradient %s: relative %.2e\n", r.loss, g.loss,
              worst_name.c_str(), worst);
  // The loss alone (no gradients) is the same number, and recomputing each example's forward
  // in the backward (the large-batch path) gives the same gradients bit for bit.
  EXPECT_EQ(pg::train::contrastive_loss_and_gradients(g.params, g.shapes, g.batch, nullptr).loss, r.loss);
  Parameters recomputed = g.params.zeros_like();
  pg::train::contrastive_loss_and_gradients(g.params, g.shapes, g.batch, &recomputed, true);
  for (const auto& [name, t] : grads.tensors()) EXPECT_EQ(t.data, recomputed.at(name).data) << name;
}

// The comparison above can fail: pooling the token before the last one (an off-by-one of
// SiglipTextTransformer's last-token pooling), or images paired with the wrong captions,
// moves the loss far outside its tolerance.
TEST(SiglipPretrain, GoldenCatchesAnOffByOnePooledTokenAndSwappedPairs) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  Golden g = load_golden();
  std::vector<ContrastiveExample> off_by_one = g.batch;
  for (ContrastiveExample& ex : off_by_one) ex.ids.pop_back();  // the last row is now the token before <eos>
  const double shifted = pg::train::contrastive_loss_and_gradients(g.params, g.shapes, off_by_one, nullptr).loss;
  EXPECT_GT(std::abs(shifted - g.loss), 1e-3);
  std::vector<ContrastiveExample> swapped = g.batch;
  std::swap(swapped[0].pixels, swapped[1].pixels);
  const double wrong = pg::train::contrastive_loss_and_gradients(g.params, g.shapes, swapped, nullptr).loss;
  EXPECT_GT(std::abs(wrong - g.loss), 1e-3);
}

// ---------------------------------------------------------------- the world chain

// A small PaliGemma from scratch, as ModelInit.SmallVocabularyChainFromTheWorld builds it:
// world caption data (one object per scene, so captions are learnable in seconds), a
// tokenizer trained on it, and `paligemma init` on the tiny pg2 fixture config (SigLIP 56 px,
// patch 14, width 32, 2 layers).
struct WorldChain {
  pg::test::TempDir dir;
  std::string model, train, val;
};

const WorldChain& world_chain() {
  static std::unique_ptr<WorldChain> chain = [] {
    auto c = std::make_unique<WorldChain>();
    pg::WorldOptions w;
    w.size = 56;
    w.images = 600;
    w.max_objects = 1;
    w.text_probability = 0.0;
    w.tasks = {pg::WorldTask::Caption};
    pg::write_world(c->dir.file("data"), w);
    w.seed = 1;
    w.images = 48;
    w.split_name = "val";
    pg::write_world(c->dir.file("data"), w);
    pg::TokenizerTrainOptions to;
    pg::append_jsonl_corpus(c->dir.file("data/train.jsonl"), to.texts);
    to.vocab_size = 400;
    const pg::TokenizerTrainResult tok = pg::train_tokenizer(to, c->dir.file("tok.model"));
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(pg::test::fixture("models/pg2_gqa_window/config.json")));
    const int vocab = (tok.pieces + 1 + 63) / 64 * 64;  // room for <image>, a multiple of 64
    cfg["vocab_size"] = vocab;
    cfg["text_config"]["vocab_size"] = vocab;
    cfg["image_token_index"] = tok.pieces;
    std::ofstream(c->dir.file("config.json")) << cfg.dump(1);
    pg::init_model(c->dir.file("config.json"), c->dir.file("tok.model"), c->dir.file("m"), 3, pg::DType::F32);
    c->model = c->dir.file("m");
    c->train = c->dir.file("data/train.jsonl");
    c->val = c->dir.file("data/val.jsonl");
    return c;
  }();
  return *chain;
}

// One thread while training the tiny model: its matrices are too small to share, and with
// libgomp's default spinning (the CLI sets GOMP_SPINCOUNT, a test process cannot) idle
// workers slow the serial parts down 2-3x. The results are the same for any thread count.
class OneThread {
 public:
  OneThread() : threads_(pg::threads()) { pg::set_threads(1); }
  ~OneThread() { pg::set_threads(threads_); }

 private:
  int threads_;
};

pg::train::PretrainConfig small_run(const std::string& out) {
  const WorldChain& w = world_chain();
  pg::train::PretrainConfig c;
  c.model_dir = w.model;
  c.train_path = w.train;
  c.out_dir = out;
  c.batch_size = 16;
  c.steps = 4;
  c.optimizer.lr = 3e-3;
  c.warmup_steps = 2;
  c.text.max_positions = 16;
  c.quiet = true;
  return c;
}

TEST(SiglipPretrain, WorldCaptionsTrainingLowersTheLossAndLearnsRetrieval) {
  OneThread one_thread;
  const WorldChain& w = world_chain();
  pg::test::TempDir out;
  pg::train::PretrainConfig c = small_run(out.file("run"));
  c.val_path = w.val;
  c.steps = 300;
  c.batch_size = 32;
  c.warmup_steps = 20;
  const auto t0 = std::chrono::steady_clock::now();
  const pg::train::PretrainSummary s = pg::train::run_pretrain_vision(c);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(s.finished);
  ASSERT_EQ(s.history.size(), 300u);
  double first = 0, last = 0;
  for (int i = 0; i < 10; ++i) first += s.history[i].loss / 10, last += s.history[290 + i].loss / 10;
  std::printf(
      "[ siglip ] world: loss %.3f -> %.3f, t %.2f b %.2f, val retrieval %.3f -> %.3f (chance %.3f), "
      "%.3f s per step\n",
      first, last, s.history.back().t, s.history.back().b, s.initial_val_accuracy, s.final_val_accuracy, s.val_chance,
      seconds / 300);
  EXPECT_LT(last, 0.5 * first);
  // Held-out captions (many never seen whole in training: size x colour x shape) are found
  // far above chance (measured 0.42 against chance 0.03 and 0.04 before training).
  EXPECT_GT(s.final_val_accuracy, 5.0 * s.val_chance);
  EXPECT_GT(s.final_val_accuracy, s.initial_val_accuracy + 0.15);
  EXPECT_TRUE(fs::exists(out.file("run/metrics.jsonl")));

  // The output is a PaliGemma checkpoint: the vision tower trained, everything else as before.
  const auto model = pg::Model::load(out.file("run"));
  EXPECT_EQ(model->config().vision.hidden_size, 32);
  const pg::Checkpoint before = pg::Checkpoint::open(w.model), after = pg::Checkpoint::open(out.file("run"));
  EXPECT_EQ(before.names(), after.names());
  int changed = 0;
  for (const std::string& name : before.names()) {
    const pg::TensorView &a = before.get(name), &b = after.get(name);
    ASSERT_EQ(a.nbytes(), b.nbytes()) << name;
    const bool same = std::memcmp(a.data, b.data, a.nbytes()) == 0;
    if (name.rfind("vision_tower.", 0) == 0)
      changed += !same;
    else
      EXPECT_TRUE(same) << name << " changed";
  }
  EXPECT_GT(changed, 20);  // every vision matrix and most norms moved
  EXPECT_EQ(pg::read_file(w.model + "/config.json"), pg::read_file(out.file("run/config.json")));
  // siglip/: what PaliGemma drops, under SiglipModel's names.
  const Parameters extra = pg::train::load_parameters(out.file("run/siglip/model.safetensors"));
  EXPECT_TRUE(extra.has("vision_model.head.probe"));
  EXPECT_TRUE(extra.has("text_model.head.weight"));
  EXPECT_TRUE(extra.has("logit_scale"));
  EXPECT_FALSE(extra.has("vision_model.post_layernorm.weight"));
}

TEST(SiglipPretrain, ResumeEqualsStraightBitForBit) {
  OneThread one_thread;
  pg::test::TempDir out;
  pg::train::PretrainConfig straight = small_run(out.file("straight"));
  straight.steps = 8;
  pg::train::run_pretrain_vision(straight);
  pg::train::PretrainConfig part = small_run(out.file("resumed"));
  part.steps = 8;
  part.stop_after = 4;
  const auto first = pg::train::run_pretrain_vision(part);
  EXPECT_FALSE(first.finished);
  EXPECT_EQ(first.steps, 4);
  part.stop_after = 0;
  part.resume = true;
  const auto second = pg::train::run_pretrain_vision(part);
  EXPECT_TRUE(second.finished);
  EXPECT_EQ(second.history.size(), 4u);
  for (const char* f : {"model.safetensors", "siglip/model.safetensors", "state/adam_m.safetensors",
                        "state/adam_v.safetensors", "state/params.safetensors"})
    EXPECT_EQ(pg::read_file(out.file(std::string("straight/") + f)),
              pg::read_file(out.file(std::string("resumed/") + f)))
        << f;
  // The log of the resumed run has every step once, with the straight run's losses.
  std::ifstream a(out.file("straight/metrics.jsonl")), b(out.file("resumed/metrics.jsonl"));
  int lines = 0;
  for (std::string la, lb; std::getline(a, la) && std::getline(b, lb); ++lines)
    EXPECT_EQ(nlohmann::json::parse(la)["loss"], nlohmann::json::parse(lb)["loss"]);
  EXPECT_EQ(lines, 8);
}

TEST(SiglipPretrain, BadInputIsAClearError) {
  OneThread one_thread;
  const WorldChain& w = world_chain();
  pg::test::TempDir out;
  auto error = [&](pg::train::PretrainConfig c) {
    return pg::test::error_of([&] { pg::train::run_pretrain_vision(c); });
  };
  pg::train::PretrainConfig c = small_run(out.file("run"));
  c.batch_size = 1;
  EXPECT_NE(error(c).find("--batch-size must be >= 2"), std::string::npos) << error(c);
  c = small_run(out.file("run"));
  c.batch_size = 5000;
  EXPECT_NE(error(c).find("fewer than --batch-size"), std::string::npos) << error(c);
  c = small_run(out.file("run"));
  c.steps = 0;
  EXPECT_NE(error(c).find("--steps"), std::string::npos);

  // A record whose caption is empty, and one without an image.
  const std::string image = fs::path(w.train).parent_path().string() + "/images/train_000000.png";
  std::ofstream(out.file("empty.jsonl")) << nlohmann::json{{"image", image}, {"prefix", "caption en"}, {"suffix", " "}}
                                         << "\n";
  c = small_run(out.file("run"));
  c.train_path = out.file("empty.jsonl");
  EXPECT_NE(error(c).find("empty.jsonl:1: the caption (\"suffix\") is empty"), std::string::npos) << error(c);
  std::ofstream(out.file("nosuffix.jsonl")) << nlohmann::json{{"image", image}, {"prefix", "caption en"}} << "\n";
  c.train_path = out.file("nosuffix.jsonl");
  EXPECT_NE(error(c).find("nosuffix.jsonl:1:"), std::string::npos) << error(c);

  // A checkpoint without a vision tower: the same config, the language model's tensors only.
  const std::string no_vision = out.file("no_vision");
  fs::create_directories(no_vision);
  fs::copy_file(w.model + "/config.json", no_vision + "/config.json");
  fs::copy_file(w.model + "/tokenizer.model", no_vision + "/tokenizer.model");
  {
    const pg::Checkpoint ckpt = pg::Checkpoint::open(w.model);
    pg::SafetensorsWriter writer;
    for (const std::string& name : ckpt.names())
      if (name.rfind("vision_tower.", 0) != 0) {
        const pg::train::Tensor t = pg::train::to_f32_tensor(ckpt.get(name));
        writer.add_f32(ckpt.stored_name_of(name), pg::DType::F32, t.shape, t.data);
      }
    writer.write(no_vision + "/model.safetensors");
  }
  c = small_run(out.file("run"));
  c.model_dir = no_vision;
  EXPECT_NE(error(c).find("vision"), std::string::npos) << error(c);

  // Resuming with other settings.
  c = small_run(out.file("resume"));
  c.stop_after = 1;
  pg::train::run_pretrain_vision(c);
  c.stop_after = 0;
  c.resume = true;
  c.batch_size = 8;
  EXPECT_NE(error(c).find("different run"), std::string::npos) << error(c);
}

// The CLI: a short run, and a bad flag's non-zero exit with the library's message.
TEST(SiglipPretrain, CommandLine) {
  const WorldChain& w = world_chain();
  pg::test::TempDir out;
  const std::string base = pg::test::cli_path() + " pretrain-vision --model " + w.model + " --data " + w.train +
                           " --out " + out.file("run") + " --threads 2";
  const auto ok = pg::test::run_command(base + " --steps 2 --batch-size 4 --text-max-positions 16 --val " + w.val);
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("step 2/2"), std::string::npos) << ok.output;
  EXPECT_NE(ok.output.find("\"val_retrieval_after\""), std::string::npos) << ok.output;
  const auto bad = pg::test::run_command(base + " --batch-size 1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("error: --batch-size must be >= 2"), std::string::npos) << bad.output;
}

}  // namespace
