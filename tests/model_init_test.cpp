// `paligemma init`: freshly initialised checkpoints from a config.json. The layout is checked
// against the fixture models (written by transformers), the values against the init rules of
// model_init.h; the result loads, generates and fine-tunes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "paligemma/checkpoint.h"
#include "paligemma/generate.h"
#include "paligemma/image.h"
#include "paligemma/model.h"
#include "paligemma/model_init.h"
#include "paligemma/tokenizer_train.h"
#include "paligemma/world.h"
#include "test_util.h"
#include "train/trainer.h"

namespace {

namespace fs = std::filesystem;

std::string fixture_config(const std::string& model) { return pg::test::fixture("models/" + model + "/config.json"); }
std::string tokenizer() { return pg::test::fixture("models/tokenizer.model"); }

std::vector<float> values(const pg::Checkpoint& c, const std::string& name) {
  const pg::TensorView& v = c.get(name);
  std::vector<float> out(static_cast<size_t>(v.numel()));
  pg::convert_to_f32(v.dtype, v.data, 0, out.size(), out.data());
  return out;
}

double sample_std(const std::vector<float>& v) {
  double s = 0, s2 = 0;
  for (float x : v) s += x, s2 += double(x) * x;
  const double m = s / v.size();
  return std::sqrt(s2 / v.size() - m * m);
}

class ModelInitFixtures : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelInitFixtures, LayoutEqualsTheFixtureAndTheModelLoadsAndGenerates) {
  pg::test::TempDir dir;
  const std::string out = dir.file("init");
  pg::init_model(fixture_config(GetParam()), tokenizer(), out, 7, pg::DType::BF16);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"}) EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  EXPECT_EQ(pg::read_file(out + "/config.json"), pg::read_file(fixture_config(GetParam())));

  const pg::Checkpoint mine = pg::Checkpoint::open(out);
  const pg::Checkpoint theirs = pg::Checkpoint::open(pg::test::fixture("models/" + GetParam()));
  ASSERT_EQ(mine.names(), theirs.names());
  for (const std::string& n : mine.names()) {
    EXPECT_EQ(mine.get(n).shape, theirs.get(n).shape) << n;
    EXPECT_EQ(mine.get(n).dtype, pg::DType::BF16) << n;
    // The names transformers 5 writes.
    const std::string& stored = mine.stored_name_of(n);
    EXPECT_TRUE(stored.rfind("model.", 0) == 0 || stored == "lm_head.weight") << stored;
    EXPECT_EQ(stored.find("vision_model."), std::string::npos) << stored;
  }

  auto model = pg::Model::load(out);
  pg::Request r;
  r.pixels.push_back(pg::preprocess_image(pg::load_image(pg::test::fixture("photos/chelsea.png")),
                                          model->config().vision.image_size, pg::ResizeFilter::PilBicubic));
  r.prompt = "caption en";
  pg::GenerationOptions g;
  g.max_new_tokens = 3;
  const auto res = pg::generate(*model, {r}, g);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_FALSE(res[0].tokens.empty());
  for (float lp : res[0].logprobs) EXPECT_TRUE(std::isfinite(lp));
}

INSTANTIATE_TEST_SUITE_P(ModelInit, ModelInitFixtures, ::testing::Values("pg2_gqa_window", "pg1_mqa"));

