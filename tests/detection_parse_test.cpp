// Parsing detection / segmentation answers into boxes, seg codes and token spans.
#include <gtest/gtest.h>

#include <cmath>

#include "paligemma/generate.h"
#include "paligemma/structured.h"
#include "paligemma/tokenizer.h"
#include "test_util.h"

namespace pg {
namespace {

const std::string kSeg16 =
    "<seg000><seg001><seg002><seg003><seg004><seg005><seg006><seg007>"
    "<seg008><seg009><seg010><seg011><seg012><seg013><seg014><seg127>";

TEST(DetectionParse, OneBoxOnANonSquareImageDemoBins) {
  // 640 x 427: x uses the width, y the height; Demo bins divide by 1024.
  ParsedAnswer a = parse_answer("<loc0123><loc0456><loc0789><loc1000> cat", 640, 427);
  ASSERT_EQ(a.objects.size(), 1u);
  EXPECT_TRUE(a.skipped.empty());
  const ParsedObject& o = a.objects[0];
  EXPECT_EQ(o.label, "cat");
  EXPECT_EQ(o.loc, (std::array<int, 4>{123, 456, 789, 1000}));
  EXPECT_DOUBLE_EQ(o.box.x0, 285.0);           // 456 / 1024 * 640
  EXPECT_DOUBLE_EQ(o.box.y0, 51.2900390625);   // 123 / 1024 * 427
  EXPECT_DOUBLE_EQ(o.box.x1, 625.0);           // 1000 / 1024 * 640
  EXPECT_DOUBLE_EQ(o.box.y1, 329.0068359375);  // 789 / 1024 * 427
  EXPECT_DOUBLE_EQ(o.normalized.x0, 456 / 1024.0);
  EXPECT_DOUBLE_EQ(o.normalized.y1, 789 / 1024.0);
  EXPECT_FALSE(o.seg.has_value());
  EXPECT_EQ(o.first_token, -1);
  EXPECT_TRUE(std::isnan(o.confidence));
}

TEST(DetectionParse, BigVisionBinsReachTheFarEdge) {
  ParseOptions opt;
  opt.bins = Bins::BigVision;
  ParsedAnswer a = parse_answer("<loc0000><loc0000><loc1023><loc1023>", 640, 427, opt);
  ASSERT_EQ(a.objects.size(), 1u);
  const Box& b = a.objects[0].box;
  EXPECT_DOUBLE_EQ(b.x0, 0.0);
  EXPECT_DOUBLE_EQ(b.y0, 0.0);
  EXPECT_DOUBLE_EQ(b.x1, 640.0);
  EXPECT_DOUBLE_EQ(b.y1, 427.0);
  EXPECT_EQ(a.objects[0].label, "");  // RefCOCO fine-tunes emit no label
  ParsedAnswer d = parse_answer("<loc0100><loc0200><loc0300><loc0400> x", 640, 427, opt);
  EXPECT_DOUBLE_EQ(d.objects[0].box.x0, 200 / 1023.0 * 640);
  EXPECT_DOUBLE_EQ(d.objects[0].box.y1, 300 / 1023.0 * 427);
  // The demo convention never reaches the edge.
  ParsedAnswer e = parse_answer("<loc0000><loc0000><loc1023><loc1023>", 640, 427);
  EXPECT_DOUBLE_EQ(e.objects[0].box.x1, 1023 / 1024.0 * 640);
}

TEST(DetectionParse, SeveralObjectsMultiWordLabelsAndSegmentation) {
  std::string text = "<loc0010><loc0020><loc0030><loc0040> traffic light ; <loc0001><loc0002><loc0003><loc0004>" +
                     kSeg16 + " dog ; <loc0005><loc0006><loc0007><loc0008>";
  ParsedAnswer a = parse_answer(text, 100, 200);
  ASSERT_EQ(a.objects.size(), 3u);
  EXPECT_TRUE(a.skipped.empty());
  EXPECT_EQ(a.objects[0].label, "traffic light");
  EXPECT_EQ(a.objects[1].label, "dog");
  ASSERT_TRUE(a.objects[1].seg.has_value());
  EXPECT_EQ((*a.objects[1].seg)[0], 0);
  EXPECT_EQ((*a.objects[1].seg)[5], 5);
  EXPECT_EQ((*a.objects[1].seg)[15], 127);
  EXPECT_EQ(a.objects[2].label, "");
  EXPECT_EQ(text.substr(a.objects[1].text_begin, a.objects[1].text_end - a.objects[1].text_begin),
            "<loc0001><loc0002><loc0003><loc0004>" + kSeg16 + " dog");
}

TEST(DetectionParse, MalformedPiecesAreSkippedWithReasonsNeighboursKept) {
  const std::string good = "<loc0001><loc0002><loc0003><loc0004> ok";
  struct Case {
    std::string piece, reason_part;
  };
  std::vector<Case> cases = {
      {"<loc0001><loc0002><loc0003> three", "found 3"},
      {"<loc0001><loc0002><loc0003><loc0004><loc0005> five", "found 5"},
      {"<loc0001><loc0002><loc0003><loc0004><seg001><seg002> short", "found 2"},
      {"<loc0500><loc0002><loc0100><loc0004> flipped y", "y2 < y1"},
      {"<loc0001><loc0500><loc0003><loc0100> flipped x", "x2 < x1"},
      {"stray <loc0001><loc0002><loc0003><loc0004> x", "text before"},
      {"<loc1500><loc0002><loc0003><loc0004> big", "> 1023"},
      {"<loc12><loc0002><loc0003><loc0004> short digits", "malformed"},
      {"<loc0001><loc0002><loc0003><loc0004>" + kSeg16 + "<seg003> seventeen", "found 17"},
      {"<loc0001><loc0002><loc0003><loc0004><seg200>" + kSeg16.substr(8 * 15), "> 127"},
      {"just words", "no <loc>"},
      {"<loc0001><loc0002><loc0003><loc0004> cat <loc0001><loc0002><loc0003><loc0004> dog", "after the label"},
  };
  for (const auto& c : cases) {
    ParsedAnswer a = parse_answer(good + " ; " + c.piece + " ; " + good, 640, 427);
    ASSERT_EQ(a.objects.size(), 2u) << c.piece;
    ASSERT_EQ(a.skipped.size(), 1u) << c.piece;
    EXPECT_EQ(a.skipped[0].text, c.piece);
    EXPECT_NE(a.skipped[0].reason.find(c.reason_part), std::string::npos) << c.piece << ": " << a.skipped[0].reason;
    EXPECT_EQ(a.objects[0].label, "ok");
    EXPECT_EQ(a.objects[1].label, "ok");
  }
}

TEST(DetectionParse, EmptyWhitespaceGarbageNeverThrow) {
  EXPECT_TRUE(parse_answer("", 640, 427).objects.empty());
  EXPECT_TRUE(parse_answer("", 640, 427).skipped.empty());
  EXPECT_TRUE(parse_answer("  \n\t ", 640, 427).skipped.empty());
  for (const std::string& g : std::vector<std::string>{";", " ; ; ", "<loc", "<loc9999", "<seg>", "<loc0001><loc0002><loc0003><loc0004",
                        std::string("\0\xff\x01<loc0001>", 12), "<loc0001><loc0002><loc0003><loc0004><seg01",
                        "<<<<>>>>;;;;", "<loc0001><loc0002><loc0003><loc0004>;"}) {
    ParsedAnswer a;
    EXPECT_NO_THROW(a = parse_answer(g, 640, 427)) << g;
    EXPECT_FALSE(a.skipped.empty()) << g;
  }
  // The last one keeps its valid object and reports the empty piece after the ';'.
  ParsedAnswer a = parse_answer("<loc0001><loc0002><loc0003><loc0004>;", 640, 427);
  EXPECT_EQ(a.objects.size(), 1u);
  // A non-positive image size gives no boxes.
  ParsedAnswer z = parse_answer("<loc0001><loc0002><loc0003><loc0004> a", 0, 427);
  EXPECT_TRUE(z.objects.empty());
  EXPECT_EQ(z.skipped.size(), 1u);
}

TEST(DetectionParse, TenThousandObjects) {
  std::string text;
  for (int i = 0; i < 10000; ++i) {
    if (i) text += " ; ";
    text += (i % 7 == 3) ? "<loc0001><loc0002> broken" : "<loc0001><loc0002><loc0300><loc0400> obj";
  }
  ParsedAnswer a = parse_answer(text, 640, 427);
  size_t broken = 0;
  for (int i = 0; i < 10000; ++i) broken += i % 7 == 3;
  EXPECT_EQ(a.skipped.size(), broken);
  EXPECT_EQ(a.objects.size(), 10000 - broken);
}

TEST(DetectionParse, TokenSpansAndConfidence) {
  // Token texts as token_texts() makes them: "▁" -> " ", control tokens -> "".
  std::vector<std::string> toks = {"<loc0001>", "<loc0002>", "<loc0003>", "<loc0004>", " cat", " ;",
                                   " ",         "<loc0005>", "<loc0006>", "<loc0007>", "<loc0008>", " traffic",
                                   " light",    " ;",        " ",         "<loc0009>", "<loc0010>", "<loc0011>",
                                   "<loc0012>", ""};
  std::vector<float> lp = {-0.1f, -0.2f, -0.3f, -0.4f, -0.5f, -0.7f, -0.01f, -1, -1, -1, -1, -0.25f, -0.5f,
                           -0.9f, -0.02f, -0.1f, -0.1f, -0.1f, -0.1f, -3.0f};
  std::string text = "<loc0001><loc0002><loc0003><loc0004> cat ; <loc0005><loc0006><loc0007><loc0008> traffic light"
                     " ; <loc0009><loc0010><loc0011><loc0012>";
  ParseOptions opt;
  opt.token_texts = toks;
  ParsedAnswer a = parse_answer(text, 640, 427, opt);
  ASSERT_EQ(a.objects.size(), 3u);
  EXPECT_EQ(a.objects[0].first_token, 0);
  EXPECT_EQ(a.objects[0].token_end, 5);
  EXPECT_EQ(a.objects[0].label_token_begin, 4);
  EXPECT_EQ(a.objects[1].first_token, 7);
  EXPECT_EQ(a.objects[1].token_end, 13);
  EXPECT_EQ(a.objects[1].label_token_begin, 11);
  EXPECT_EQ(a.objects[2].first_token, 15);
  EXPECT_EQ(a.objects[2].token_end, 19);
  EXPECT_EQ(a.objects[2].label_token_begin, 19);
  score_objects(a, lp);
  EXPECT_NEAR(a.objects[0].confidence, std::exp(-1.5), 1e-6);
  EXPECT_NEAR(a.objects[0].label_confidence, std::exp(-0.5), 1e-6);
  EXPECT_NEAR(a.objects[1].confidence, std::exp(-4.75), 1e-6);
  EXPECT_NEAR(a.objects[1].label_confidence, std::exp(-0.75), 1e-6);
  EXPECT_NEAR(a.objects[2].confidence, std::exp(-0.4), 1e-6);
  EXPECT_DOUBLE_EQ(a.objects[2].label_confidence, 1.0);  // empty label: no tokens
  // Log-probs shorter than the spans: NaN, not a crash.
  EXPECT_TRUE(std::isnan(object_confidence(a.objects[2], std::span<const float>(lp.data(), 3))));
  // Tokens that do not spell the text: no spans.
  std::vector<std::string> wrong = {"<loc0001>", "nope"};
  opt.token_texts = wrong;
  ParsedAnswer w = parse_answer(text, 640, 427, opt);
  ASSERT_EQ(w.objects.size(), 3u);
  EXPECT_EQ(w.objects[0].first_token, -1);
  EXPECT_TRUE(std::isnan(object_confidence(w.objects[0], lp)));
}

TEST(DetectionParse, ParseResultWithTheFixtureTokenizer) {
  Tokenizer t = Tokenizer::load(test::fixture("models/tokenizer.model"));
  Result r;
  std::string text = "<loc0100><loc0200><loc0300><loc0400> cat ; <loc0010><loc0020><loc0030><loc0040>" + kSeg16 + " dog";
  r.tokens = t.encode(text);
  r.tokens.push_back(t.eos_id());
  r.text = t.decode(r.tokens);
  ASSERT_EQ(r.text, text);
  r.logprobs.assign(r.tokens.size(), -0.1f);
  ParsedAnswer a = parse_result(r, t, 640, 427);
  ASSERT_EQ(a.objects.size(), 2u);
  EXPECT_EQ(a.objects[0].first_token, 0);
  EXPECT_EQ(t.piece(r.tokens[a.objects[1].first_token]), "<loc0010>");
  EXPECT_EQ(t.piece(r.tokens[a.objects[1].label_token_begin - 1]), "<seg127>");
  EXPECT_EQ(a.objects[1].token_end, static_cast<int>(r.tokens.size()) - 1);  // <eos> not part of it
  EXPECT_NEAR(a.objects[0].confidence, std::exp(-0.1 * a.objects[0].token_end), 1e-6);
  EXPECT_FALSE(std::isnan(a.objects[1].label_confidence));
  EXPECT_GT(a.objects[1].label_confidence, 0.0);
}

}  // namespace
}  // namespace pg
