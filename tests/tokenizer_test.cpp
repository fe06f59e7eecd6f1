// The SentencePiece tokenizer against the encodings recorded by tools/golden/make_tokenizer.py
// (Python sentencepiece 0.2, checked there against transformers' processor), and the PaliGemma prompt.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "paligemma/config.h"
#include "paligemma/error.h"
#include "paligemma/tokenizer.h"
#include "test_util.h"

namespace pg {
namespace {

nlohmann::json meta() {
  std::ifstream in(test::fixture("models/tokenizer_meta.json"));
  return nlohmann::json::parse(in);
}

TEST(Tokenizer, EncodesAsTheReference) {
  Tokenizer t = Tokenizer::load(test::fixture("models/tokenizer.model"));
  auto m = meta();
  ASSERT_FALSE(m["examples"].empty());
  for (const auto& [text, ids] : m["examples"].items()) {
    EXPECT_EQ(t.encode(text), ids.get<std::vector<int>>()) << "'" << text << "'";
    EXPECT_EQ(t.decode(ids.get<std::vector<int>>()), text) << "round trip of '" << text << "'";
  }
}

TEST(Tokenizer, SpecialIdsAndLocSegPieces) {
  Tokenizer t = Tokenizer::load(test::fixture("models/tokenizer.model"));
  auto m = meta();
  EXPECT_EQ(t.bos_id(), m["bos_id"].get<int>());
  EXPECT_EQ(t.eos_id(), m["eos_id"].get<int>());
  EXPECT_EQ(t.pad_id(), m["pad_id"].get<int>());
  EXPECT_EQ(t.loc0_id(), 256000);
  EXPECT_EQ(t.seg0_id(), 257024);
  EXPECT_EQ(t.piece(256123), "<loc0123>");
  EXPECT_EQ(t.piece(257151), "<seg127>");
  EXPECT_EQ(t.encode("<loc0517>"), std::vector<int>{256517});
  EXPECT_EQ(t.encode("<seg042>"), std::vector<int>{257066});
  // Detokenisation drops <bos>/<eos>/<pad> and ids past the tokenizer (<image>), keeps loc/seg.
  EXPECT_EQ(t.decode({2, 256001, 256002, 256003, 256004, 257152, 1}), "<loc0001><loc0002><loc0003><loc0004>");
  EXPECT_EQ(t.decode({3, 256005}), "<loc0005>");  // <unk> dropped as skip_special_tokens does
  EXPECT_EQ(t.piece(300000), "");
  EXPECT_EQ(t.piece_to_id("<no such piece>"), -1);
}

TEST(Tokenizer, PromptLayoutAsTheProcessor) {
  Tokenizer t = Tokenizer::load(test::fixture("models/tokenizer.model"));
  ModelConfig c = load_model_config(test::fixture("models/pg2_two_images"));
  const int n = c.image_tokens_per_image();
  std::vector<int> ids = build_prompt(t, c, "caption en", 2);
  ASSERT_EQ(ids.size(), static_cast<size_t>(2 * n + 1 + 3));
  for (int i = 0; i < 2 * n; ++i) EXPECT_EQ(ids[i], c.image_token_index);
  EXPECT_EQ(ids[2 * n], t.bos_id());
  EXPECT_EQ(std::vector<int>(ids.begin() + 2 * n + 1, ids.end()), t.encode("caption en\n"));
  EXPECT_EQ(ids.back(), meta()["newline_id"].get<int>());
  EXPECT_THROW(build_prompt(t, c, "", 1), Error);
}

TEST(Tokenizer, Errors) {
  try {
    Tokenizer::load("/no/such/tokenizer.model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/no/such/tokenizer.model"), std::string::npos);
  }
  test::TempDir d;
  std::ofstream(d.file("tokenizer.model")) << "garbage";
  EXPECT_THROW(Tokenizer::load(d.file("tokenizer.model")), Error);
}

}  // namespace
}  // namespace pg
