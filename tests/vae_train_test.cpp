// The mask VQ-VAE trainer (include/paligemma/vae_train.h, src/seg/mask_vae.h): loss and
// gradients against PyTorch autograd (tools/golden/make_vae_grad_golden.py), a short training
// on world masks, MaskCodec reading what it writes, bit-identical resume, and bad input.
#include "paligemma/vae_train.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "paligemma/error.h"
#include "paligemma/mask_codec.h"
#include "paligemma/metrics.h"
#include "paligemma/npz.h"
#include "paligemma/segmentation.h"
#include "paligemma/world.h"
#include "seg/mask_vae.h"
#include "test_util.h"
#include "train/parameters.h"

using pg::test::error_of;

namespace {

struct GradCase {
  pg::train::Parameters params, grads;
  std::vector<float> masks;
  std::vector<int64_t> codes;
  std::vector<float> loss;  // total, reconstruction, codebook, commitment
  int batch = 0;
};

GradCase load_grad_case() {
  const pg::Npz npz = pg::Npz::read(pg::test::fixture("vae_train/grad_case.npz"));
  GradCase c;
  for (const std::string& key : npz.keys()) {
    const pg::NpyArray& a = npz.get(key);
    if (key == "masks") {
      c.masks = a.as_f32();
      c.batch = static_cast<int>(a.shape[0]);
    } else if (key == "codes") {
      c.codes = a.as_i64();
    } else if (key == "loss") {
      c.loss = a.as_f32();
    } else if (key.rfind("grad/", 0) == 0) {
      c.grads.add(key.substr(5), pg::train::Tensor{a.shape, a.as_f32()});
    } else {
      c.params.add(key, pg::train::Tensor{a.shape, a.as_f32()});
    }
  }
  return c;
}

// max |got - want| relative to max |want| (a whole tensor's scale: single small entries of a
// gradient carry f32 rounding of the larger ones they are sums of).
double relative_max_error(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(static_cast<double>(want[i])));
  }
  return scale > 0 ? err / scale : err;
}

pg::VaeTrainOptions tiny_options(const std::string& out) {
  pg::VaeTrainOptions o;
  o.out_path = out;
  o.channels = 8;
  o.code_dim = 8;
  o.codebook = 16;
  o.batch_size = 4;
  o.steps = 8;
  o.warmup_steps = 2;
  o.cosine = false;
  o.restart_every = 2;  // exercises the restarts (and their random stream) across the resume
  o.val_masks = 8;
  o.world_size = 64;
  o.log_every = 0;
  o.eval_every = 0;
  o.save_every = 0;
  return o;
}

}  // namespace

TEST(VaeTrainGrad, MatchesTorchAutograd) {
  GradCase c = load_grad_case();
  ASSERT_EQ(c.batch, 3);
  const pg::seg::MaskVaeShape shape = pg::seg::mask_vae_shape_of(c.params);
  EXPECT_EQ(shape.channels, 8);
  pg::train::Parameters grads = c.params.zeros_like();
  const pg::seg::MaskVaeLoss loss = pg::seg::mask_vae_loss(c.params, c.masks.data(), c.batch, {}, &grads);
  ASSERT_EQ(loss.codes.size(), c.codes.size());
  for (size_t i = 0; i < c.codes.size(); ++i) EXPECT_EQ(loss.codes[i], c.codes[i]) << "cell " << i;
  EXPECT_NEAR(loss.total, c.loss[0], 1e-5 * c.loss[0]);
  EXPECT_NEAR(loss.reconstruction, c.loss[1], 1e-5 * c.loss[1]);
  EXPECT_NEAR(loss.codebook, c.loss[2], 1e-4 * c.loss[2]);
  EXPECT_NEAR(loss.commitment, c.loss[3], 1e-4 * c.loss[3]);
  ASSERT_EQ(grads.tensors().size(), c.grads.tensors().size());
  double worst = 0;
  for (const auto& [name, want] : c.grads.tensors()) {
    const double e = relative_max_error(grads.at(name).data, want.data);
    EXPECT_LT(e, 1e-4) << name;
    worst = std::max(worst, e);
  }
  std::printf("worst relative gradient error %.3g over %zu tensors\n", worst, c.grads.tensors().size());
}

