// config.json parsing: released-style minimal files, transformers class defaults, and the
// errors for configs we cannot run.
#include <gtest/gtest.h>

#include "paligemma/config.h"
#include "paligemma/error.h"

namespace pg {
namespace {

// The text of google/paligemma-3b-pt-224's config.json (written by transformers 4.41):
// only values that differ from the config classes' defaults.
const char* kPaliGemma1Released = R"({
  "_name_or_path": "final_ckpts/paligemma-3b-pt-224",
  "architectures": ["PaliGemmaForConditionalGeneration"],
  "bos_token_id": 2, "eos_token_id": 1, "hidden_size": 2048, "ignore_index": -100,
  "image_token_index": 257152, "model_type": "paligemma", "pad_token_id": 0, "projection_dim": 2048,
  "text_config": {"hidden_size": 2048, "intermediate_size": 16384, "model_type": "gemma",
    "num_attention_heads": 8, "num_hidden_layers": 18, "num_image_tokens": 256,
    "num_key_value_heads": 1, "torch_dtype": "float32", "vocab_size": 257216},
  "torch_dtype": "float32", "transformers_version": "4.41.0.dev0",
  "vision_config": {"hidden_size": 1152, "intermediate_size": 4304, "model_type": "siglip_vision_model",
    "num_attention_heads": 16, "num_hidden_layers": 27, "num_image_tokens": 256, "patch_size": 14,
    "projection_dim": 2048, "projector_hidden_act": "gelu_fast", "vision_use_head": false}
})";

TEST(Config, PaliGemma1ReleasedFileUsesClassDefaults) {
  ModelConfig c = parse_model_config(kPaliGemma1Released, "config.json");
  EXPECT_EQ(c.text.arch, TextArch::Gemma);
  EXPECT_EQ(c.text.hidden_size, 2048);
  EXPECT_EQ(c.text.num_layers, 18);
  EXPECT_EQ(c.text.num_heads, 8);
  EXPECT_EQ(c.text.num_kv_heads, 1);
  EXPECT_EQ(c.text.head_dim, 256);  // GemmaConfig default
  EXPECT_EQ(c.text.vocab_size, 257216);
  EXPECT_FLOAT_EQ(c.text.rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(c.text.query_scale(), 1.0f / 16.0f);
  EXPECT_EQ(c.text.final_logit_softcap, 0.0f);
  EXPECT_EQ(c.vision.image_size, 224);  // SiglipVisionConfig default
  EXPECT_EQ(c.vision.patch_size, 14);
  EXPECT_EQ(c.vision.num_patches(), 256);
  EXPECT_EQ(c.vision.intermediate_size, 4304);
  EXPECT_EQ(c.image_token_index, 257152);
  EXPECT_EQ(c.projection_dim, 2048);
}

TEST(Config, PaliGemma2DefaultsAndLayerTypes) {
  const char* text = R"({"model_type": "paligemma", "image_token_index": 257152, "projection_dim": 4608,
    "text_config": {"model_type": "gemma2", "hidden_size": 4608, "num_hidden_layers": 4,
      "num_attention_heads": 32, "num_key_value_heads": 16, "head_dim": 128, "intermediate_size": 36864,
      "query_pre_attn_scalar": 144, "vocab_size": 257216},
    "vision_config": {"hidden_size": 1152, "intermediate_size": 4304, "num_attention_heads": 16,
      "num_hidden_layers": 27, "patch_size": 14, "image_size": 896, "vision_use_head": false}})";
  ModelConfig c = parse_model_config(text, "config.json");
  EXPECT_EQ(c.text.arch, TextArch::Gemma2);
  EXPECT_FLOAT_EQ(c.text.query_scale(), 1.0f / 12.0f);  // 144^-0.5, not head_dim^-0.5
  EXPECT_FLOAT_EQ(c.text.attn_logit_softcap, 50.0f);
  EXPECT_FLOAT_EQ(c.text.final_logit_softcap, 30.0f);
  EXPECT_EQ(c.text.sliding_window, 4096);
  ASSERT_EQ(c.text.layer_is_sliding.size(), 4u);
  EXPECT_TRUE(c.text.layer_is_sliding[0]);  // Gemma2Config: even layers slide
  EXPECT_FALSE(c.text.layer_is_sliding[1]);
  EXPECT_TRUE(c.text.layer_is_sliding[2]);
  EXPECT_EQ(c.vision.num_patches(), 4096);
}

