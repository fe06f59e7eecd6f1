// The fine-tuning loop end to end on the tiny fixture models: overfitting a few examples
// until greedy decoding of the exported checkpoint returns their suffixes exactly; an exact
// resume; frozen parts staying bit-identical; JSONL errors naming file and line; truncation
// reported, never silent.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "paligemma/checkpoint.h"
#include "paligemma/generate.h"
#include "paligemma/image.h"
#include "paligemma/model.h"
#include "paligemma/tokenizer.h"
#include "paligemma/world.h"
#include "test_util.h"
#include "train/checkpoint_io.h"
#include "train/dataset.h"
#include "train/trainer.h"

namespace {

namespace fs = std::filesystem;
using pg::train::TrainerConfig;

// Copies the photos next to a JSONL file (paths relative to it) with these lines.
std::string write_data(const pg::test::TempDir& dir, const std::string& name, const std::vector<std::string>& lines) {
  for (const char* photo : {"chelsea.png", "rocket.jpg", "coffee.png"})
    if (!fs::exists(dir.file(photo))) fs::copy_file(pg::test::fixture(std::string("photos/") + photo), dir.file(photo));
  std::ofstream out(dir.file(name));
  for (const auto& l : lines) out << l << "\n";
  return dir.file(name);
}

const std::vector<std::string> kExamples = {
    R"({"image": "chelsea.png", "prefix": "caption en", "suffix": "a cat on a sofa"})",
    R"({"image": "rocket.jpg", "prefix": "answer en what is this?", "suffix": "a rocket"})",
    R"({"image": "coffee.png", "prefix": "detect cup", "suffix": "<loc0100><loc0200><loc0700><loc0800> cup"})",
};

TrainerConfig overfit_config(const std::string& model, const std::string& data, const std::string& out) {
  TrainerConfig c;
  c.model_dir = pg::test::fixture("models/" + model);
  c.train_path = data;
  c.out_dir = out;
  c.batch_size = 3;
  c.max_steps = 60;
  c.optimizer.lr = 3e-3;
  c.optimizer.clip_norm = 1.0;
  c.schedule = pg::train::ScheduleKind::Constant;
  c.warmup_fraction = 0;
  c.export_dtype = pg::DType::F32;
  c.quiet = true;
  return c;
}

class Overfit : public ::testing::TestWithParam<std::string> {};

TEST_P(Overfit, GreedyDecodingReturnsTheSuffixes) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  pg::test::TempDir dir;
  const std::string data = write_data(dir, "train.jsonl", kExamples);
  const TrainerConfig c = overfit_config(GetParam(), data, dir.file("run"));
  const pg::train::TrainSummary s = pg::train::run_finetune(c);
  ASSERT_EQ(s.steps, 60);
  EXPECT_LT(s.history.back().loss, 0.05 * s.history.front().loss) << "the loss fell from " << s.history.front().loss;
  // The exported checkpoint, loaded by the inference engine, answers with the suffixes.
  auto model = pg::Model::load(dir.file("run/model"));
  pg::GenerationOptions g;
  g.max_new_tokens = 24;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"chelsea.png", "caption en"}, {"rocket.jpg", "answer en what is this?"}, {"coffee.png", "detect cup"}};
  const std::vector<std::string> want = {"a cat on a sofa", "a rocket", "<loc0100><loc0200><loc0700><loc0800> cup"};
  for (size_t i = 0; i < cases.size(); ++i) {
    pg::Request r;
    r.pixels.push_back(pg::preprocess_image(pg::load_image(dir.file(cases[i].first)), model->config().vision.image_size,
                                            pg::ResizeFilter::PilBicubic));
    r.prompt = cases[i].second;
    const auto out = pg::generate(*model, {r}, g);
    EXPECT_EQ(out[0].text, want[i]) << GetParam() << " example " << i;
    EXPECT_EQ(out[0].stop_reason, "eos") << GetParam() << " example " << i;
  }
  // metrics.jsonl has one line per step; loss.svg exists.
  std::ifstream metrics(dir.file("run/metrics.jsonl"));
  int lines = 0;
  for (std::string l; std::getline(metrics, l);) ++lines;
  EXPECT_EQ(lines, 60);
  EXPECT_TRUE(fs::file_size(dir.file("run/loss.svg")) > 500);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Overfit, ::testing::Values("pg2_gqa_window", "pg1_mqa"));

