// Per-task evaluation (include/paligemma/eval.h): CIDEr-D and the VQA normalisation against the
// Python references (tools/golden/make_eval_golden.py), task routing, exact match, detection
// mAP and segmentation mIoU on hand-made sets, and `paligemma eval` end to end.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "paligemma/annotate.h"
#include "paligemma/error.h"
#include "paligemma/eval.h"
#include "paligemma/image.h"
#include "paligemma/mask_codec.h"
#include "paligemma/segmentation.h"
#include "paligemma/tokenizer.h"
#include "test_util.h"

namespace pg {
namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

EvalExample example(const std::string& prefix, const std::string& target, const std::string& prediction,
                    int w = 640, int h = 480) {
  EvalExample e;
  e.prefix = prefix;
  e.targets = {target};
  e.prediction = prediction;
  e.image_width = w;
  e.image_height = h;
  return e;
}

TEST(CiderD, MatchesPycocoevalcap) {
  const nlohmann::json g = read_json(test::fixture("eval/cider_golden.json"));
  for (const auto& c : g["tokenizer_cases"])
    EXPECT_EQ(caption_tokens(c["text"].get<std::string>()), c["tokens"].get<std::string>()) << c["text"];
  ASSERT_GE(g["sets"].size(), 3u);
  for (const auto& set : g["sets"]) {
    SCOPED_TRACE(set["name"].get<std::string>());
    const auto cands = set["candidates"].get<std::vector<std::string>>();
    const auto refs = set["references"].get<std::vector<std::vector<std::string>>>();
    const auto ctok = set["candidate_tokens"].get<std::vector<std::string>>();
    const auto rtok = set["reference_tokens"].get<std::vector<std::vector<std::string>>>();
    const auto want = set["per_image"].get<std::vector<double>>();
    for (size_t i = 0; i < cands.size(); ++i) {
      EXPECT_EQ(caption_tokens(cands[i]), ctok[i]);
      for (size_t k = 0; k < refs[i].size(); ++k) EXPECT_EQ(caption_tokens(refs[i][k]), rtok[i][k]);
    }
    const CiderScore got = cider_d(ctok, rtok);
    ASSERT_EQ(got.per_image.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.per_image[i], want[i], 1e-9) << "image " << i;
    EXPECT_NEAR(got.score, set["score"].get<double>(), 1e-9);
    // The same through score_examples (raw strings, several references per image).
    std::vector<EvalExample> examples;
    for (size_t i = 0; i < cands.size(); ++i) {
      EvalExample e = example("caption en", "", cands[i]);
      e.targets = refs[i];
      examples.push_back(e);
    }
    const EvalReport report = score_examples(examples);
    ASSERT_NE(report.find(EvalTask::Caption), nullptr);
    EXPECT_NEAR(report.find(EvalTask::Caption)->cider, set["score"].get<double>(), 1e-9);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(report.per_example[i].score, want[i], 1e-9);
  }
  // A perfect single-reference set of disjoint 4-word captions scores 10 per image; a
  // 2-word caption has no 3- and 4-grams, so half of the mean over n is 0.
  const CiderScore perfect = cider_d({"one small black cat", "two big brown dogs"},
                                     {{"one small black cat"}, {"two big brown dogs"}});
  EXPECT_NEAR(perfect.score, 10.0, 1e-12);
  EXPECT_NEAR(cider_d({"a cat", "two big brown dogs"}, {{"a cat"}, {"two big brown dogs"}}).per_image[0], 5.0, 1e-12);
  EXPECT_NE(test::error_of([] { cider_d({"a"}, {}); }).find("1 candidates but 0"), std::string::npos);
  EXPECT_NE(test::error_of([] { cider_d({"a"}, {{}}); }).find("no reference"), std::string::npos);
}

TEST(EvalVqa, NormalizationMatchesTheOfficialCode) {
  const nlohmann::json g = read_json(test::fixture("eval/vqa_golden.json"));
  ASSERT_GE(g["normalization"].size(), 50u);
  for (const auto& c : g["normalization"])
    EXPECT_EQ(vqa_normalize(c["answer"].get<std::string>()), c["normalized"].get<std::string>()) << c["answer"];
  for (const auto& c : g["accuracy"])
    EXPECT_NEAR(vqa_accuracy(c["prediction"].get<std::string>(), c["references"].get<std::vector<std::string>>()),
                c["accuracy"].get<double>(), 1e-9)
        << c["prediction"];
  // Hand-checked against vqaEval.py's rules.
  EXPECT_EQ(vqa_normalize("Two dogs."), "2 dogs");
  EXPECT_EQ(vqa_normalize("1,000"), "1000");  // a digit,digit comma: every listed punctuation removed
  EXPECT_EQ(vqa_normalize("hello,world"), "hello world");
  EXPECT_EQ(vqa_normalize("3.5"), "3.5");
  // One reference: normalised exact match.
  EXPECT_EQ(vqa_accuracy("The Cat", {"cat"}), 1.0);
  EXPECT_EQ(vqa_accuracy("dog", {"cat"}), 0.0);
}

TEST(EvalRouting, TaskFromPrefix) {
  EXPECT_EQ(task_of_prefix("caption en"), EvalTask::Caption);
  EXPECT_EQ(task_of_prefix("  Caption es"), EvalTask::Caption);
  EXPECT_EQ(task_of_prefix("answer en what is this?"), EvalTask::Answer);
  EXPECT_EQ(task_of_prefix("question en cat"), EvalTask::Answer);
  EXPECT_EQ(task_of_prefix("detect cat ; dog"), EvalTask::Detect);
  EXPECT_EQ(task_of_prefix("segment the cat"), EvalTask::Segment);
  EXPECT_EQ(task_of_prefix("ocr"), EvalTask::Ocr);
  EXPECT_EQ(task_of_prefix("describe en"), EvalTask::Other);
  EXPECT_EQ(task_of_prefix("captions"), EvalTask::Other);
  EXPECT_EQ(task_of_prefix(""), EvalTask::Other);
  EXPECT_STREQ(task_name(EvalTask::Segment), "segment");
}

TEST(EvalScore, ExactMatchAfterTrimming) {
  std::vector<EvalExample> ex = {example("ocr", "STOP 42", "  STOP 42\n"), example("ocr", "STOP 42", "stop 42"),
                                 example("describe en", "a cat", "a cat"), example("describe en", "a cat", "")};
  const EvalReport r = score_examples(ex);
  ASSERT_EQ(r.tasks.size(), 2u);
  const TaskReport* ocr = r.find(EvalTask::Ocr);
  const TaskReport* other = r.find(EvalTask::Other);
  ASSERT_TRUE(ocr && other);
  EXPECT_EQ(ocr->examples, 2u);
  EXPECT_EQ(ocr->exact_matches, 1u);
  EXPECT_DOUBLE_EQ(ocr->exact_match, 0.5);
  EXPECT_DOUBLE_EQ(other->exact_match, 0.5);
  EXPECT_EQ(other->empty_predictions, 1u);
  EXPECT_TRUE(r.per_example[0].exact_match);
  EXPECT_FALSE(r.per_example[1].exact_match);
  EXPECT_EQ(r.per_example[3].score, 0.0);
  EXPECT_EQ(r.find(EvalTask::Caption), nullptr);
}

TEST(EvalScore, DetectionMapOnAHandMadeSet) {
  const std::string cat0 = "<loc0100><loc0100><loc0500><loc0500> cat";
  const std::string cat1 = "<loc0200><loc0200><loc0600><loc0600> cat";
  const std::string dog = "<loc0000><loc0000><loc0300><loc0300> dog";
  std::vector<EvalExample> ex = {
      example("detect cat", cat0, cat0),                    // found
      example("detect cat", cat1, ""),                      // missed
      example("detect dog", dog, "<loc0001><loc0002> dog"), // malformed: no object
  };
  const EvalReport r = score_examples(ex);
  const TaskReport* d = r.find(EvalTask::Detect);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->examples, 3u);
  EXPECT_EQ(d->ground_truth_objects, 3u);
  EXPECT_EQ(d->predicted_objects, 1u);
  EXPECT_EQ(d->malformed_answers, 1u);
  EXPECT_EQ(d->skipped_pieces, 1u);
  EXPECT_EQ(d->empty_predictions, 1u);
  EXPECT_FALSE(d->ranked_by_confidence);
  // One of two cats found at precision 1: COCO's 101-point AP = 51 / 101 (recall 0..0.5).
  EXPECT_NEAR(d->detection.ap50.at("cat"), 51.0 / 101.0, 1e-12);
  EXPECT_NEAR(d->detection.ap50.at("dog"), 0.0, 1e-12);
  EXPECT_NEAR(d->detection.map50, 51.0 / 202.0, 1e-12);
  EXPECT_NEAR(d->detection.map, 51.0 / 202.0, 1e-12);  // a perfect box: every IoU threshold
  EXPECT_EQ(r.per_example[2].skipped_pieces, 1u);
  EXPECT_TRUE(std::isnan(r.per_example[0].score));
  // Two perfect answers: mAP 1.
  const EvalReport perfect = score_examples({example("detect cat", cat0, cat0), example("detect dog", dog, dog)});
  EXPECT_NEAR(perfect.find(EvalTask::Detect)->detection.map50, 1.0, 1e-12);
}

