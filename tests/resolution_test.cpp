// Stage 2's resolution change: the resampling against big_vision's resample_posemb run with
// scipy (tools/golden/make_posemb_golden.py), and the rewritten checkpoint.
#include "paligemma/resolution.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/file.h"
#include "paligemma/checkpoint.h"
#include "paligemma/model.h"
#include "paligemma/npy.h"
#include "test_util.h"

namespace fs = std::filesystem;
using pg::test::error_of;

namespace {

const char* kPos = "vision_tower.vision_model.embeddings.position_embedding.weight";

std::vector<float> values(const pg::TensorView& v) {
  std::vector<float> out(static_cast<size_t>(v.numel()));
  pg::convert_to_f32(v.dtype, v.data, 0, out.size(), out.data());
  return out;
}

TEST(Resolution, ResampleMatchesBigVisionWithScipy) {
  struct Case {
    int old_side, new_side, dim;
  };
  for (const Case c :
       {Case{4, 8, 6}, Case{4, 16, 3}, Case{8, 4, 5}, Case{3, 7, 4}, Case{2, 5, 2}, Case{5, 5, 3}, Case{6, 1, 2}}) {
    const std::string tag = std::to_string(c.old_side) + "_" + std::to_string(c.new_side);
    const pg::NpyArray in = pg::read_npy(pg::test::fixture("posemb/in_" + tag + ".npy"));
    const pg::NpyArray want = pg::read_npy(pg::test::fixture("posemb/out_" + tag + ".npy"));
    ASSERT_EQ(in.shape, (std::vector<int64_t>{c.old_side * c.old_side, c.dim}));
    const std::vector<float> got = pg::resample_position_embedding(in.as_f32(), c.old_side, c.new_side, c.dim);
    const std::vector<float> ref = want.as_f32();
    ASSERT_EQ(got.size(), ref.size()) << tag;
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], ref[i], 2e-6f * (1.0f + std::fabs(ref[i]))) << tag << " at " << i;
  }
}

TEST(Resolution, ResampleKeepsCornersAndRejectsBadGrids) {
  std::vector<float> g(9);
  for (int i = 0; i < 9; ++i) g[i] = static_cast<float>(i * i);
  const std::vector<float> up = pg::resample_position_embedding(g, 3, 5, 1);
  EXPECT_EQ(up[0], g[0]);
  EXPECT_EQ(up[4], g[2]);
  EXPECT_EQ(up[20], g[6]);
  EXPECT_EQ(up[24], g[8]);
  EXPECT_EQ(up[12], g[4]);  // the centre of an odd grid stays on the centre sample
  EXPECT_EQ(pg::resample_position_embedding(g, 3, 3, 1), g);
  EXPECT_NE(error_of([&] { pg::resample_position_embedding(g, 2, 4, 1); }).find("not a 2x2x1 grid"), std::string::npos);
  EXPECT_NE(error_of([&] { pg::resample_position_embedding(g, 3, 0, 1); }).find("must be positive"), std::string::npos);
}

TEST(Resolution, ChangeResolutionRewritesConfigAndPositionsOnly) {
  pg::test::TempDir tmp;
  const std::string src = tmp.file("src"), out = tmp.file("out");
  fs::copy(pg::test::fixture("models/pg2_gqa_window"), src);
  // A processor config and a side file, as HF directories and our bundled model carry.
  {
    std::ofstream(src + "/preprocessor_config.json")
        << R"({"image_seq_length": 16, "size": {"height": 56, "width": 56}, "resample": 3})";
    std::ofstream(src + "/vae.npz") << "side file";
  }
  const std::unique_ptr<pg::Model> before = pg::Model::load(src);
  const int patch = before->config().vision.patch_size;
  const int old_side = before->config().vision.image_size / patch, new_side = 2 * old_side;
  pg::ResolutionOptions o;
  o.image_size = new_side * patch;
  pg::change_resolution(src, out, o);

  const std::unique_ptr<pg::Model> after = pg::Model::load(out);
  EXPECT_EQ(after->config().vision.image_size, o.image_size);
  EXPECT_EQ(after->config().vision.num_patches(), new_side * new_side);
  const nlohmann::json cj = nlohmann::json::parse(pg::read_file(out + "/config.json"));
  if (cj["text_config"].contains("num_image_tokens"))
    EXPECT_EQ(cj["text_config"]["num_image_tokens"], new_side * new_side);
  const nlohmann::json pj = nlohmann::json::parse(pg::read_file(out + "/preprocessor_config.json"));
  EXPECT_EQ(pj["image_seq_length"], new_side * new_side);
  EXPECT_EQ(pj["size"]["height"], o.image_size);
  EXPECT_EQ(pj["resample"], 3);
  EXPECT_EQ(pg::read_file(out + "/vae.npz"), "side file");
  EXPECT_EQ(pg::read_file(out + "/tokenizer.model"), pg::read_file(src + "/tokenizer.model"));

  const pg::Checkpoint& a = before->checkpoint();
  const pg::Checkpoint& b = after->checkpoint();
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& name : a.names()) {
    const pg::TensorView& va = a.get(name);
    const pg::TensorView& vb = b.get(name);
    EXPECT_EQ(va.dtype, vb.dtype) << name;
    EXPECT_EQ(a.stored_name_of(name), b.stored_name_of(name));
    if (name == kPos) continue;
    ASSERT_EQ(va.shape, vb.shape) << name;
    EXPECT_EQ(0, std::memcmp(va.data, vb.data, va.nbytes())) << name;
  }
  const int dim = before->config().vision.hidden_size;
  std::vector<float> want = pg::resample_position_embedding(values(a.get(kPos)), old_side, new_side, dim);
  if (a.get(kPos).dtype == pg::DType::BF16)
    for (float& v : want) v = pg::bf16_to_f32(pg::f32_to_bf16(v));
  EXPECT_EQ(values(b.get(kPos)), want);

  // And it runs at the new size.
  std::vector<float> pixels(static_cast<size_t>(3) * o.image_size * o.image_size, 0.25f);
  EXPECT_EQ(after->encode_image(pixels.data()).size(),
            static_cast<size_t>(new_side * new_side) * after->config().projection_dim);
}

TEST(Resolution, BadRequestsNameTheProblem) {
  pg::test::TempDir tmp;
  const std::string src = pg::test::fixture("models/pg2_gqa_window");
  pg::ResolutionOptions o;
  o.image_size = 57;
  EXPECT_NE(
      error_of([&] { pg::change_resolution(src, tmp.file("a"), o); }).find("not a positive multiple of the patch size"),
      std::string::npos);
  EXPECT_FALSE(fs::exists(tmp.file("a")));
  o.image_size = 112;
  EXPECT_NE(error_of([&] { pg::change_resolution(tmp.file("missing"), tmp.file("b"), o); }).find("not found"),
            std::string::npos);
  fs::create_directories(tmp.file("full"));
  std::ofstream(tmp.file("full/x")) << "x";
  EXPECT_NE(error_of([&] { pg::change_resolution(src, tmp.file("full"), o); }).find("is not empty"), std::string::npos);
  const pg::test::CommandResult r = pg::test::run_command(pg::test::cli_path() + " resolution --model " + src +
                                                          " --image-size 50 --out " + tmp.file("c") + " 2>&1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("multiple of the patch size 14"), std::string::npos) << r.output;
}

}  // namespace