TEST(ModelInit, ValuesFollowTheInitRules) {
  pg::test::TempDir dir;
  pg::init_model(fixture_config("pg2_gqa_window"), tokenizer(), dir.file("m"), 3, pg::DType::F32);
  const pg::Checkpoint c = pg::Checkpoint::open(dir.file("m"));
  int rms = 0, ln = 0;
  for (const std::string& n : c.names()) {
    const std::vector<float> v = values(c, n);
    const bool text_norm = n.find("language_model.") == 0 && n.find("norm") != std::string::npos;
    const bool layer_norm = n.find("layer_norm") != std::string::npos || n.find("post_layernorm") != std::string::npos;
    if (text_norm) {
      ++rms;
      for (float x : v) ASSERT_EQ(x, 0.0f) << n;
    } else if (layer_norm) {
      ++ln;
      const float want = n.size() > 7 && n.substr(n.size() - 7) == ".weight" ? 1.0f : 0.0f;
      for (float x : v) ASSERT_EQ(x, want) << n;
    } else if (n.find("fc1.bias") != std::string::npos || n.find("fc2.bias") != std::string::npos) {
      for (float x : v) ASSERT_LT(std::fabs(x), 1e-5f) << n;
    } else if (n.find(".bias") != std::string::npos) {
      for (float x : v) ASSERT_EQ(x, 0.0f) << n;
    }
  }
  EXPECT_EQ(rms, 4 * 4 + 1);     // Gemma 2: four norms per layer + the final one
  EXPECT_EQ(ln, 2 * 4 + 2);      // two LayerNorms (weight, bias) per SigLIP layer + post_layernorm
  // Gemma matrices: normal(0, initializer_range = 0.02).
  for (const char* n : {"language_model.model.layers.0.mlp.gate_proj.weight", "language_model.model.layers.3.self_attn.q_proj.weight",
                        "multi_modal_projector.linear.weight"})
    EXPECT_NEAR(sample_std(values(c, n)), 0.02, 0.002) << n;
  const std::vector<float> embed = values(c, "language_model.model.embed_tokens.weight");
  EXPECT_NEAR(sample_std(embed), 0.02, 0.002);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(embed[size_t(i)], 0.0f) << "pad row 0, column " << i;
  EXPECT_NE(embed[32], 0.0f);
  // SigLIP: xavier uniform (bound sqrt(6 / (32 + 64)) = 0.25) and lecun normal.
  const std::vector<float> fc1 = values(c, "vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight");
  float m = 0;
  for (float x : fc1) m = std::max(m, std::fabs(x));
  EXPECT_LE(m, 0.25f);
  EXPECT_GT(m, 0.24f);
  EXPECT_NEAR(sample_std(fc1), 0.25 / std::sqrt(3.0), 0.1 * 0.25 / std::sqrt(3.0));
  EXPECT_NEAR(sample_std(values(c, "vision_tower.vision_model.embeddings.patch_embedding.weight")),
              1.0 / std::sqrt(3.0 * 14 * 14), 0.1 / std::sqrt(3.0 * 14 * 14));
  EXPECT_NEAR(sample_std(values(c, "vision_tower.vision_model.embeddings.position_embedding.weight")),
              1.0 / std::sqrt(32.0), 0.2 / std::sqrt(32.0));  // 512 samples
}

TEST(ModelInit, InitializerRangeUntiedHeadAndZeroProjector) {
  pg::test::TempDir dir;
  nlohmann::json j = nlohmann::json::parse(pg::read_file(fixture_config("pg1_untied_lm_head")));
  j["text_config"]["initializer_range"] = 0.05;
  std::ofstream(dir.file("config.json")) << j.dump(2);
  pg::ModelInitOptions o;
  o.zero_projector = true;
  pg::init_model(dir.file("config.json"), tokenizer(), dir.file("m"), o);
  const pg::Checkpoint c = pg::Checkpoint::open(dir.file("m"));
  ASSERT_TRUE(c.has("language_model.lm_head.weight"));
  EXPECT_EQ(c.stored_name_of("language_model.lm_head.weight"), "lm_head.weight");
  EXPECT_NEAR(sample_std(values(c, "language_model.lm_head.weight")), 0.05, 0.005);
  EXPECT_NEAR(sample_std(values(c, "language_model.model.layers.1.mlp.down_proj.weight")), 0.05, 0.005);
  for (float x : values(c, "multi_modal_projector.linear.weight")) ASSERT_EQ(x, 0.0f);
  EXPECT_EQ(c.names(), pg::Checkpoint::open(pg::test::fixture("models/pg1_untied_lm_head")).names());
}