TEST(EvalScore, DetectionsRankedByTokenConfidence) {
  const Tokenizer tok = Tokenizer::load(test::fixture("models/tokenizer.model"));
  const std::string hit = "<loc0100><loc0100><loc0500><loc0500> cat";
  const std::string miss = "<loc0600><loc0600><loc0900><loc0900> cat";
  auto with_logprob = [&](EvalExample e, float lp) {
    e.tokens = tok.encode(e.prediction);
    e.logprobs.assign(e.tokens.size(), lp);
    return e;
  };
  // Image 0: a hit, unlikely; image 1: a false positive, likely. Two cats in all.
  std::vector<EvalExample> ex = {example("detect cat", hit, hit), example("detect cat", hit, miss)};
  // Without log-probs both objects score 1 (first in their answer): the hit ranks first.
  const EvalReport by_order = score_examples(ex);
  EXPECT_NEAR(by_order.find(EvalTask::Detect)->detection.ap50.at("cat"), 51.0 / 101.0, 1e-12);
  EXPECT_FALSE(by_order.find(EvalTask::Detect)->ranked_by_confidence);
  // With them, the false positive ranks first: precision 1/2 at recall 1/2.
  ex[0] = with_logprob(ex[0], -2.0f);
  ex[1] = with_logprob(ex[1], -0.01f);
  EvalOptions o;
  o.tokenizer = &tok;
  const EvalReport by_confidence = score_examples(ex, o);
  EXPECT_TRUE(by_confidence.find(EvalTask::Detect)->ranked_by_confidence);
  EXPECT_NEAR(by_confidence.find(EvalTask::Detect)->detection.ap50.at("cat"), 0.5 * 51.0 / 101.0, 1e-12);
}