TEST(Finetune, ResumeIsExact) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  pg::test::TempDir dir;
  const std::string data = write_data(dir, "train.jsonl", kExamples);
  TrainerConfig c = overfit_config("pg2_gqa_window", data, dir.file("straight"));
  c.batch_size = 1;  // 3 steps per epoch: the stop falls inside the second epoch
  c.max_steps = 6;
  c.schedule = pg::train::ScheduleKind::Cosine;
  c.warmup_fraction = 0.2;
  c.seed = 7;
  pg::train::run_finetune(c);
  // The same run stopped after 4 steps, then resumed by a new call.
  TrainerConfig r = c;
  r.out_dir = dir.file("resumed");
  r.stop_after = 4;
  const auto part = pg::train::run_finetune(r);
  EXPECT_FALSE(part.finished);
  EXPECT_EQ(part.steps, 4);
  EXPECT_FALSE(fs::exists(dir.file("resumed/model")));
  r.stop_after = 0;
  r.resume = true;
  const auto rest = pg::train::run_finetune(r);
  EXPECT_TRUE(rest.finished);
  EXPECT_EQ(rest.history.size(), 2u);
  // Bit-identical weights and the same losses step by step.
  const pg::train::Parameters a = pg::train::load_parameters(dir.file("straight/state/params.safetensors"));
  const pg::train::Parameters b = pg::train::load_parameters(dir.file("resumed/state/params.safetensors"));
  for (const auto& [name, t] : a.tensors()) ASSERT_EQ(t.data, b.at(name).data) << name;
  auto losses = [&](const std::string& f) {
    std::vector<double> out;
    std::ifstream in(f);
    for (std::string l; std::getline(in, l);) out.push_back(nlohmann::json::parse(l)["loss"].get<double>());
    return out;
  };
  EXPECT_EQ(losses(dir.file("straight/metrics.jsonl")).size(), 6u);
  EXPECT_EQ(losses(dir.file("straight/metrics.jsonl")), losses(dir.file("resumed/metrics.jsonl")));
  // A resume with other settings is refused.
  TrainerConfig other = r;
  other.seed = 8;
  EXPECT_NE(pg::test::error_of([&] { pg::train::run_finetune(other); }).find("different run"), std::string::npos);
}

TEST(Finetune, FrozenVisionStaysFrozen) {
  pg::test::BackendGuard guard;
  pg::set_precision(pg::Precision::F32);
  pg::test::TempDir dir;
  const std::string data = write_data(dir, "train.jsonl", kExamples);
  TrainerConfig c = overfit_config("pg2_gqa_window", data, dir.file("run"));
  c.max_steps = 2;
  c.trainable = pg::train::TrainableSet::FrozenVision;
  pg::train::run_finetune(c);
  const pg::Checkpoint src = pg::Checkpoint::open(c.model_dir);
  const pg::train::Parameters before = pg::train::Parameters::from_checkpoint(src);
  const pg::train::Parameters after = pg::train::load_parameters(dir.file("run/state/params.safetensors"));
  int vision = 0, changed = 0;
  for (const auto& [name, t] : before.tensors()) {
    // Frozen matrices are read from the checkpoint in place and not part of the state.
    if (!after.has(name)) {
      EXPECT_EQ(name.rfind("vision_tower.", 0), 0u) << name << " is missing from the state but trains";
      ++vision;
      continue;
    }
    const bool same = t.data == after.at(name).data;
    if (name.rfind("vision_tower.", 0) == 0) {
      EXPECT_TRUE(same) << name << " is frozen but changed";
      ++vision;
    } else {
      changed += !same;
    }
  }
  EXPECT_GT(vision, 0);
  EXPECT_GT(changed, 0);
  EXPECT_TRUE(after.at("multi_modal_projector.linear.weight").data !=
              before.at("multi_modal_projector.linear.weight").data)
      << "the projector trains";
}

TEST(FinetuneData, BadLinesNameFileAndLine) {
  pg::test::TempDir dir;
  const std::string path = write_data(dir, "bad.jsonl",
                                      {kExamples[0], R"({"image": "chelsea.png", "prefix": "caption en"})", "not json",
                                       R"({"image": "missing.png", "prefix": "a", "suffix": "b"})", ""});
  const std::string err = pg::test::error_of([&] { pg::train::load_jsonl(path, false); });
  EXPECT_NE(err.find("bad.jsonl:2: missing \"suffix\""), std::string::npos) << err;
  const pg::train::Dataset d = pg::train::load_jsonl(path, true);
  ASSERT_EQ(d.records.size(), 1u);
  ASSERT_EQ(d.skipped.size(), 3u);
  EXPECT_EQ(d.skipped[0].line, 2);
  EXPECT_EQ(d.skipped[1].line, 3);
  EXPECT_NE(d.skipped[1].reason.find("not valid JSON"), std::string::npos);
  EXPECT_EQ(d.skipped[2].line, 4);
  EXPECT_NE(d.skipped[2].reason.find("missing.png does not exist"), std::string::npos) << d.skipped[2].reason;
  const std::string none = write_data(dir, "none.jsonl", {"[1, 2]"});
  EXPECT_NE(pg::test::error_of([&] { pg::train::load_jsonl(none, true); }).find("no usable line"), std::string::npos);
}