// The optional vision inits: big_vision's posemb_sincos_2d, written out here from its
// definition, and mimetic attention, checked by what it must produce whatever the random draw:
// per head, W_q,h^T W_k,h has a strong positive diagonal (near-identity attention); per layer,
// W_out W_v a negative one; and each pair of factors is the balanced halves of a (truncated)
// SVD: orthogonal rows, equal norms, descending.
TEST(ModelInit, SinCos2DPositionsAndMimeticAttention) {
  pg::test::TempDir dir;
  pg::ModelInitOptions o;
  o.seed = 5;
  o.vision_position = pg::VisionPositionInit::SinCos2D;
  o.vision_attention = pg::VisionAttentionInit::Mimetic;
  pg::init_model(fixture_config("pg2_gqa_window"), tokenizer(), dir.file("m"), o);
  const pg::Checkpoint c = pg::Checkpoint::open(dir.file("m"));
  const std::string vp = "vision_tower.vision_model.";
  const int W = 32, g = 4, q = W / 4, heads = 2, dh = W / heads;  // the fixture: width 32, 56 px / 14
  const std::vector<float> pe = values(c, vp + "embeddings.position_embedding.weight");
  ASSERT_EQ(pe.size(), size_t(g * g * W));
  for (int y = 0; y < g; ++y)
    for (int x = 0; x < g; ++x)
      for (int k = 0; k < q; ++k) {
        const double omega = std::pow(10000.0, -double(k) / (q - 1));
        const float* row = pe.data() + (y * g + x) * W;
        EXPECT_NEAR(row[k], std::sin(x * omega), 1e-6);
        EXPECT_NEAR(row[q + k], std::cos(x * omega), 1e-6);
        EXPECT_NEAR(row[2 * q + k], std::sin(y * omega), 1e-6);
        EXPECT_NEAR(row[3 * q + k], std::cos(y * omega), 1e-6);
      }
  EXPECT_NEAR(pe[1 * W + 0], 0.8414709848, 1e-6);  // (y 0, x 1): sin(1)
  for (int l = 0; l < 2; ++l) {
    const std::string ap = vp + "encoder.layers." + std::to_string(l) + ".self_attn.";
    const std::vector<float> wq = values(c, ap + "q_proj.weight"), wk = values(c, ap + "k_proj.weight"),
                             wv = values(c, ap + "v_proj.weight"), wo = values(c, ap + "out_proj.weight");
    // a(r, i), b(r, i): the r-th rows of the two factors (out_proj by columns), r < rank.
    auto check = [&](auto a, auto b, int rank, double sign, const std::string& what) {
      double diag = 0, off = 0;
      for (int i = 0; i < W; ++i)
        for (int j = 0; j < W; ++j) {
          double p = 0;
          for (int r = 0; r < rank; ++r) p += a(r, i) * b(r, j);
          (i == j ? diag : off) += i == j ? p : std::fabs(p);
        }
      diag /= W;
      off /= W * (W - 1);
      EXPECT_GT(sign * diag, 0.2) << what;
      EXPECT_GT(sign * diag, 3.5 * off) << what;
      for (int r = 0; r < rank; ++r)
        for (int t = 0; t < rank; ++t) {
          double aa = 0, bb = 0;
          for (int i = 0; i < W; ++i) aa += a(r, i) * a(t, i), bb += b(r, i) * b(t, i);
          if (r != t) {
            EXPECT_NEAR(aa, 0.0, 1e-5) << what;
          } else {
            EXPECT_NEAR(aa, bb, 1e-5) << what;  // both s_r
            if (r > 0) {
              double prev = 0;
              for (int i = 0; i < W; ++i) prev += a(r - 1, i) * a(r - 1, i);
              EXPECT_GE(prev + 1e-6, aa) << what << ": singular values descending";
            }
          }
        }
    };
    const std::string where = " layer " + std::to_string(l);
    for (int h = 0; h < heads; ++h)  // q/k: per head, rank head_dim
      check([&](int r, int i) { return double(wq[(h * dh + r) * W + i]); },
            [&](int r, int i) { return double(wk[(h * dh + r) * W + i]); }, dh, 1.0,
            "q k" + where + " head " + std::to_string(h));
    // v/out: the whole layer, full rank: out_proj v_proj = (0.4 Z - 0.4 I)^T exactly.
    check([&](int r, int i) { return double(wv[r * W + i]); }, [&](int r, int i) { return double(wo[i * W + r]); }, W,
          -1.0, "v o" + where);
    for (const char* p : {"q_proj", "k_proj", "v_proj", "out_proj"})
      for (float x : values(c, ap + p + ".bias")) ASSERT_EQ(x, 0.0f);
  }
  // The rest is the default init, value for value.
  pg::init_model(fixture_config("pg2_gqa_window"), tokenizer(), dir.file("d"), 5, pg::DType::F32);
  const pg::Checkpoint d = pg::Checkpoint::open(dir.file("d"));
  for (const char* n : {"vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
                        "vision_tower.vision_model.embeddings.patch_embedding.weight",
                        "language_model.model.layers.0.self_attn.q_proj.weight"})
    EXPECT_EQ(values(c, n), values(d, n)) << n;
  EXPECT_NE(values(c, vp + "encoder.layers.0.self_attn.q_proj.weight"),
            values(d, vp + "encoder.layers.0.self_attn.q_proj.weight"));
  // A width sincos2d cannot split in four is named.
  nlohmann::json j = nlohmann::json::parse(pg::read_file(fixture_config("pg2_gqa_window")));
  j["vision_config"]["hidden_size"] = 30;
  j["vision_config"]["num_attention_heads"] = 3;
  std::ofstream(dir.file("w30.json")) << j.dump();
  pg::ModelInitOptions p;
  p.vision_position = pg::VisionPositionInit::SinCos2D;
  EXPECT_NE(pg::test::error_of([&] {
              pg::init_model(dir.file("w30.json"), tokenizer(), dir.file("e"), p);
            }).find("divisible by 4"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir.file("e")));
}

