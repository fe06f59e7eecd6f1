// Every bad input of the issue, through the CLI: one clear message naming the file, tensor
// or field, and a non-zero exit. (Byte-level safetensors corruptions are also covered one by
// one in checkpoint_test.cpp.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace pg {
namespace {

namespace fs = std::filesystem;
using test::run_command;

// A writable copy of a fixture model (symlinks resolved).
void copy_model(const std::string& name, const std::string& dest) {
  fs::create_directories(dest);
  for (const auto& e : fs::directory_iterator(test::fixture("models/" + name)))
    fs::copy_file(fs::canonical(e.path()), dest + "/" + e.path().filename().string());
}

void replace_in_file(const std::string& path, const std::string& from, const std::string& to) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto pos = s.find(from);
  ASSERT_NE(pos, std::string::npos) << from << " not in " << path;
  s.replace(pos, from.size(), to);
  std::ofstream(path) << s;
}

void expect_failure(const std::string& args, const std::vector<std::string>& needles) {
  auto r = run_command(test::cli_path() + " " + args);
  EXPECT_NE(r.exit_code, 0) << args << "\n" << r.output;
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.output;
  for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << "'" << n << "' not in: " << r.output;
}

std::string run_args(const std::string& model_dir, const std::string& extra = "") {
  return "run --quiet --model " + model_dir + " --image " + test::fixture("photos/chelsea.png") +
         " --prompt 'caption en' --max-new-tokens 2 " + extra;
}

TEST(BadInput, MissingModelDirectory) {
  expect_failure("info --model /nonexistent/model", {"/nonexistent/model", "does not exist"});
}

TEST(BadInput, MissingSafetensors) {
  test::TempDir t;
  copy_model("pg1_mqa", t.path());
  fs::remove(t.file("model.safetensors"));
  expect_failure("info --model " + t.path(), {"model.safetensors", t.path()});
}

TEST(BadInput, TruncatedSafetensors) {
  test::TempDir t;
  copy_model("pg1_mqa", t.path());
  fs::resize_file(t.file("model.safetensors"), fs::file_size(t.file("model.safetensors")) / 2);
  expect_failure(run_args(t.path()), {"model.safetensors"});
}

TEST(BadInput, HeaderLiesAboutItsLength) {
  test::TempDir t;
  copy_model("pg1_mqa", t.path());
  {
    std::fstream f(t.file("model.safetensors"), std::ios::in | std::ios::out | std::ios::binary);
    const uint64_t huge = 1ULL << 40;
    f.write(reinterpret_cast<const char*>(&huge), 8);
  }
  expect_failure("info --model " + t.path(), {"model.safetensors", "header"});
}

TEST(BadInput, TensorShapeDisagreesWithConfig) {
  test::TempDir t;
  copy_model("pg1_mqa", t.path());
  replace_in_file(t.file("config.json"), "\"intermediate_size\": 64", "\"intermediate_size\": 96");
  expect_failure("info --model " + t.path(), {"mlp.", "shape", "config.json implies"});
}

TEST(BadInput, UnknownModelType) {
  test::TempDir t;
  copy_model("pg1_mqa", t.path());
  replace_in_file(t.file("config.json"), "\"model_type\": \"gemma\"", "\"model_type\": \"mistral\"");
  expect_failure("info --model " + t.path(), {"config.json", "model_type", "mistral"});
}

TEST(BadInput, MissingTokenizer) {
  test::TempDir t;
  copy_model("pg1_mqa", t.path());
  fs::remove(t.file("tokenizer.model"));
  expect_failure("info --model " + t.path(), {"tokenizer.model", "does not exist"});
}

TEST(BadInput, CorruptTokenizer) {
  test::TempDir t;
  copy_model("pg1_mqa", t.path());
  std::ofstream(t.file("tokenizer.model")) << "not a sentencepiece model";
  expect_failure("info --model " + t.path(), {"tokenizer.model", "SentencePiece"});
}