TEST(VaeTrainGrad, NoticesAMissingStraightThroughEstimator) {
  // Without the straight-through term only the commitment loss reaches the encoder: the
  // comparison above must fail for every encoder tensor, and still pass for the decoder's.
  GradCase c = load_grad_case();
  pg::train::Parameters grads = c.params.zeros_like();
  pg::seg::MaskVaeLossConfig broken;
  broken.straight_through = false;
  pg::seg::mask_vae_loss(c.params, c.masks.data(), c.batch, broken, &grads);
  for (const auto& [name, want] : c.grads.tensors()) {
    const double e = relative_max_error(grads.at(name).data, want.data);
    if (name.rfind("encoder.", 0) == 0)
      EXPECT_GT(e, 0.1) << name;
    else
      EXPECT_LT(e, 1e-4) << name;
  }
}

TEST(VaeTrain, ShortRunLearnsAndMaskCodecReadsTheResult) {
  pg::test::TempDir dir;
  pg::VaeTrainOptions o;
  o.out_path = dir.file("vae.npz");
  o.channels = 16;
  o.code_dim = 16;
  o.batch_size = 16;
  o.steps = 300;
  o.lr = 3e-3;
  o.warmup_steps = 20;
  o.val_masks = 64;
  o.world_size = 112;
  o.eval_every = 0;
  o.log_every = 0;
  o.save_every = 0;
  const pg::VaeTrainSummary s = pg::train_mask_vae(o);
  std::printf("held-out IoU %.4f (baseline %.4f), %d codes, %.3f s/step\n", s.val_iou, s.baseline_iou, s.codes_used,
              s.seconds_per_step);
  EXPECT_GT(s.val_iou, 0.8);
  EXPECT_GT(s.val_iou, s.baseline_iou + 0.1);

  // The published codec reads the file and reproduces the trainer's number.
  const pg::MaskCodec codec = pg::MaskCodec::load(o.out_path);
  EXPECT_EQ(codec.codebook_size(), 128);
  EXPECT_EQ(codec.code_dim(), 16);
  ASSERT_TRUE(codec.has_encoder());
  double iou = 0;
  const auto masks = pg::world_masks64(o.val_seed, o.val_masks, o.world_size, o.max_objects);
  for (const auto& m : masks) iou += pg::mask_reconstruction_iou(codec.decode_logits(codec.encode(m)).data(), m.data());
  iou /= static_cast<double>(masks.size());
  EXPECT_NEAR(iou, s.val_iou, 2e-3);

  // Segmentation's full-resolution path with it: a held-out object's mask -> encode_mask
  // (crop, resize, codes) -> decode_logits -> mask_in_box, against the object's exact mask.
  pg::WorldOptions wo;
  wo.seed = o.val_seed;
  wo.size = o.world_size;
  wo.text_probability = 0;
  double full_iou = 0;
  int objects = 0;
  for (int scene = 0; scene < 20; ++scene)
    for (const pg::WorldObject& ob : pg::make_world_scene(wo, scene).objects) {
      pg::BinaryMask back;
      back.width = back.height = wo.size;
      back.data = pg::mask_in_box(codec.decode_logits(pg::encode_mask(codec, ob.mask, ob.box)), pg::pixel_box(ob.box),
                                  wo.size, wo.size);
      full_iou += pg::mask_iou(back, ob.mask);
      ++objects;
    }
  full_iou /= objects;
  std::printf("full-resolution round trip: mean IoU %.4f over %d objects\n", full_iou, objects);
  EXPECT_GT(full_iou, 0.8);
}

TEST(VaeTrain, ResumeIsBitIdentical) {
  pg::test::TempDir dir;
  pg::VaeTrainOptions straight = tiny_options(dir.file("straight.npz"));
  pg::train_mask_vae(straight);

  pg::VaeTrainOptions halves = tiny_options(dir.file("halves.npz"));
  halves.steps = 4;
  pg::train_mask_vae(halves);
  halves.steps = 8;
  halves.resume = true;
  const pg::VaeTrainSummary s = pg::train_mask_vae(halves);
  EXPECT_EQ(s.start_step, 4);
  EXPECT_EQ(s.steps, 8);

  const pg::Npz a = pg::Npz::read(straight.out_path), b = pg::Npz::read(halves.out_path);
  ASSERT_EQ(a.keys(), b.keys());
  for (const std::string& key : a.keys()) EXPECT_EQ(a.get(key).bytes, b.get(key).bytes) << key;
  const pg::Npz sa = pg::Npz::read(straight.out_path + ".state.npz"),
                sb = pg::Npz::read(halves.out_path + ".state.npz");
  ASSERT_EQ(sa.keys(), sb.keys());
  for (const std::string& key : sa.keys()) EXPECT_EQ(sa.get(key).bytes, sb.get(key).bytes) << key;
}

