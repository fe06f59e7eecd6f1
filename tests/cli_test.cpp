// The `paligemma` binary end to end on the fixture checkpoints: every decoding mode, --json,
// --dump (checked against the transformers golden data), info, and batch files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "paligemma/npy.h"
#include "test_util.h"

namespace pg {
namespace {

namespace fs = std::filesystem;
using test::run_command;

std::string cli() { return test::cli_path(); }
std::string model(const std::string& name) { return test::fixture("models/" + name); }
std::string photo(const std::string& name) { return test::fixture("photos/" + name); }

nlohmann::json golden_meta(const std::string& dir) {
  std::ifstream in(dir + "/meta.json");
  return nlohmann::json::parse(in);
}

const char* kModels[] = {"pg1_mqa", "pg2_gqa_window", "pg2_qpas", "pg2_two_images"};

TEST(Cli, EveryDecodingModeOnEveryFixture) {
  for (const char* m : kModels) {
    for (const char* mode : {"greedy", "sample", "beam"}) {
      std::string cmd = cli() + " run --quiet --model " + model(m) + " --image " + photo("chelsea.png");
      if (std::string(m) == "pg2_two_images") cmd += " --image " + photo("coffee.png");
      cmd += std::string(" --prompt 'caption en' --max-new-tokens 5 --json --mode ") + mode;
      if (std::string(mode) == "sample") cmd += " --seed 3 --temperature 0.8 --top-k 40 --top-p 0.9";
      if (std::string(mode) == "beam") cmd += " --beams 2";
      auto r = run_command(cmd);
      ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
      auto j = nlohmann::json::parse(r.output);
      EXPECT_TRUE(j.contains("text"));
      EXPECT_GE(j["tokens"].size(), 1u);
      EXPECT_LE(j["tokens"].size(), 5u);
      EXPECT_EQ(j["tokens"].size(), j["logprobs"].size());
      for (const char* k : {"load_s", "image_encode_s", "prefill_s", "decode_s"})
        EXPECT_TRUE(j["timings"].contains(k)) << k;
      if (std::string(mode) == "sample") {  // the same seed gives the same answer
        auto again = run_command(cmd);
        EXPECT_EQ(nlohmann::json::parse(again.output)["tokens"], j["tokens"]) << cmd;
      }
    }
  }
}

TEST(Cli, DumpMatchesTransformers) {
  // The golden case was made from the photo file by transformers' processor, so this checks the
  // whole chain: image decoding and resizing, the tower, the prompt, greedy decoding.
  for (const char* m : kModels) {
    for (const auto& c : fs::directory_iterator(test::fixture(std::string("golden/") + m))) {
      auto meta = golden_meta(c.path().string());
      test::TempDir out;
      std::string cmd = cli() + " run --quiet --precision f32 --model " + model(m) + " --sliding-window hf";
      for (const auto& img : meta["images"]) cmd += " --image " + photo(img.get<std::string>());
      cmd += " --prompt '" + meta["prompt"].get<std::string>() + "' --max-new-tokens " +
             std::to_string(meta["max_new_tokens"].get<int>()) + " --dump " + out.path();
      auto r = run_command(cmd);
      ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
      const std::string g = c.path().string();
      auto px = read_npy(out.file("pixel_values.npy")).as_f32();
      auto px_ref = read_npy(g + "/pixel_values.npy").as_f32();
      ASSERT_EQ(px.size(), px_ref.size());
      float dmax = 0;
      for (size_t i = 0; i < px.size(); ++i) dmax = std::max(dmax, std::fabs(px[i] - px_ref[i]));
      EXPECT_LE(dmax, 2.0f / 255.0f + 1e-6f) << g << ": at most one level of 255 (x2 after normalising)";
      EXPECT_EQ(read_npy(out.file("input_ids.npy")).as_i64(), read_npy(g + "/input_ids.npy").as_i64()) << g;
      auto feats = read_npy(out.file("image_features.npy"));
      auto feats_ref = read_npy(g + "/image_features.npy");
      EXPECT_EQ(feats.shape, feats_ref.shape);
      EXPECT_EQ(read_npy(out.file("generated_ids.npy")).as_i64(), read_npy(g + "/greedy_ids.npy").as_i64()) << g;
      auto logits = read_npy(out.file("step_logits.npy"));
      ASSERT_EQ(logits.shape.size(), 2u);
      EXPECT_EQ(logits.shape[0], static_cast<int64_t>(meta["greedy_tokens"].get<int>()));
      EXPECT_EQ(logits.shape[1], 257216);
    }
  }
}

TEST(Cli, BatchFileRunsEachRequest) {
  test::TempDir dir;
  fs::copy_file(photo("rocket.jpg"), dir.file("rocket.jpg"));
  {
    std::ofstream f(dir.file("batch.jsonl"));
    f << R"({"image": "rocket.jpg", "prompt": "caption en"})" << "\n";
    f << R"({"image": ")" << photo("chelsea.png") << R"(", "prompt": "answer en what is this?"})" << "\n";
  }
  auto r = run_command(cli() + " run --quiet --model " + model("pg1_mqa") + " --batch " + dir.file("batch.jsonl") +
                       " --max-new-tokens 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j.size(), 2u);
}

TEST(Cli, InfoDescribesTheCheckpoint) {
  auto r = run_command(cli() + " info --model " + model("pg2_gqa_window") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["family"], "PaliGemma 2");
  EXPECT_EQ(j["text"]["kv_heads"], 2);
  EXPECT_GT(j["parameters"]["total"].get<int64_t>(), 8000000);
  EXPECT_TRUE(j["parameters"]["by_dtype"].contains("BF16"));
  EXPECT_GT(j["memory"]["total_bytes"].get<int64_t>(), j["memory"]["weights_bytes"].get<int64_t>());
  auto text = run_command(cli() + " info --model " + model("pg1_mqa"));
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("PaliGemma 1"), std::string::npos);
  EXPECT_NE(text.output.find("1 kv heads"), std::string::npos) << text.output;  // MQA
}

}  // namespace
}  // namespace pg