TEST(BadInput, CorruptImage) {
  test::TempDir t;
  std::ofstream(t.file("broken.jpg"), std::ios::binary) << "\xff\xd8\xff\xe0garbage";
  expect_failure("run --quiet --model " + test::fixture("models/pg1_mqa") + " --image " + t.file("broken.jpg") +
                     " --prompt 'caption en'",
                 {"broken.jpg"});
}

TEST(BadInput, UnsupportedImage) {
  test::TempDir t;
  std::ofstream(t.file("notes.txt")) << "this is text, not an image";
  expect_failure("run --quiet --model " + test::fixture("models/pg1_mqa") + " --image " + t.file("notes.txt") +
                     " --prompt 'caption en'",
                 {"notes.txt"});
}

TEST(BadInput, MissingImage) {
  expect_failure("run --quiet --model " + test::fixture("models/pg1_mqa") + " --image /no/such.png --prompt x",
                 {"/no/such.png"});
}

TEST(BadInput, EmptyPrompt) {
  expect_failure("run --quiet --model " + test::fixture("models/pg1_mqa") + " --image " +
                     test::fixture("photos/chelsea.png") + " --prompt ''",
                 {"prompt is empty"});
}

TEST(BadInput, PromptLongerThanTheContext) {
  expect_failure(run_args(test::fixture("models/pg1_mqa"), "--max-context 12"),
                 {"does not fit the context of 12 tokens"});
}

TEST(BadInput, BadOptionValues) {
  expect_failure(run_args(test::fixture("models/pg1_mqa"), "--mode nucleus"), {"--mode"});
  expect_failure(run_args(test::fixture("models/pg1_mqa"), "--sliding-window maybe"), {"--sliding-window"});
  expect_failure(run_args(test::fixture("models/pg1_mqa"), "--mode sample --top-p 0"), {"top_p"});
  expect_failure(run_args(test::fixture("models/pg1_mqa"), "--mode sample --temperature nan"), {"temperature"});
  expect_failure(run_args(test::fixture("models/pg1_mqa"), "--mode beam --beams 100000"), {"num_beams"});
  expect_failure(run_args(test::fixture("models/pg1_mqa"), "--threads 100000"), {"--threads"});
  expect_failure(run_args(test::fixture("models/pg1_mqa"), "--max-new-tokens -5"), {"--max-new-tokens"});
  expect_failure(run_args(test::fixture("models/pg1_mqa"), "--dump /dev/null/x"), {"--dump", "/dev/null/x"});
  expect_failure("info --model " + test::fixture("models/pg1_mqa") + " --images -5", {"--images"});
}

TEST(BadInput, BatchFileIsADirectory) {
  test::TempDir t;
  expect_failure("run --quiet --model " + test::fixture("models/pg1_mqa") + " --batch " + t.path(),
                 {t.path(), "is a directory"});
}

TEST(BadInput, PromptTextThatEncodesToTheImageToken) {
  // A config whose image token is <loc0000> (transformers' default image_token_index 256000
  // when the field is missing): "<loc0000>" in the prompt would be taken for an image slot.
  test::TempDir t;
  copy_model("pg1_mqa", t.path());
  replace_in_file(t.file("config.json"), "\"image_token_index\": 257152", "\"image_token_index\": 256000");
  expect_failure("run --quiet --model " + t.path() + " --image " + test::fixture("photos/chelsea.png") +
                     " --prompt 'detect <loc0000>'",
                 {"image token", "1 extra"});
}

}  // namespace
}  // namespace pg

namespace pg {
namespace {

TEST(BadInput, ParseWithAnAbsurdImageSize) {
  expect_failure("parse --width 70000 --height 70000 --text '<loc0000><loc0000><loc0001><loc0001> cat'",
                 {"--width x --height", "pixels"});
}

TEST(BadInput, InvalidUtf8LabelStillGivesJson) {
  auto r = test::run_command(test::cli_path() + " parse --width 10 --height 10 --text \"$(printf '<loc0000><loc0000><loc0001><loc0001> \\377\\376')\"");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"label\""), std::string::npos) << r.output;
}

}  // namespace
}  // namespace pg