TEST(Config, ExplicitLayerTypesAndRopeParameters) {
  const char* text = R"({"model_type": "paligemma", "image_token_index": 40, "projection_dim": 32,
    "text_config": {"model_type": "gemma2", "hidden_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "vocab_size": 64,
      "layer_types": ["full_attention", "sliding_attention"],
      "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}},
    "vision_config": {"hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1,
      "patch_size": 14, "image_size": 28, "vision_use_head": false}})";
  ModelConfig c = parse_model_config(text, "config.json");
  EXPECT_FALSE(c.text.layer_is_sliding[0]);
  EXPECT_TRUE(c.text.layer_is_sliding[1]);
  EXPECT_FLOAT_EQ(c.text.rope_theta, 500.0f);
}

TEST(Config, NullSwitchesSoftCapsAndWindowOffAndEosLists) {
  const char* text = R"({"model_type": "paligemma", "image_token_index": 40, "projection_dim": 32, "eos_token_id": 7,
    "text_config": {"model_type": "gemma2", "hidden_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "vocab_size": 64,
      "attn_logit_softcapping": null, "final_logit_softcapping": null, "sliding_window": null,
      "eos_token_id": [1, 107]},
    "vision_config": {"hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1,
      "patch_size": 14, "image_size": 28, "vision_use_head": false}})";
  ModelConfig c = parse_model_config(text, "config.json");
  EXPECT_EQ(c.text.attn_logit_softcap, 0.0f);
  EXPECT_EQ(c.text.final_logit_softcap, 0.0f);
  EXPECT_FALSE(c.text.layer_is_sliding[0]);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{1, 107}));  // the text config's, as generate uses
  EXPECT_TRUE(c.is_eos(107));
  EXPECT_FALSE(c.is_eos(7));
}

void expect_error(const std::string& text, const std::string& needle) {
  try {
    parse_model_config(text, "dir/config.json");
    FAIL() << "expected an error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("dir/config.json"), std::string::npos) << e.what();
  }
}

TEST(Config, Errors) {
  expect_error("{not json", "not valid JSON");
  expect_error(R"({"model_type": "llava"})", "'model_type' is 'llava'");
  expect_error(R"({"vision_config": {}})", "'model_type' is missing");
  expect_error(R"({"model_type": "paligemma", "vision_config": {}})", "text_config");
  expect_error(R"({"model_type": "paligemma", "text_config": {"model_type": "llama"}, "vision_config": {}})",
               "'model_type' is 'llama'");
  expect_error(R"({"model_type": "paligemma", "text_config": {"hidden_size": "big"}, "vision_config": {}})",
               "'hidden_size' must be an integer");
  expect_error(R"({"model_type": "paligemma", "text_config": {"num_attention_heads": 8, "num_key_value_heads": 3},
                   "vision_config": {}})",
               "num_key_value_heads");
  expect_error(R"({"model_type": "paligemma", "text_config": {"rope_scaling": {"rope_type": "linear", "factor": 2}},
                   "vision_config": {}})",
               "rope_scaling");
  expect_error(R"({"model_type": "paligemma", "text_config": {}, "vision_config": {"image_size": 225, "patch_size": 14}})",
               "image_size");
  expect_error(R"({"model_type": "paligemma", "text_config": {"rms_norm_eps": -1}, "vision_config": {}})",
               "'rms_norm_eps' must be a positive number");
  expect_error(R"({"model_type": "paligemma", "text_config": {"rope_parameters": {"rope_theta": "big"}},
                   "vision_config": {}})",
               "'rope_theta' must be a number");
  expect_error(R"({"model_type": "paligemma", "text_config": {"eos_token_id": []}, "vision_config": {}})",
               "'eos_token_id' must be a non-negative integer or a non-empty list");
}

}  // namespace
}  // namespace pg