TEST(EvalScore, SegmentBoxFallbackWithHandMadeMask) {
  // 100x100 image; ground truth: the left half. Prediction: the whole image (bigvision bins).
  BinaryMask half{100, 100, std::vector<uint8_t>(100 * 100, 0)};
  for (int y = 0; y < 100; ++y)
    for (int x = 0; x < 50; ++x) half.data[y * 100 + x] = 1;
  EvalExample e = example("segment left", "", "<loc0000><loc0000><loc1023><loc1023> left", 100, 100);
  e.ground_truth_mask = half;
  EvalExample empty = example("segment left", "", "", 100, 100);
  empty.ground_truth_mask = half;
  EvalOptions o;
  o.bins = Bins::BigVision;
  const EvalReport r = score_examples({e, empty}, o);
  const TaskReport* s = r.find(EvalTask::Segment);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->box_iou_fallback);
  EXPECT_NEAR(r.per_example[0].score, 0.5, 1e-12);
  EXPECT_NEAR(r.per_example[1].score, 0.0, 1e-12);
  EXPECT_NEAR(s->referring.miou, 0.25, 1e-12);
  EXPECT_EQ(s->referring.missing, 1u);
  EXPECT_EQ(s->empty_predictions, 1u);
  EXPECT_FALSE(r.notes.empty());
  // A ground-truth mask of the wrong size is an error.
  EvalExample bad = e;
  bad.image_width = 99;
  EXPECT_NE(test::error_of([&] { score_examples({bad}, o); }).find("ground-truth mask is 100x100"),
            std::string::npos);
}