TEST(ModelInit, SameSeedSameBytesOtherSeedOtherBytes) {
  pg::test::TempDir dir;
  pg::init_model(fixture_config("pg1_mqa"), tokenizer(), dir.file("a"), 11, pg::DType::BF16);
  pg::init_model(fixture_config("pg1_mqa"), tokenizer(), dir.file("b"), 11, pg::DType::BF16);
  pg::init_model(fixture_config("pg1_mqa"), tokenizer(), dir.file("c"), 12, pg::DType::BF16);
  const std::string a = pg::read_file(dir.file("a/model.safetensors"));
  EXPECT_EQ(a, pg::read_file(dir.file("b/model.safetensors")));
  const std::string c = pg::read_file(dir.file("c/model.safetensors"));
  EXPECT_EQ(a.size(), c.size());
  EXPECT_NE(a, c);
}

TEST(ModelInit, FinetuneRunsOnTheInitialisedModel) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  pg::test::TempDir dir;
  pg::init_model(fixture_config("pg2_gqa_window"), tokenizer(), dir.file("m"), 0, pg::DType::F32);
  fs::copy_file(pg::test::fixture("photos/chelsea.png"), dir.file("chelsea.png"));
  std::ofstream(dir.file("train.jsonl")) << R"({"image": "chelsea.png", "prefix": "caption en", "suffix": "a cat"})"
                                         << "\n";
  pg::train::TrainerConfig t;
  t.model_dir = dir.file("m");
  t.train_path = dir.file("train.jsonl");
  t.out_dir = dir.file("run");
  t.batch_size = 1;
  t.max_steps = 2;
  t.optimizer.lr = 1e-3;
  t.schedule = pg::train::ScheduleKind::Constant;
  t.warmup_fraction = 0;
  t.export_dtype = pg::DType::F32;
  t.quiet = true;
  const pg::train::TrainSummary s = pg::train::run_finetune(t);
  EXPECT_EQ(s.steps, 2);
  ASSERT_EQ(s.history.size(), 2u);
  for (const auto& h : s.history) EXPECT_TRUE(std::isfinite(h.loss) && h.loss > 0);
  // Near-uniform logits at init: the loss is about log(vocab).
  EXPECT_NEAR(s.history.front().loss, std::log(257216.0), 1.5);
}

TEST(ModelInit, Errors) {
  pg::test::TempDir dir;
  auto err = [&](const std::string& config, const std::string& tok, const std::string& out, pg::DType d) {
    return pg::test::error_of([&] { pg::init_model(config, tok, out, 0, d); });
  };
  const std::string cfg = fixture_config("pg1_mqa");
  EXPECT_NE(err(dir.file("nope.json"), tokenizer(), dir.file("o1"), pg::DType::F32).find("not found"), std::string::npos);
  EXPECT_NE(err(cfg, dir.file("nope.model"), dir.file("o1"), pg::DType::F32).find("not found"), std::string::npos);
  EXPECT_NE(err(cfg, tokenizer(), dir.file("o1"), pg::DType::F16).find("dtype"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir.file("o1")));
  fs::create_directories(dir.file("full"));
  std::ofstream(dir.file("full/x")) << "x";
  EXPECT_NE(err(cfg, tokenizer(), dir.file("full"), pg::DType::F32).find("not empty"), std::string::npos);
  // An unsupported text model: the parser's own message, and nothing left behind.
  nlohmann::json j = nlohmann::json::parse(pg::read_file(cfg));
  j["text_config"]["model_type"] = "llama";
  std::ofstream(dir.file("llama.json")) << j.dump();
  EXPECT_NE(err(dir.file("llama.json"), tokenizer(), dir.file("o2"), pg::DType::F32).find("supported text models"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir.file("o2")));
  std::ofstream(dir.file("bad.json")) << "{not json";
  fs::create_directories(dir.file("o3"));
  EXPECT_NE(err(dir.file("bad.json"), tokenizer(), dir.file("o3"), pg::DType::F32).find("not valid JSON"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(dir.file("o3")));  // an existing empty directory is kept, and left empty
}

TEST(ModelInit, Cli) {
  pg::test::TempDir dir;
  const std::string base = pg::test::cli_path() + " init --config " + fixture_config("pg1_mqa") + " --tokenizer " + tokenizer();
  const auto ok = pg::test::run_command(base + " --out " + dir.file("m") + " --seed 5 --dtype bf16 --zero-projector 2>&1");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("init: wrote"), std::string::npos) << ok.output;
  const pg::Checkpoint c = pg::Checkpoint::open(dir.file("m"));
  EXPECT_EQ(c.get("multi_modal_projector.linear.weight").dtype, pg::DType::BF16);
  for (float x : values(c, "multi_modal_projector.linear.weight")) ASSERT_EQ(x, 0.0f);
  const auto bad = pg::test::run_command(base + " --out " + dir.file("n") + " --dtype f16 2>&1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("error: init: --dtype must be f32 or bf16"), std::string::npos) << bad.output;
  const auto full = pg::test::run_command(base + " --out " + dir.file("m") + " 2>&1");
  EXPECT_NE(full.exit_code, 0);
  EXPECT_NE(full.output.find("is not empty"), std::string::npos) << full.output;
  const auto vision = pg::test::run_command(base + " --out " + dir.file("v") +
                                            " --vision-posemb sincos2d --vision-attention mimetic 2>&1");
  ASSERT_EQ(vision.exit_code, 0) << vision.output;
  EXPECT_NEAR(
      values(pg::Checkpoint::open(dir.file("v")), "vision_tower.vision_model.embeddings.position_embedding.weight")[0],
      0.0f, 1e-7);  // sin(0)
  for (const char* flag : {" --vision-posemb learned", " --vision-attention identity"}) {
    const auto r = pg::test::run_command(base + " --out " + dir.file("w") + flag + " 2>&1");
    EXPECT_NE(r.exit_code, 0) << flag;
    EXPECT_NE(r.output.find("must be"), std::string::npos) << r.output;
  }
}

}  // namespace

