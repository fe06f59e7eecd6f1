// Training a small PaliGemma-layout tokenizer (include/paligemma/tokenizer_train.h).
#include "paligemma/tokenizer_train.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "paligemma/error.h"
#include "paligemma/tokenizer.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

std::vector<std::string> corpus(int n) {
  const char* adjs[] = {"large", "small", "red", "blue", "green", "tiny", "bright", "dark"};
  const char* nouns[] = {"circle", "square", "triangle", "star", "stars", "cat", "dog", "car"};
  std::mt19937 r(7);
  auto pick = [&](auto& a) { return std::string(a[r() % (sizeof(a) / sizeof(a[0]))]); };
  std::vector<std::string> t;
  for (int i = 0; i < n; ++i) {
    switch (i % 6) {
      case 0: t.push_back("a " + pick(adjs) + " " + pick(adjs) + " " + pick(nouns) + " and a " + pick(adjs) + " " +
                          pick(nouns) + "."); break;
      case 1: t.push_back("how many " + pick(nouns) + " are there?"); break;
      case 2: t.push_back(std::to_string(r() % 100000) + " " + std::to_string(r() % 13)); break;
      case 3: t.push_back("<loc0010><loc0020><loc0300><loc0400> " + pick(nouns)); break;
      case 4: t.push_back("caption en"); break;
      default: t.push_back("detect " + pick(nouns) + " ; " + pick(nouns) + "\n"); break;
    }
  }
  return t;
}

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("pg_tok_train_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& n) const { return (path / n).string(); }
};

std::string loc(int i) {
  char b[16];
  std::snprintf(b, sizeof b, "<loc%04d>", i);
  return b;
}
std::string seg(int i) {
  char b[16];
  std::snprintf(b, sizeof b, "<seg%03d>", i);
  return b;
}