TEST(FinetuneData, TruncationKeepsThePromptAndCounts) {
  const std::string mdir = pg::test::fixture("models/pg2_gqa_window");
  const pg::Tokenizer tok = pg::Tokenizer::load(mdir + "/tokenizer.model");
  const pg::ModelConfig config = pg::load_model_config(mdir);
  pg::train::TrainExample ex;
  pg::train::TruncationStats stats;
  ASSERT_TRUE(pg::train::build_sequence(tok, config, "caption en", "a cat on a sofa", 1, 0, &ex, &stats));
  const int full = static_cast<int>(ex.ids.size()), prompt = ex.prefix_len;
  EXPECT_EQ(ex.ids.back(), tok.eos_id());
  ASSERT_TRUE(pg::train::build_sequence(tok, config, "caption en", "a cat on a sofa", 1, prompt + 2, &ex, &stats));
  EXPECT_EQ(static_cast<int>(ex.ids.size()), prompt + 2);
  EXPECT_EQ(ex.num_targets(), 2);
  EXPECT_EQ(stats.truncated, 1);
  EXPECT_FALSE(pg::train::build_sequence(tok, config, "caption en", "a cat", 1, prompt, &ex, &stats));
  EXPECT_EQ(stats.dropped, 1);
  EXPECT_GT(full, prompt + 2);
}

// The trainer keeps each distinct image once, resized as 8-bit RGB; the pixels of every
// example must be preprocess_image's for that file, whichever filter, and images shared
// between records are decoded once; the same picture under another file name is kept once.
TEST(FinetuneData, ExampleStoreGivesPreprocessImagePixels) {
  pg::test::TempDir dir;
  fs::copy_file(pg::test::fixture("photos/chelsea.png"), dir.file("chelsea_again.png"));
  const std::string path = write_data(
      dir, "d.jsonl",
      {kExamples[0], kExamples[1], R"({"image": ["coffee.png", "chelsea.png"], "prefix": "caption en", "suffix": "x"})",
       R"({"image": "chelsea.png", "prefix": "answer en what?", "suffix": "a cat"})",
       R"({"image": "chelsea_again.png", "prefix": "answer en who?", "suffix": "a cat"})"});
  const std::string mdir = pg::test::fixture("models/pg2_two_images");
  const pg::Tokenizer tok = pg::Tokenizer::load(mdir + "/tokenizer.model");
  const pg::ModelConfig config = pg::load_model_config(mdir);
  const pg::train::Dataset data = pg::train::load_jsonl(path, false);
  for (const pg::ResizeFilter filter : {pg::ResizeFilter::PilBicubic, pg::ResizeFilter::BigVisionBilinear}) {
    pg::train::ExampleStore store(config, filter, 0);
    for (const auto& r : data.records) ASSERT_TRUE(store.add(r, tok, config, nullptr));
    ASSERT_EQ(store.size(), 5u);
    EXPECT_EQ(store.image_count(), 3u);
    for (size_t i = 0; i < data.records.size(); ++i) {
      std::vector<float> want;
      for (const std::string& image : data.records[i].images) {
        const std::vector<float> px = pg::preprocess_image(pg::load_image(image), config.vision.image_size, filter);
        want.insert(want.end(), px.begin(), px.end());
      }
      pg::train::TrainExample seq;
      ASSERT_TRUE(pg::train::build_sequence(tok, config, data.records[i].prefix, data.records[i].suffix,
                                            static_cast<int>(data.records[i].images.size()), 0, &seq, nullptr));
      const pg::train::TrainExample ex = store.example(i);
      EXPECT_EQ(ex.pixels, want) << "record " << i;
      EXPECT_EQ(ex.ids, seq.ids);
      EXPECT_EQ(ex.prefix_len, seq.prefix_len);
    }
  }
}

}  // namespace

namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(nlohmann::json::parse(l));
  return out;
}

}  // namespace