namespace pg {
namespace {

TEST(Cli, ParseAnswerWithoutAModel) {
  // rocket.jpg is 640x427: boxes come back in its pixels (demo bins: v / 1024 * size).
  auto r = test::run_command(test::cli_path() + " parse --image " + test::fixture("photos/rocket.jpg") +
                             " --text '<loc0100><loc0200><loc0800><loc0900> rocket ; <loc0001><loc0002> junk'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["objects"].size(), 1u);
  EXPECT_EQ(j["objects"][0]["label"], "rocket");
  EXPECT_DOUBLE_EQ(j["objects"][0]["box"][0].get<double>(), 200.0 / 1024 * 640);
  EXPECT_DOUBLE_EQ(j["objects"][0]["box"][1].get<double>(), 100.0 / 1024 * 427);
  EXPECT_DOUBLE_EQ(j["objects"][0]["box"][2].get<double>(), 900.0 / 1024 * 640);
  EXPECT_DOUBLE_EQ(j["objects"][0]["box"][3].get<double>(), 800.0 / 1024 * 427);
  ASSERT_EQ(j["skipped"].size(), 1u);
  EXPECT_NE(j["skipped"][0]["reason"].get<std::string>().find("found 2"), std::string::npos);

  auto big = test::run_command(test::cli_path() + " parse --width 1023 --height 1023 --bins bigvision" +
                               " --text '<loc0000><loc0000><loc1023><loc1023>'");
  ASSERT_EQ(big.exit_code, 0) << big.output;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(big.output)["objects"][0]["box"][2].get<double>(), 1023.0);
  auto bad = test::run_command(test::cli_path() + " parse --text '<loc0001>'");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--width"), std::string::npos) << bad.output;
}

TEST(Cli, RunJsonReportsObjectsForLocAnswers) {
  // The random fixture's answers to "detect" are not well-formed objects; whatever they are,
  // --json must carry the parse (objects + skipped pieces with reasons) for an answer with <loc>.
  auto r = test::run_command(test::cli_path() + " run --quiet --model " + test::fixture("models/pg1_mqa") +
                             " --image " + test::fixture("photos/chelsea.png") +
                             " --prompt 'detect cat' --max-new-tokens 8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  // Greedy on this fixture is deterministic and emits <loc> tokens after stray text.
  ASSERT_NE(j["text"].get<std::string>().find("<loc"), std::string::npos) << j["text"];
  ASSERT_TRUE(j.contains("objects"));
  EXPECT_GE(j["objects"].size() + j["skipped"].size(), 1u);
}

}  // namespace
}  // namespace pg

namespace pg {
namespace {

std::string seg_answer() {
  std::string codes;
  for (int c : {105, 30, 52, 105, 64, 67, 45, 126, 105, 64, 61, 21, 45, 126, 52, 45}) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "<seg%03d>", c);
    codes += buf;
  }
  return "<loc0100><loc0300><loc1000><loc0700>" + codes + " cat ; <loc0050><loc0050><loc0300><loc0250> ear";
}

TEST(Cli, ParseSegmentAnswerWithMasksAndAnnotation) {
  test::TempDir out;
  const std::string base = test::cli_path() + " parse --image " + test::fixture("photos/chelsea.png") + " --text '" +
                           seg_answer() + "'";
  auto missing = test::run_command(base);
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("--vae"), std::string::npos) << missing.output;