// One trained model shared by the layout tests (training takes about a second).
class TokenizerTrainLayout : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    pg::TokenizerTrainOptions o;
    o.texts = corpus(600);
    o.vocab_size = 512;
    result_ = pg::train_tokenizer(o, dir_->file("tok.model"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
  static pg::TokenizerTrainResult result_;
};
TempDir* TokenizerTrainLayout::dir_ = nullptr;
pg::TokenizerTrainResult TokenizerTrainLayout::result_;

TEST_F(TokenizerTrainLayout, SizeAndSpecialIds) {
  pg::Tokenizer t = pg::Tokenizer::load(dir_->file("tok.model"));
  EXPECT_EQ(t.vocab_size(), 512 + 1152);
  EXPECT_EQ(result_.pieces, 512 + 1152);
  EXPECT_EQ(result_.requested, 512 + 1152);
  EXPECT_EQ(t.piece(0), "<pad>");
  EXPECT_EQ(t.piece(1), "<eos>");
  EXPECT_EQ(t.piece(2), "<bos>");
  EXPECT_EQ(t.piece(3), "<unk>");
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_TRUE(t.is_control(0) && t.is_control(1) && t.is_control(2));
  // Gemma's head pieces: <mask> 4, [@BOS@] 5, <unused0..99> 6..105, 106/107 turns, "\n" 108.
  EXPECT_EQ(t.piece_to_id("<mask>"), 4);
  EXPECT_EQ(t.piece_to_id("<unused0>"), 6);
  EXPECT_EQ(t.piece_to_id("<start_of_turn>"), 106);
  EXPECT_EQ(t.piece_to_id("<end_of_turn>"), 107);
  EXPECT_EQ(t.encode("\n"), std::vector<int>{108});
  EXPECT_EQ(result_.newline_id, 108);
  EXPECT_EQ(t.loc0_id(), 109);
  EXPECT_EQ(t.seg0_id(), 109 + 1024);
  EXPECT_EQ(t.piece_to_id("<0x00>"), 109 + 1152);
  EXPECT_EQ(t.piece_to_id("<0xFF>"), 109 + 1152 + 255);
  EXPECT_EQ(result_.first_byte_id, 109 + 1152);
}

TEST_F(TokenizerTrainLayout, LocAndSegAreSingleConsecutiveTokens) {
  pg::Tokenizer t = pg::Tokenizer::load(dir_->file("tok.model"));
  ASSERT_GE(t.loc0_id(), 0);
  ASSERT_GE(t.seg0_id(), 0);
  for (int i = 0; i < 1024; ++i) ASSERT_EQ(t.encode(loc(i)), std::vector<int>{t.loc0_id() + i}) << loc(i);
  for (int i = 0; i < 128; ++i) ASSERT_EQ(t.encode(seg(i)), std::vector<int>{t.seg0_id() + i}) << seg(i);
  EXPECT_EQ(t.piece(t.loc0_id() + 1023), "<loc1023>");
  EXPECT_EQ(t.piece(t.seg0_id() + 127), "<seg127>");
}

TEST_F(TokenizerTrainLayout, RoundTripsIncludingByteFallback) {
  pg::Tokenizer t = pg::Tokenizer::load(dir_->file("tok.model"));
  const std::vector<std::string> samples = {
      "a large red circle and a small blue square.", "how many stars are there?", "caption en\n",
      "<loc0010><loc0020><loc0300><loc0400> circle ; <loc0000><loc1023><seg000><seg127> star",
      "ünïcödé ☃ 猫 QXZ {}~|", "a  b   c\n\nd\t", "2024-07-10 12345", " leading space", "beach"};
  for (const std::string& s : samples) EXPECT_EQ(t.decode(t.encode(s)), s) << s;
  // Unseen characters go through the byte pieces, never <unk>.
  for (int id : t.encode("☃ 猫")) {
    EXPECT_NE(id, 3);
  }
  std::vector<int> snow = t.encode("☃");
  ASSERT_EQ(snow.size(), 3u);  // three UTF-8 bytes
  EXPECT_EQ(t.piece(snow[0]), "<0xE2>");
  // Detection suffix: each loc one token, then the word.
  std::vector<int> det = t.encode("<loc0010><loc0020><loc0300><loc0400> circle");
  ASSERT_GE(det.size(), 5u);
  EXPECT_EQ(det[0], t.loc0_id() + 10);
  EXPECT_EQ(det[3], t.loc0_id() + 400);
  // Digits are split, no dummy prefix.
  EXPECT_EQ(t.encode("12345").size(), 5u);
  EXPECT_NE(t.encode("beach"), t.encode(" beach"));
  // Learned pieces exist past the bytes (merges happened).
  EXPECT_LT(t.encode("circle").size(), 6u);
}

TEST(TokenizerTrain, DeterministicByteIdentical) {
  TempDir d;
  pg::TokenizerTrainOptions o;
  o.texts = corpus(300);
  o.vocab_size = 450;
  pg::train_tokenizer(o, d.file("a.model"));
  pg::train_tokenizer(o, d.file("b.model"));
  const std::string a = read_all(d.file("a.model")), b = read_all(d.file("b.model"));
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  o.texts.push_back("zebra quokka");
  pg::train_tokenizer(o, d.file("c.model"));
  EXPECT_NE(read_all(d.file("c.model")), a);
}

TEST(TokenizerTrain, WithoutGemmaHead) {
  TempDir d;
  pg::TokenizerTrainOptions o;
  o.texts = corpus(300);
  o.vocab_size = 300;
  o.gemma_head_pieces = false;
  EXPECT_EQ(pg::min_tokenizer_vocab(false), 262);
  pg::train_tokenizer(o, d.file("t.model"));
  pg::Tokenizer t = pg::Tokenizer::load(d.file("t.model"));
  EXPECT_EQ(t.vocab_size(), 300 + 1152);
  EXPECT_EQ(t.encode("\n"), std::vector<int>{4});
  EXPECT_EQ(t.loc0_id(), 5);
  EXPECT_EQ(t.seg0_id(), 5 + 1024);
  EXPECT_EQ(t.piece_to_id("<0x00>"), 5 + 1152);
  EXPECT_EQ(t.piece_to_id("<mask>"), -1);
  EXPECT_EQ(t.decode(t.encode("how many stars? ☃")), "how many stars? ☃");
}

TEST(TokenizerTrain, StripLocSeg) {
  EXPECT_EQ(pg::strip_loc_seg_tokens("<loc0010><loc0020><loc0300><loc0400> circle ; <seg001><seg127>"),
            " circle ; ");
  EXPECT_EQ(pg::strip_loc_seg_tokens("<loc12> <seg0001x <locabcd> <seg12>"), "<loc12> <seg0001x <locabcd> <seg12>");
}

TEST(TokenizerTrain, JsonlCorpus) {
  TempDir d;
  {
    std::ofstream f(d.file("a.jsonl"));
    f << R"({"image": "x.png", "prefix": "detect circle", "suffix": "<loc0001><loc0002><loc0003><loc0004> circle"})"
      << "\n\n"
      << R"({"image": "y.png", "prefix": "caption en", "suffix": "a red square"})" << "\n"
      << R"({"image": "z.png", "prefix": "segment cat", "suffix": "<loc0001><loc0002><loc0003><loc0004><seg001>"})"
      << "\n";
  }
  std::vector<std::string> texts;
  pg::append_jsonl_corpus(d.file("a.jsonl"), texts);
  EXPECT_EQ(texts, (std::vector<std::string>{"detect circle", " circle", "caption en", "a red square", "segment cat"}));
  {
    std::ofstream f(d.file("bad.jsonl"));
    f << R"({"prefix": "ok"})" << "\n" << "not json\n";
  }
  try {
    pg::append_jsonl_corpus(d.file("bad.jsonl"), texts);
    FAIL() << "expected pg::Error";
  } catch (const pg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  try {
    pg::append_jsonl_corpus(d.file("missing.jsonl"), texts);
    FAIL() << "expected pg::Error";
  } catch (const pg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.jsonl"), std::string::npos) << e.what();
  }
}

TEST(TokenizerTrain, ErrorPaths) {
  TempDir d;
  pg::TokenizerTrainOptions o;
  o.texts = {"<loc0001><loc0002>", ""};
  try {
    pg::train_tokenizer(o, d.file("e.model"));
    FAIL() << "expected pg::Error";
  } catch (const pg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
  }
  o.texts = corpus(50);
  o.vocab_size = pg::min_tokenizer_vocab(true) - 1;
  EXPECT_EQ(pg::min_tokenizer_vocab(true), 366);
  try {
    pg::train_tokenizer(o, d.file("e.model"));
    FAIL() << "expected pg::Error";
  } catch (const pg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("too small"), std::string::npos) << e.what();
  }
  // Above the fixed minimum but below what the corpus' characters need.
  o.gemma_head_pieces = false;
  o.vocab_size = pg::min_tokenizer_vocab(false);
  try {
    pg::train_tokenizer(o, d.file("e.model"));
    FAIL() << "expected pg::Error";
  } catch (const pg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("too small for this corpus"), std::string::npos) << e.what();
  }
  o.gemma_head_pieces = true;
  o.vocab_size = 400;
  EXPECT_THROW(pg::train_tokenizer(o, d.file("no/such/dir/e.model")), pg::Error);
  EXPECT_FALSE(fs::exists(d.file("e.model")));
}

}  // namespace