// Task metrics during training: the validation pass generates with the weights as they are
// (the trainer's f32 tensors and adapters read in place). Its answers and metrics must be
// those `paligemma eval` gets from the exported checkpoint (full fine-tuning) or from the base
// with the exported adapter (LoRA): the random fixture model answers arbitrary tokens, so
// equal answers on every record show the in-place model is the trained one.
TEST(Finetune, ValidationTaskMetricsMatchEvalOfTheExport) {
  pg::test::BackendGuard guard;
  const pg::test::TempDir dir;
  const std::string vae = pg::test::fixture("vae/vae_stored.npz");
  pg::WorldOptions w;
  w.size = 56;
  w.vae_path = vae;
  w.seed = 1;
  w.images = 4;
  w.split_name = "train";
  pg::write_world(dir.file("data"), w);
  w.seed = 2;
  w.images = 3;
  w.split_name = "val";
  pg::write_world(dir.file("data"), w);
  const std::string model = pg::test::fixture("models/pg2_gqa_window");
  for (const bool lora : {false, true}) {
    TrainerConfig c = overfit_config("pg2_gqa_window", dir.file("data/train.jsonl"), dir.file(lora ? "lora" : "full"));
    c.val_path = dir.file("data/val.jsonl");
    c.max_steps = 4;
    c.batch_size = 2;
    c.eval_every = 2;
    c.eval_metrics = -1;
    c.eval_max_new_tokens = 10;
    c.vae_path = vae;
    if (lora) c.trainable = pg::train::TrainableSet::Lora;
    const pg::train::TrainSummary s = pg::train::run_finetune(c);
    ASSERT_EQ(s.history.size(), 4u);
    EXPECT_TRUE(s.history[0].val_metrics.empty());
    const auto& m = s.history[3].val_metrics;
    for (const char* key : {"caption.cider", "answer.vqa_accuracy", "detect.map50", "segment.miou"})
      EXPECT_EQ(m.count(key), 1u) << key;
    EXPECT_EQ(m.at("caption.examples"), 3.0);
    EXPECT_EQ(s.initial_val_metrics.count("caption.cider"), 1u) << "the starting point is measured";
    const auto logged = read_jsonl(c.out_dir + "/metrics.jsonl");
    ASSERT_EQ(logged.size(), 5u);  // step 0 (before training), then steps 1..4
    EXPECT_EQ(logged[0]["step"], 0);
    EXPECT_FALSE(logged[0].contains("loss"));
    EXPECT_TRUE(logged[0].contains("val_metrics"));
    EXPECT_TRUE(logged[2].contains("val_metrics"));
    EXPECT_FALSE(logged[3].contains("val_metrics"));
    EXPECT_EQ(logged[4]["val_metrics"]["caption.cider"].get<double>(), m.at("caption.cider"));
    EXPECT_TRUE(fs::exists(c.out_dir + "/validation/step_0.jsonl"));

    const std::string predictions = dir.file(lora ? "lora_pred.jsonl" : "full_pred.jsonl");
    const std::string target = lora ? model + " --lora " + c.out_dir + "/adapter" : c.out_dir + "/model";
    const auto r = pg::test::run_command(pg::test::cli_path() + " eval --quiet --model " + target + " --data " +
                                         c.val_path + " --vae " + vae + " --max-new-tokens 10 --predictions " +
                                         predictions + " --json " + predictions + ".report.json");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto ours = read_jsonl(c.out_dir + "/validation/step_4.jsonl");
    const auto theirs = read_jsonl(predictions);
    ASSERT_EQ(ours.size(), theirs.size());
    ASSERT_GT(ours.size(), 10u);
    std::set<std::string> distinct;
    for (size_t i = 0; i < ours.size(); ++i) {
      EXPECT_EQ(ours[i]["prediction"], theirs[i]["prediction"]) << (lora ? "lora " : "full ") << i;
      distinct.insert(ours[i]["prediction"].get<std::string>());
    }
    EXPECT_GT(distinct.size(), 1u) << "the answers should differ between records";
    const auto report = nlohmann::json::parse(std::ifstream(predictions + ".report.json"))["tasks"];
    EXPECT_EQ(report["caption"]["cider"].get<double>(), m.at("caption.cider"));
    EXPECT_EQ(report["answer"]["vqa_accuracy"].get<double>(), m.at("answer.vqa_accuracy"));
    EXPECT_EQ(report["detect"]["map50"].get<double>(), m.at("detect.map50"));
    EXPECT_EQ(report["segment"]["miou"].get<double>(), m.at("segment.miou"));
  }
}