  auto r = test::run_command(base + " --vae " + test::fixture("vae/vae_deflated.npz") + " --annotate " +
                             out.file("annotated.png") + " --masks " + out.file("masks"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["objects"].size(), 2u);
  EXPECT_TRUE(j["objects"][0].contains("mask"));
  EXPECT_EQ(j["objects"][0]["mask"]["size"], nlohmann::json({300, 451}));  // COCO: [height, width]
  EXPECT_FALSE(j["objects"][1].contains("mask"));  // a plain detection
  EXPECT_TRUE(fs::exists(out.file("annotated.png")));
  EXPECT_TRUE(fs::exists(out.file("masks/mask_0.png")));
  EXPECT_FALSE(fs::exists(out.file("masks/mask_1.png")));

  auto bad_vae = test::run_command(base + " --vae /no/such/vae.npz");
  EXPECT_NE(bad_vae.exit_code, 0);
  EXPECT_NE(bad_vae.output.find("/no/such/vae.npz"), std::string::npos) << bad_vae.output;
}

}  // namespace
}  // namespace pg

namespace pg {
namespace {

TEST(Cli, RunWritesAnnotatedImage) {
  test::TempDir out;
  auto r = test::run_command(test::cli_path() + " run --quiet --model " + test::fixture("models/pg1_mqa") +
                             " --image " + test::fixture("photos/chelsea.png") +
                             " --prompt 'detect cat' --max-new-tokens 8 --annotate " + out.file("a.png") +
                             " --masks " + out.file("m"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out.file("a.png")));
  auto batch_annotate = test::run_command(test::cli_path() + " run --quiet --model " +
                                          test::fixture("models/pg1_mqa") + " --prompt 'caption en' --annotate " +
                                          out.file("b.png"));
  EXPECT_NE(batch_annotate.exit_code, 0);
  EXPECT_NE(batch_annotate.output.find("--annotate"), std::string::npos) << batch_annotate.output;
}

}  // namespace
}  // namespace pg

// A model directory that ships its VQ-VAE (vae-oid.npz, as the bundled world model does) is
// read when --vae is not given: a broken one is a warning naming it (a caption still works),
// by run and by eval.
TEST(Cli, ModelDirectoryVaeIsUsedWithoutTheFlag) {
  pg::test::TempDir dir;
  const std::string model = dir.file("m");
  std::filesystem::copy(pg::test::fixture("models/pg2_gqa_window"), model);
  std::ofstream(model + "/vae-oid.npz") << "not a zip";
  const std::string image = pg::test::fixture("photos/chelsea.png");
  auto run = pg::test::run_command(pg::test::cli_path() + " run --model " + model + " --image " + image +
                               " --prompt 'segment cat' --max-new-tokens 2 2>&1");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("warning: " + model + "/vae-oid.npz"), std::string::npos) << run.output;
  {
    std::ofstream(dir.file("t.jsonl")) << R"({"image": ")" << image << R"(", "prefix": "caption en", "suffix": "a cat"})"
                                       << "\n";
  }
  auto eval = pg::test::run_command(pg::test::cli_path() + " eval --model " + model + " --data " + dir.file("t.jsonl") +
                                    " --max-new-tokens 2 2>&1");
  EXPECT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_NE(eval.output.find("warning: " + model + "/vae-oid.npz"), std::string::npos) << eval.output;
  std::filesystem::copy_file(pg::test::fixture("vae/vae_deflated.npz"), model + "/vae-oid.npz", std::filesystem::copy_options::overwrite_existing);
  run = pg::test::run_command(pg::test::cli_path() + " run --model " + model + " --image " + image +
                          " --prompt 'segment cat' --max-new-tokens 2 2>&1");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output.find("warning"), std::string::npos) << run.output;
}