TEST(EvalScore, SegmentMaskIoUWithTheCodec) {
  const MaskCodec codec = MaskCodec::load(test::fixture("vae/vae_deflated.npz"));
  std::string codes;
  for (int i = 0; i < 16; ++i) codes += seg_token(i % codec.codebook_size());
  const std::string answer = "<loc0100><loc0100><loc0800><loc0800>" + codes + " cat";
  EvalOptions o;
  o.codec = &codec;
  std::vector<EvalExample> ex = {
      example("segment cat", answer, answer, 64, 48),                                   // same mask: IoU 1
      example("segment cat", answer, "<loc0100><loc0100><loc0800><loc0800> cat", 64, 48),  // no codes: missing
      example("segment cat", answer, answer, 64, 48),                                   // vs an empty mask: 0
  };
  ex[2].ground_truth_mask = BinaryMask{64, 48, std::vector<uint8_t>(64 * 48, 0)};
  const EvalReport r = score_examples(ex, o);
  const TaskReport* s = r.find(EvalTask::Segment);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->box_iou_fallback);
  // The decoded mask must not be empty for the first case to mean anything.
  const auto decoded = decode_masks(parse_answer(answer, 64, 48), codec, 64, 48);
  ASSERT_TRUE(decoded[0].has_value());
  size_t inside = 0;
  for (uint8_t v : decoded[0]->data) inside += v != 0;
  ASSERT_GT(inside, 0u);
  EXPECT_NEAR(r.per_example[0].score, 1.0, 1e-12);
  EXPECT_NEAR(s->referring.miou, 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(s->referring.acc50, 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(r.per_example[1].score, 0.0, 1e-12);
  EXPECT_NEAR(r.per_example[2].score, 0.0, 1e-12);
  EXPECT_EQ(s->referring.missing, 1u);
  EXPECT_EQ(s->referring.examples, 3u);
}

TEST(EvalScore, EmptyAndMalformedPredictionsScoreZero) {
  std::vector<EvalExample> ex = {example("caption en", "a cat on a mat", ""),
                                 example("caption en", "a dog in the park", "a dog in the park"),
                                 example("answer en what?", "two", ""), example("answer en what?", "two", "2"),
                                 example("detect cat", "<loc0100><loc0100><loc0500><loc0500> cat", "<loc0100> cat")};
  const EvalReport r = score_examples(ex);
  EXPECT_EQ(r.per_example[0].score, 0.0);
  EXPECT_GT(r.per_example[1].score, 0.0);
  EXPECT_EQ(r.find(EvalTask::Caption)->empty_predictions, 1u);
  EXPECT_EQ(r.per_example[2].score, 0.0);
  EXPECT_EQ(r.per_example[3].score, 1.0);
  EXPECT_DOUBLE_EQ(r.find(EvalTask::Answer)->vqa_accuracy, 0.5);
  EXPECT_EQ(r.find(EvalTask::Answer)->empty_predictions, 1u);
  EXPECT_EQ(r.find(EvalTask::Detect)->malformed_answers, 1u);
  EXPECT_EQ(r.find(EvalTask::Detect)->detection.map50, 0.0);
  // JSON and table.
  const nlohmann::json j = nlohmann::json::parse(to_json(r));
  EXPECT_EQ(j["examples"], 5);
  EXPECT_EQ(j["tasks"]["caption"]["examples"], 2);
  EXPECT_EQ(j["tasks"]["answer"]["vqa_accuracy"], 0.5);
  EXPECT_EQ(j["tasks"]["detect"]["malformed_answers"], 1);
  const std::string table = format_table(r);
  EXPECT_NE(table.find("caption"), std::string::npos);
  EXPECT_NE(table.find("VQA acc 0.5000"), std::string::npos);
  EXPECT_NE(table.find("mAP@0.5"), std::string::npos);
  // No examples: an empty report.
  EXPECT_TRUE(score_examples({}).tasks.empty());
}

// ---- the CLI ----

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

TEST(EvalCli, EndToEndOnAFixtureModel) {
  test::TempDir dir;
  std::filesystem::copy_file(test::fixture("photos/chelsea.png"), dir.file("cat.png"));
  const Image img = load_image(dir.file("cat.png"));
  BinaryMask mask{img.width, img.height, std::vector<uint8_t>(static_cast<size_t>(img.width) * img.height, 0)};
  for (int y = 0; y < img.height / 2; ++y)
    for (int x = 0; x < img.width / 2; ++x) mask.data[static_cast<size_t>(y) * img.width + x] = 1;
  write_mask_png(dir.file("cat_mask.png"), mask);
  write_file(dir.file("test.jsonl"),
             "{\"image\": \"cat.png\", \"prefix\": \"caption en\", \"suffix\": \"a cat\"}\n"
             "{\"image\": \"cat.png\", \"prefix\": \"answer en what is it?\", \"suffix\": \"cat\"}\n"
             "\n"
             "{\"image\": \"cat.png\", \"prefix\": \"detect cat\", \"suffix\": \"<loc0100><loc0100><loc0900><loc0900> cat\"}\n"
             "{\"image\": \"cat.png\", \"prefix\": \"segment cat\", \"suffix\": \"\", \"mask\": \"cat_mask.png\"}\n"
             "{\"image\": \"cat.png\", \"prefix\": \"ocr\", \"suffix\": \"TEXT\"}\n"
             "{\"image\": \"cat.png\", \"prefix\": \"describe en\", \"suffix\": \"a cat\"}\n"
             "{\"image\": \"cat.png\", \"prefix\": \"caption en\", \"suffix\": \"left out by --limit\"}\n");
  const std::string cmd = test::cli_path() + " eval --model " + test::fixture("models/pg2_gqa_window") +
                          " --data " + dir.file("test.jsonl") + " --max-new-tokens 4 --batch 4 --limit 6 --threads 2" +
                          " --json " + dir.file("report.json") + " --predictions " + dir.file("pred.jsonl") + " 2>&1";
  const auto r = test::run_command(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* t : {"caption", "answer", "detect", "segment", "ocr", "other", "CIDEr-D", "mAP@0.5", "box mIoU"})
    EXPECT_NE(r.output.find(t), std::string::npos) << t << "\n" << r.output;
  EXPECT_NE(r.output.find("eval: 6 / 6 examples"), std::string::npos) << r.output;  // progress on stderr
  const nlohmann::json j = read_json(dir.file("report.json"));
  EXPECT_EQ(j["examples"], 6);
  ASSERT_EQ(j["tasks"].size(), 6u);
  for (const char* t : {"caption", "answer", "detect", "segment", "ocr", "other"}) EXPECT_EQ(j["tasks"][t]["examples"], 1) << t;
  EXPECT_EQ(j["tasks"]["detect"]["ground_truth_objects"], 1);
  EXPECT_EQ(j["tasks"]["segment"]["iou"], "box");
  EXPECT_EQ(j["tasks"]["segment"]["unscored"], 0);
  std::ifstream p(dir.file("pred.jsonl"));
  std::string line;
  int lines = 0;
  while (std::getline(p, line)) {
    const nlohmann::json e = nlohmann::json::parse(line);
    EXPECT_TRUE(e.contains("prediction"));
    EXPECT_TRUE(e.contains("task"));
    ++lines;
  }
  EXPECT_EQ(lines, 6);
}

TEST(EvalCli, BadInputIsAClearError) {
  test::TempDir dir;
  std::filesystem::copy_file(test::fixture("photos/chelsea.png"), dir.file("cat.png"));
  const std::string base = test::cli_path() + " eval --quiet --model " + test::fixture("models/pg2_gqa_window");
  write_file(dir.file("bad.jsonl"),
             "{\"image\": \"cat.png\", \"prefix\": \"caption en\", \"suffix\": \"a cat\"}\n"
             "{\"image\": \"cat.png\", \"prefix\": \"caption en\", \"suffix\": \n");
  auto r = test::run_command(base + " --data " + dir.file("bad.jsonl") + " 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("bad.jsonl:2:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("error:"), std::string::npos) << r.output;

  write_file(dir.file("nomask.jsonl"),
             "{\"image\": \"cat.png\", \"prefix\": \"segment cat\", \"suffix\": \"\", \"mask\": \"missing.png\"}\n");
  r = test::run_command(base + " --data " + dir.file("nomask.jsonl") + " 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("nomask.jsonl:1: mask file"), std::string::npos) << r.output;

  r = test::run_command(base + " --data " + dir.file("absent.jsonl") + " 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;

  r = test::run_command(base + " --data " + dir.file("bad.jsonl") + " --no-such-option 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("no-such-option"), std::string::npos) << r.output;

  r = test::run_command(base + " --data " + dir.file("bad.jsonl") + " --batch 0 2>&1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--batch must be >= 1"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace pg