TEST(VaeTrain, RejectsBadInput) {
  pg::test::TempDir dir;
  pg::VaeTrainOptions o = tiny_options(dir.file("vae.npz"));
  auto with = [&](auto change) {
    pg::VaeTrainOptions c = o;
    change(c);
    return error_of([&] { pg::train_mask_vae(c); });
  };
  EXPECT_NE(with([](auto& c) { c.codebook = 1; }).find("at least 2 codes"), std::string::npos);
  EXPECT_NE(with([](auto& c) { c.channels = 12; }).find("multiple of 8"), std::string::npos);
  EXPECT_NE(with([](auto& c) { c.steps = 0; }).find("--steps"), std::string::npos);
  EXPECT_NE(with([](auto& c) { c.val_seed = c.seed; }).find("--val-seed"), std::string::npos);
  EXPECT_NE(with([&](auto& c) { c.out_path = dir.file("missing/dir/vae.npz"); }).find("cannot write"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) { c.resume = true; }).find("does not exist"), std::string::npos);
  EXPECT_NE(with([&](auto& c) { c.out_path = dir.path(); }).find("it is a directory"), std::string::npos);

  o.steps = 2;
  pg::train_mask_vae(o);
  EXPECT_NE(with([](auto& c) {
              c.resume = true;
              c.channels = 16;
            }).find("written with --channels 8"),
            std::string::npos);
  EXPECT_NE(with([](auto& c) {
              c.resume = true;
              c.steps = 1;
            }).find("already at step 2"),
            std::string::npos);
  // Resuming a finished run with its own --steps is a no-op that reports the same result.
  const pg::VaeTrainSummary first = pg::train_mask_vae([&] {
    pg::VaeTrainOptions c = o;
    c.resume = true;
    return c;
  }());
  EXPECT_EQ(first.steps, 2);
  EXPECT_EQ(first.start_step, 2);
  EXPECT_GT(first.val_iou, 0.0);

  // The CLI: one error line and a non-zero exit, no crash.
  const auto r =
      pg::test::run_command(pg::test::cli_path() + " vae-train --out " + dir.file("x.npz") + " --codebook 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("error: mask VQ-VAE: the codebook needs at least 2 codes"), std::string::npos) << r.output;
  const auto bad_resume = pg::test::run_command(pg::test::cli_path() + " vae-train --out " + o.out_path +
                                                " --channels 8 --code-dim 8 --codebook 16 --batch-size 4 --resume");
  EXPECT_NE(bad_resume.exit_code, 0);
  EXPECT_NE(bad_resume.output.find("error: cannot resume"), std::string::npos) << bad_resume.output;
}

TEST(VaeTrain, CliPrintsProgressAndAJsonSummary) {
  pg::test::TempDir dir;
  const std::string out = dir.file("cli.npz"), json_path = dir.file("summary.json");
  // Progress on stderr (captured), the JSON summary on stdout (into the file).
  const auto r = pg::test::run_command("{ " + pg::test::cli_path() + " vae-train --out " + out +
                                       " --channels 8 --code-dim 8 --codebook 16 --batch-size 4 --steps 4"
                                       " --val-masks 8 --world-size 64 --log-every 2 --threads 1 --json > " +
                                       json_path + "; }");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step 2/4  loss"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("held-out IoU"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ETA"), std::string::npos) << r.output;
  std::ifstream f(json_path);
  const nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j.at("steps").get<int>(), 4);
  EXPECT_EQ(j.at("codebook").get<int>(), 16);
  const double iou = j.at("val_iou").get<double>();
  EXPECT_GE(iou, 0.0);
  EXPECT_LE(iou, 1.0);
  EXPECT_EQ(pg::MaskCodec::load(out).codebook_size(), 16);

  const auto bad_threads =
      pg::test::run_command(pg::test::cli_path() + " vae-train --out " + dir.file("t.npz") + " --steps 1 --threads -1");
  EXPECT_NE(bad_threads.exit_code, 0);
  EXPECT_NE(bad_threads.output.find("threads must be >= 0"), std::string::npos) << bad_threads.output;
}