namespace pg {
namespace {

// `paligemma plot`: one polyline per run, through the metric's points (keys with dots inside
// objects), in step order as the files give them; bad runs and absent metrics are errors.
TEST(Cli, PlotDrawsOneCurvePerRunAndNamesBadInput) {
  test::TempDir dir;
  {
    std::ofstream a(dir.file("a.jsonl"));
    a << R"({"step":0,"val_metrics":{"answer.vqa_accuracy":0.0}})"
         "\n"
      << R"({"step":1,"loss":2.0})"
         "\n"
      << R"({"step":10,"val_metrics":{"answer.vqa_accuracy":0.5}})"
         "\n"
      << R"({"step":20,"val_metrics":{"answer.vqa_accuracy":1.0}})"
         "\n";
    fs::create_directories(dir.file("run_b"));
    std::ofstream b(dir.file("run_b/metrics.jsonl"));
    b << R"({"step":0,"val_metrics":{"answer.vqa_accuracy":0.25}})"
         "\n"
      << R"({"step":20,"val_metrics":{"answer.vqa_accuracy":0.25}})"
         "\n";
  }
  std::ofstream(dir.file("bad.jsonl")) << R"({"step":0,"loss":1})"
                                          "\n"
                                       << "{not json\n";
  const std::string base = test::cli_path() + " plot --metric val_metrics.answer.vqa_accuracy --out " +
                           dir.file("p.svg") + " --title 'A <&> B'";
  auto ok = test::run_command(base + " --run 'from pt=" + dir.file("a.jsonl") + "' --run scratch=" + dir.file("run_b"));
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("2 runs, 5 points"), std::string::npos) << ok.output;
  std::ifstream in(dir.file("p.svg"));
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(svg.find(">from pt</text>"), std::string::npos);
  EXPECT_NE(svg.find(">scratch</text>"), std::string::npos);
  EXPECT_NE(svg.find("A &lt;&amp;&gt; B"), std::string::npos);
  // Polylines: run a rises from the x axis (y from 0 to 1) across the whole width; run b is flat.
  std::vector<std::vector<std::pair<double, double>>> lines;
  for (size_t p = 0; (p = svg.find("points=\"", p)) != std::string::npos;) {
    p += 8;
    std::istringstream pts(svg.substr(p, svg.find('"', p) - p));
    std::vector<std::pair<double, double>> line;
    double x, y;
    char comma;
    while (pts >> x >> comma >> y) line.emplace_back(x, y);
    lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 2u);
  ASSERT_EQ(lines[0].size(), 3u);
  ASSERT_EQ(lines[1].size(), 2u);
  EXPECT_LT(lines[0][0].first, lines[0][1].first);
  EXPECT_GT(lines[0][0].second, lines[0][1].second);  // SVG y grows downwards
  EXPECT_GT(lines[0][1].second, lines[0][2].second);
  EXPECT_NEAR(lines[0][1].second, (lines[0][0].second + lines[0][2].second) / 2, 1e-6);
  EXPECT_DOUBLE_EQ(lines[1][0].second, lines[1][1].second);
  EXPECT_DOUBLE_EQ(lines[1][1].first, lines[0][2].first);

  for (const auto& [flags, needle] : std::vector<std::pair<std::string, std::string>>{
           {" --run nolabel", "LABEL=PATH"},
           {" --run x=" + dir.file("missing.jsonl"), "missing.jsonl"},
           {" --run x=" + dir.file("a.jsonl") + " --metric val_metrics.caption.cider", "val_metrics.caption.cider"},
           {" --run x=" + dir.file("bad.jsonl"), "bad.jsonl line 2 is not JSON"},
       }) {
    auto r = test::run_command(test::cli_path() + " plot --out " + dir.file("q.svg") + flags);
    EXPECT_EQ(r.exit_code, 1) << flags << ": " << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << flags << ": " << r.output;
  }
}

}  // namespace
}  // namespace pg

namespace pg {
namespace {

// The bundled models (models/paligemma-world: mix; paligemma-world-pt: pt) load and answer the
// example image in the world's grammar: a caption of the world's words ending in ".", a
// detection that parses into labelled boxes. (What they answer is measured by `eval`, in
// docs/WORLD_MODEL.md; this guards the committed files and their format.)
TEST(BundledModels, AnswerTheExampleInTheWorldsGrammar) {
  const std::string root = test::fixture("../..");
  const std::regex caption_words(
      "(a|and|the|text|small|medium|large|red|green|blue|yellow|purple|orange|white|black|circle|square|triangle|"
      "rectangle|star|ring|hexagon|\"[^\"]*\"|,| )+\\.");
  for (const char* model : {"paligemma-world", "paligemma-world-pt"}) {
    const std::string base = test::cli_path() + " run --quiet --model " + root + "/models/" + model + " --image " +
                             root + "/examples/world.png";
    auto caption = test::run_command(base + " --prompt 'caption en' 2>&1");
    ASSERT_EQ(caption.exit_code, 0) << model << ": " << caption.output;
    std::string text = caption.output;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    EXPECT_TRUE(std::regex_match(text, caption_words)) << model << ": '" << text << "'";
    auto detect = test::run_command(base + " --prompt 'detect star' --json 2>&1");
    ASSERT_EQ(detect.exit_code, 0) << model << ": " << detect.output;
    const auto j = nlohmann::json::parse(detect.output);
    ASSERT_FALSE(j["objects"].empty()) << model << ": " << detect.output;
    EXPECT_EQ(j["objects"][0]["label"], "star") << model;
  }
}

}  // namespace
}  // namespace pg