// `paligemma tokenizer` end to end: a world split in, a model that pg::Tokenizer loads out;
// a missing data file and a too small vocabulary are one-line errors with a non-zero exit.
TEST(TokenizerTrain, Cli) {
  pg::test::TempDir dir;
  const std::string cli = pg::test::cli_path();
  const auto world = pg::test::run_command(cli + " world --out " + dir.file("data") +
                                           " --seed 4 --images 20 --size 32 --tasks caption,answer,detect 2>&1");
  ASSERT_EQ(world.exit_code, 0) << world.output;
  const auto ok = pg::test::run_command(cli + " tokenizer --data " + dir.file("data/train.jsonl") +
                                        " --vocab 500 --out " + dir.file("tok.model") + " 2>&1");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  const pg::Tokenizer t = pg::Tokenizer::load(dir.file("tok.model"));
  EXPECT_EQ(t.encode("<loc0512>").size(), 1u);
  EXPECT_EQ(t.decode(t.encode("how many circles are there?")), "how many circles are there?");
  const auto missing = pg::test::run_command(cli + " tokenizer --data " + dir.file("nope.jsonl") + " --out " +
                                             dir.file("t2.model") + " 2>&1");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("error: "), std::string::npos) << missing.output;
  EXPECT_NE(missing.output.find("nope.jsonl"), std::string::npos) << missing.output;
  const auto small = pg::test::run_command(cli + " tokenizer --data " + dir.file("data/train.jsonl") +
                                           " --vocab 10 --out " + dir.file("t3.model") + " 2>&1");
  EXPECT_NE(small.exit_code, 0);
  EXPECT_NE(small.output.find("error: "), std::string::npos) << small.output;
}