// The chain the project's own model is made with, all in C++: world data -> a small
// vocabulary trained on it -> a model initialised for that vocabulary (the <image> token one
// past the tokenizer's pieces) -> a model that loads, answers, and trains, with loss starting
// at about log(vocab) and the answers made of the small vocabulary's pieces.
TEST(ModelInit, SmallVocabularyChainFromTheWorld) {
  pg::test::BackendGuard guard;
  pg::test::TempDir dir;
  pg::WorldOptions w;
  w.size = 56;
  w.images = 12;
  w.tasks = {pg::WorldTask::Caption, pg::WorldTask::Answer, pg::WorldTask::Detect};
  pg::write_world(dir.file("data"), w);
  pg::TokenizerTrainOptions to;
  pg::append_jsonl_corpus(dir.file("data/train.jsonl"), to.texts);
  to.vocab_size = 600;
  const pg::TokenizerTrainResult tok = pg::train_tokenizer(to, dir.file("tok.model"));
  const int vocab = (tok.pieces + 1 + 63) / 64 * 64;  // room for <image>, a multiple of 64
  pg::ModelInitOptions io;
  io.seed = 3;
  io.fit_vocabulary = true;  // the fixture's 257216-entry config, sized down to the tokenizer
  pg::init_model(fixture_config("pg2_gqa_window"), dir.file("tok.model"), dir.file("m"), io);
  const nlohmann::json c = nlohmann::json::parse(pg::read_file(dir.file("m/config.json")));
  EXPECT_EQ(c["image_token_index"], tok.pieces);
  EXPECT_EQ(c["vocab_size"], vocab);
  EXPECT_EQ(c["text_config"]["vocab_size"], vocab);

  const auto model = pg::Model::load(dir.file("m"));
  EXPECT_EQ(model->vocab_size(), vocab);
  EXPECT_EQ(model->tokenizer().vocab_size(), tok.pieces);
  pg::Request r;
  r.pixels = {pg::preprocess_image(pg::load_image(dir.file("data/images/train_000000.png")),
                                   model->config().vision.image_size, pg::ResizeFilter::PilBicubic)};
  r.prompt = "caption en";
  pg::GenerationOptions g;
  g.max_new_tokens = 4;
  const auto results = pg::generate(*model, {r}, g);
  ASSERT_EQ(results.size(), 1u);
  for (int id : results[0].tokens) EXPECT_LT(id, vocab);

  pg::train::TrainerConfig t;
  t.model_dir = dir.file("m");
  t.train_path = dir.file("data/train.jsonl");
  t.out_dir = dir.file("run");
  t.batch_size = 4;
  t.max_steps = 3;
  t.optimizer.lr = 1e-3;
  t.quiet = true;
  const pg::train::TrainSummary s = pg::train::run_finetune(t);
  ASSERT_EQ(s.history.size(), 3u);
  EXPECT_NEAR(s.history.front().loss, std::log(static_cast<double>(vocab)), 1.0);
}
