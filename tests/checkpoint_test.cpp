// Safetensors parsing, the writer, MappedFile and Checkpoint: round trips, shards, name
// layouts, and one test per way a file can be broken (each checks the message names the
// file / tensor and says what is wrong).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "paligemma/checkpoint.h"
#include "paligemma/error.h"
#include "paligemma/safetensors_writer.h"
#include "paligemma/tensor.h"
#include "test_util.h"

using pg::test::error_of;

namespace {

using pg::DType;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// 8-byte little-endian length + header text + data, exactly as given.
std::string raw_safetensors(const std::string& header, const std::string& data,
                            uint64_t claimed_length = UINT64_MAX) {
  uint64_t n = claimed_length == UINT64_MAX ? header.size() : claimed_length;
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + data;
}


#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

// Opens `dir` expecting failure; returns the message.
std::string open_error(const std::string& dir) {
  return error_of([&] { pg::Checkpoint::open(dir); });
}

// Writes one-tensor-file `header` + `data` as DIR/model.safetensors and returns the error.
std::string single_file_error(const pg::test::TempDir& dir, const std::string& header,
                              const std::string& data) {
  write_bytes(dir.file("model.safetensors"), raw_safetensors(header, data));
  return open_error(dir.path());
}

// True when [p, p+n) lies inside a mapping of `path` (from /proc/self/maps): proof that
// views point into the memory-mapped file rather than into a copy.
bool points_into_mapping_of(const void* p, size_t n, const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  const std::string canonical = std::filesystem::canonical(path).string();
  std::string line;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(maps, line)) {
    std::istringstream ls(line);
    std::string range, perms, offset, dev, inode, name;
    ls >> range >> perms >> offset >> dev >> inode;
    std::getline(ls >> std::ws, name);
    if (name != canonical) continue;
    uintptr_t lo = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    uintptr_t hi = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
    if (addr >= lo && addr + n <= hi) return perms[0] == 'r' && perms[1] == '-';
  }
  return false;
}

std::vector<float> iota_f32(size_t n, float scale = 0.25f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = (static_cast<float>(i) - 3.0f) * scale;
  return v;
}

}  // namespace

// ---- names -----------------------------------------------------------------------------

TEST(Checkpoint, CanonicalNames) {
  EXPECT_EQ(pg::canonical_tensor_name("model.language_model.layers.0.mlp.up_proj.weight"),
            "language_model.model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(pg::canonical_tensor_name("model.vision_tower.vision_model.post_layernorm.bias"),
            "vision_tower.vision_model.post_layernorm.bias");
  EXPECT_EQ(pg::canonical_tensor_name("model.multi_modal_projector.linear.weight"),
            "multi_modal_projector.linear.weight");
  EXPECT_EQ(pg::canonical_tensor_name("lm_head.weight"), "language_model.lm_head.weight");
  // transformers 5.x flattens SiglipVisionModel: no "vision_model." under the tower.
  EXPECT_EQ(pg::canonical_tensor_name("model.vision_tower.encoder.layers.3.mlp.fc1.weight"),
            "vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight");
  EXPECT_EQ(pg::canonical_tensor_name("vision_tower.post_layernorm.bias"),
            "vision_tower.vision_model.post_layernorm.bias");
  // Already canonical (the original PaliGemma layout): unchanged.
  for (const char* name :
       {"language_model.model.embed_tokens.weight", "language_model.lm_head.weight",
        "vision_tower.vision_model.embeddings.patch_embedding.weight",
        "multi_modal_projector.linear.bias", "something.else"})
    EXPECT_EQ(pg::canonical_tensor_name(name), name);
  // Only whole prefixes are rewritten.
  EXPECT_EQ(pg::canonical_tensor_name("model.language_modelx.w"), "model.language_modelx.w");
  EXPECT_EQ(pg::canonical_tensor_name("lm_head"), "lm_head");
}

// ---- writer + round trips --------------------------------------------------------------

TEST(Checkpoint, RoundTripEachDtype) {
  pg::test::TempDir dir;
  const std::vector<float> values = iota_f32(2 * 3 * 5);
  pg::SafetensorsWriter writer;
  writer.add_f32("language_model.model.norm.weight", DType::F32, {2, 3, 5}, values);
  writer.add_f32("language_model.model.embed_tokens.weight", DType::BF16, {5, 6}, values);
  writer.add_f32("multi_modal_projector.linear.weight", DType::F16, {30}, values);
  const float scalar = 42.0f;
  writer.add("vision_tower.vision_model.scalar", DType::F32, {}, &scalar);
  writer.add("vision_tower.vision_model.empty", DType::BF16, {0, 4}, nullptr);
  writer.set_metadata("format", "pt");
  writer.write(dir.file("model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("model.safetensors.tmp")));

  pg::Checkpoint ckpt = pg::Checkpoint::open(dir.path());
  EXPECT_EQ(ckpt.file_count(), 1u);
  EXPECT_EQ(ckpt.dir(), dir.path());
  EXPECT_EQ(ckpt.names(),
            (std::vector<std::string>{"language_model.model.embed_tokens.weight",
                                      "language_model.model.norm.weight",
                                      "multi_modal_projector.linear.weight",
                                      "vision_tower.vision_model.empty", "vision_tower.vision_model.scalar"}));
  EXPECT_EQ(ckpt.total_bytes(), 30u * 4 + 30 * 2 + 30 * 2 + 4);

  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const char* name = dtype == DType::F32    ? "language_model.model.norm.weight"
                       : dtype == DType::BF16 ? "language_model.model.embed_tokens.weight"
                                              : "multi_modal_projector.linear.weight";
    const pg::TensorView& t = ckpt.get(name);
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.dtype, dtype);
    EXPECT_EQ(t.numel(), 30);
    EXPECT_EQ(ckpt.file_of(name), dir.file("model.safetensors"));
    EXPECT_TRUE(points_into_mapping_of(t.data, t.nbytes(), dir.file("model.safetensors")))
        << name << " is not a view into the mapped file";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % pg::dtype_size(dtype), 0u) << "misaligned";
    std::vector<float> back(30);
    pg::convert_to_f32(t.dtype, t.data, 0, 30, back.data());
    // The values are exactly representable in every dtype (multiples of 1/4, small).
    EXPECT_EQ(back, values) << pg::dtype_name(dtype);
  }
  const pg::TensorView& s = ckpt.get("vision_tower.vision_model.scalar", {});
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(*static_cast<const float*>(s.data), 42.0f);
  const pg::TensorView& e = ckpt.get("vision_tower.vision_model.empty", {0, 4});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.nbytes(), 0u);
  EXPECT_EQ(&ckpt.get("vision_tower.vision_model.scalar"), &s);  // same view each time

  // The parsed header kept the metadata.
  pg::MappedFile mf(dir.file("model.safetensors"));
  pg::SafetensorsFile parsed = pg::parse_safetensors(mf.path(), mf.data(), mf.size());
  EXPECT_EQ(parsed.metadata.at("format"), "pt");
  EXPECT_EQ(parsed.tensors.size(), 5u);
}

TEST(Checkpoint, WriterMatchesHuggingFaceLayout) {
  const std::vector<uint16_t> half = {1, 2, 3, 4};
  const std::vector<float> f = {1, 2};
  std::vector<pg::TensorView> tensors(3);
  tensors[0] = {"b_half", DType::F16, {4}, half.data()};
  tensors[1] = {"a_bf16", DType::BF16, {2, 2}, half.data()};
  tensors[2] = {"z_f32", DType::F32, {2}, f.data()};
  std::vector<uint8_t> image = pg::serialize_safetensors(tensors, {{"format", "pt"}});
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | image[i];
  EXPECT_EQ(n % 8, 0u);
  std::string header(image.begin() + 8, image.begin() + 8 + static_cast<long>(n));
  // What huggingface safetensors.torch.save_file writes for the same tensors: compact JSON,
  // metadata first, F32 before BF16 before F16, space padding to 8 bytes.
  std::string want =
      R"({"__metadata__":{"format":"pt"},"z_f32":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("a_bf16":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]},)"
      R"("b_half":{"dtype":"F16","shape":[4],"data_offsets":[16,24]}})";
  want.append((8 - want.size() % 8) % 8, ' ');
  EXPECT_EQ(header, want);
  EXPECT_EQ(image.size(), 8 + n + 24);

  // Writer errors.
  tensors[1].name = "b_half";
  EXPECT_HAS(error_of([&] { pg::serialize_safetensors(tensors); }), "duplicate tensor name b_half");
  tensors[1].name = "a";
  tensors[1].data = nullptr;
  EXPECT_HAS(error_of([&] { pg::serialize_safetensors(tensors); }), "tensor a has no data");
  tensors[1].data = half.data();
  tensors[1].shape = {-2, 2};
  EXPECT_HAS(error_of([&] { pg::serialize_safetensors(tensors); }), "negative dimension");
  tensors[1].shape = {2, 2};
  EXPECT_HAS(error_of([&] { pg::write_safetensors("/nonexistent-dir/m.safetensors", tensors); }),
             "/nonexistent-dir/m.safetensors");
  pg::SafetensorsWriter w;
  EXPECT_HAS(error_of([&] { w.add_f32("x", DType::F32, {3}, std::vector<float>{1, 2}); }),
             "shape [3] but 2 values");
}

TEST(Checkpoint, BothNameLayoutsGiveTheSameCanonicalNames) {
  const std::vector<float> v = iota_f32(4);
  const std::vector<std::pair<std::string, std::string>> layouts[] = {{
      {"language_model.model.norm.weight", "language_model.model.norm.weight"},
      {"language_model.lm_head.weight", "language_model.lm_head.weight"},
      {"vision_tower.vision_model.post_layernorm.weight", "vision_tower.vision_model.post_layernorm.weight"},
      {"multi_modal_projector.linear.bias", "multi_modal_projector.linear.bias"},
  }, {
      {"model.language_model.norm.weight", "language_model.model.norm.weight"},
      {"lm_head.weight", "language_model.lm_head.weight"},
      {"model.vision_tower.vision_model.post_layernorm.weight", "vision_tower.vision_model.post_layernorm.weight"},
      {"model.multi_modal_projector.linear.bias", "multi_modal_projector.linear.bias"},
  }, {
      {"model.language_model.norm.weight", "language_model.model.norm.weight"},
      {"lm_head.weight", "language_model.lm_head.weight"},
      {"model.vision_tower.post_layernorm.weight", "vision_tower.vision_model.post_layernorm.weight"},
      {"model.multi_modal_projector.linear.bias", "multi_modal_projector.linear.bias"},
  }};
  std::vector<std::string> first_names;
  for (const auto& layout : layouts) {
    pg::test::TempDir dir;
    pg::SafetensorsWriter w;
    for (const auto& [stored, canonical] : layout) w.add_f32(stored, DType::BF16, {4}, v);
    w.write(dir.file("model.safetensors"));
    pg::Checkpoint ckpt = pg::Checkpoint::open(dir.path());
    for (const auto& [stored, canonical] : layout) {
      ASSERT_TRUE(ckpt.has(canonical)) << canonical;
      EXPECT_FALSE(stored != canonical && ckpt.has(stored)) << stored;
      EXPECT_EQ(ckpt.get(canonical).name, canonical);
      EXPECT_EQ(ckpt.stored_name_of(canonical), stored);
    }
    if (first_names.empty()) first_names = ckpt.names();
    else EXPECT_EQ(ckpt.names(), first_names);
  }
}

TEST(Checkpoint, TwoStoredNamesWithOneCanonicalNameIsAnError) {
  pg::test::TempDir dir;
  const std::vector<float> v = iota_f32(4);
  pg::SafetensorsWriter w;
  w.add_f32("lm_head.weight", DType::F32, {4}, v);
  w.add_f32("language_model.lm_head.weight", DType::F32, {4}, v);
  w.write(dir.file("model.safetensors"));
  std::string msg = open_error(dir.path());
  EXPECT_HAS(msg, "lm_head.weight");
  EXPECT_HAS(msg, "language_model.lm_head.weight");
  EXPECT_HAS(msg, "both map to the canonical name language_model.lm_head.weight");

  pg::SafetensorsWriter w2;
  w2.add_f32("vision_tower.vision_model.head.probe", DType::F32, {4}, v);
  w2.add_f32("model.vision_tower.head.probe", DType::F32, {4}, v);
  w2.write(dir.file("model.safetensors"));
  msg = open_error(dir.path());
  EXPECT_HAS(msg, "both map to the canonical name vision_tower.vision_model.head.probe");
}

// ---- shards ----------------------------------------------------------------------------

namespace {

void write_index(const pg::test::TempDir& dir, const nlohmann::json& weight_map) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  write_bytes(dir.file("model.safetensors.index.json"), index.dump(2));
}

// Two shards: a (BF16 embed + norm), b (F16 projector + F32 lm_head).
void write_two_shards(const pg::test::TempDir& dir) {
  const std::vector<float> v = iota_f32(12);
  pg::SafetensorsWriter a, b;
  a.add_f32("model.language_model.embed_tokens.weight", DType::BF16, {3, 4}, v);
  a.add_f32("model.language_model.norm.weight", DType::BF16, {4}, v.data());
  b.add_f32("model.multi_modal_projector.linear.weight", DType::F16, {4, 3}, v);
  b.add_f32("lm_head.weight", DType::F32, {3, 4}, v);
  a.write(dir.file("model-00001-of-00002.safetensors"));
  b.write(dir.file("model-00002-of-00002.safetensors"));
}

nlohmann::json two_shard_map() {
  return {{"model.language_model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
          {"model.language_model.norm.weight", "model-00001-of-00002.safetensors"},
          {"model.multi_modal_projector.linear.weight", "model-00002-of-00002.safetensors"},
          {"lm_head.weight", "model-00002-of-00002.safetensors"}};
}

}  // namespace

TEST(Checkpoint, ShardedWithIndex) {
  pg::test::TempDir dir;
  write_two_shards(dir);
  write_index(dir, two_shard_map());
  pg::Checkpoint ckpt = pg::Checkpoint::open(dir.path());
  EXPECT_EQ(ckpt.file_count(), 2u);
  EXPECT_EQ(ckpt.names().size(), 4u);
  EXPECT_EQ(ckpt.file_of("language_model.model.embed_tokens.weight"),
            dir.file("model-00001-of-00002.safetensors"));
  EXPECT_EQ(ckpt.file_of("language_model.lm_head.weight"),
            dir.file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(ckpt.total_bytes(), 12u * 2 + 4 * 2 + 12 * 2 + 12 * 4);
  const pg::TensorView& lm = ckpt.get("language_model.lm_head.weight", {3, 4});
  EXPECT_EQ(lm.dtype, DType::F32);
  EXPECT_EQ(static_cast<const float*>(lm.data)[11], (11 - 3) * 0.25f);
  EXPECT_TRUE(points_into_mapping_of(lm.data, lm.nbytes(),
                                     dir.file("model-00002-of-00002.safetensors")));
  const pg::TensorView& proj = ckpt.get("multi_modal_projector.linear.weight", {4, 3});
  EXPECT_EQ(pg::f16_to_f32(static_cast<const uint16_t*>(proj.data)[5]), 0.5f);
  // The index wins over a stray model.safetensors.
  write_bytes(dir.file("model.safetensors"), "garbage");
  EXPECT_EQ(pg::Checkpoint::open(dir.path()).file_count(), 2u);
}

TEST(Checkpoint, IndexListsAMissingShard) {
  pg::test::TempDir dir;
  write_two_shards(dir);
  nlohmann::json map = two_shard_map();
  map["lm_head.weight"] = "model-00003-of-00002.safetensors";
  write_index(dir, map);
  std::string msg = open_error(dir.path());
  EXPECT_HAS(msg, "model.safetensors.index.json");
  EXPECT_HAS(msg, "lm_head.weight");
  EXPECT_HAS(msg, dir.file("model-00003-of-00002.safetensors") + " does not exist");
}

TEST(Checkpoint, IndexListsATensorTheShardLacks) {
  pg::test::TempDir dir;
  write_two_shards(dir);
  nlohmann::json map = two_shard_map();
  map["model.language_model.layers.0.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors";
  write_index(dir, map);
  std::string msg = open_error(dir.path());
  EXPECT_HAS(msg, "model.language_model.layers.0.mlp.up_proj.weight");
  EXPECT_HAS(msg, dir.file("model-00001-of-00002.safetensors") + " has no such tensor");
}

TEST(Checkpoint, IndexMapsATensorToTheWrongShard) {
  pg::test::TempDir dir;
  write_two_shards(dir);
  nlohmann::json map = two_shard_map();
  map["lm_head.weight"] = "model-00001-of-00002.safetensors";
  write_index(dir, map);
  std::string msg = open_error(dir.path());
  EXPECT_HAS(msg, "maps tensor lm_head.weight to model-00001-of-00002.safetensors");
  EXPECT_HAS(msg, "stored in " + dir.file("model-00002-of-00002.safetensors"));
}

TEST(Checkpoint, TensorDuplicatedAcrossShards) {
  pg::test::TempDir dir;
  write_two_shards(dir);
  const std::vector<float> v = iota_f32(4);
  pg::SafetensorsWriter c;
  c.add_f32("model.language_model.norm.weight", DType::BF16, {4}, v);
  c.write(dir.file("extra.safetensors"));
  nlohmann::json map = two_shard_map();
  map["some.other"] = "extra.safetensors";  // make the index reference the extra shard
  write_index(dir, map);
  std::string msg = open_error(dir.path());
  EXPECT_HAS(msg, "tensor model.language_model.norm.weight appears in both");
  EXPECT_HAS(msg, "extra.safetensors");
  EXPECT_HAS(msg, "model-00001-of-00002.safetensors");
}

TEST(Checkpoint, BadIndexFiles) {
  pg::test::TempDir dir;
  write_two_shards(dir);
  write_bytes(dir.file("model.safetensors.index.json"), "{\"weight_map\": {");
  std::string msg = open_error(dir.path());
  EXPECT_HAS(msg, dir.file("model.safetensors.index.json") + " is not valid JSON");
  write_bytes(dir.file("model.safetensors.index.json"), R"({"metadata": {}})");
  EXPECT_HAS(open_error(dir.path()), "has no \"weight_map\"");
  write_bytes(dir.file("model.safetensors.index.json"), R"({"weight_map": {"a": 3}})");
  EXPECT_HAS(open_error(dir.path()), "weight_map entry for tensor a is not a file name");
  write_bytes(dir.file("model.safetensors.index.json"), R"({"weight_map": []})");
  EXPECT_HAS(open_error(dir.path()), "\"weight_map\" is not a JSON object");
}

// ---- directories -----------------------------------------------------------------------

TEST(Checkpoint, MissingDirectoryAndFiles) {
  pg::test::TempDir dir;
  std::string msg = open_error(dir.file("nope"));
  EXPECT_HAS(msg, "model directory " + dir.file("nope") + " does not exist");
  write_bytes(dir.file("plain"), "x");
  EXPECT_HAS(open_error(dir.file("plain")), dir.file("plain") + " is not a directory");
  EXPECT_EQ(open_error(dir.path()),
            "no model.safetensors or model.safetensors.index.json in " + dir.path());
}

TEST(Checkpoint, GetErrors) {
  pg::test::TempDir dir;
  pg::SafetensorsWriter w;
  w.add_f32("model.language_model.norm.weight", DType::BF16, {4}, iota_f32(4));
  w.write(dir.file("model.safetensors"));
  pg::Checkpoint ckpt = pg::Checkpoint::open(dir.path());
  EXPECT_EQ(error_of([&] { ckpt.get("language_model.model.missing"); }),
            "checkpoint " + dir.path() + " has no tensor language_model.model.missing");
  EXPECT_HAS(error_of([&] { ckpt.get("language_model.model.missing", {4}); }),
             "has no tensor language_model.model.missing");
  EXPECT_HAS(error_of([&] { ckpt.file_of("x"); }), "has no tensor x");
  std::string msg = error_of([&] { ckpt.get("language_model.model.norm.weight", {8}); });
  EXPECT_HAS(msg, "tensor language_model.model.norm.weight");
  EXPECT_HAS(msg, "stored as model.language_model.norm.weight");
  EXPECT_HAS(msg, "in " + dir.file("model.safetensors") + " has shape [4] but config.json implies [8]");
  EXPECT_NO_THROW(ckpt.get("language_model.model.norm.weight", {4}));
  EXPECT_FALSE(ckpt.has("model.language_model.norm.weight"));  // lookups use canonical names
}

// ---- broken safetensors files ----------------------------------------------------------

TEST(Safetensors, FileShorterThanEightBytes) {
  pg::test::TempDir dir;
  for (const std::string& bytes : {std::string(), std::string("\x10\x00\x00", 3)}) {
    write_bytes(dir.file("model.safetensors"), bytes);
    std::string msg = open_error(dir.path());
    EXPECT_HAS(msg, dir.file("model.safetensors") + " is " + std::to_string(bytes.size()) + " bytes");
    EXPECT_HAS(msg, "too short for a safetensors file");
  }
}

TEST(Safetensors, HeaderLongerThanFile) {
  pg::test::TempDir dir;
  write_bytes(dir.file("model.safetensors"), raw_safetensors("{}", "", 1000));
  std::string msg = open_error(dir.path());
  EXPECT_HAS(msg, "header claims 1000 bytes but " + dir.file("model.safetensors") + " has only 2");
  // An absurd length (e.g. a text file read as safetensors) also fails cleanly.
  write_bytes(dir.file("model.safetensors"), "this is not a safetensors file at all");
  EXPECT_HAS(open_error(dir.path()), "header claims");
}

TEST(Safetensors, HeaderNotValidJson) {
  pg::test::TempDir dir;
  std::string msg = single_file_error(dir, R"({"a": {"dtype": "F32", )", "");
  EXPECT_HAS(msg, dir.file("model.safetensors"));
  EXPECT_HAS(msg, "is not valid JSON");
  msg = single_file_error(dir, "[1, 2]", "");
  EXPECT_HAS(msg, "safetensors header is not a JSON object");
}

TEST(Safetensors, EntryMissingFields) {
  pg::test::TempDir dir;
  const std::string data(8, '\0');
  EXPECT_HAS(single_file_error(dir, R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", data),
             "tensor w in " + dir.file("model.safetensors") + ": header entry has no \"dtype\"");
  EXPECT_HAS(single_file_error(dir, R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", data),
             "tensor w in " + dir.file("model.safetensors") + ": header entry has no \"shape\"");
  EXPECT_HAS(single_file_error(dir, R"({"w": {"dtype": "F32", "shape": [2]}})", data),
             "tensor w in " + dir.file("model.safetensors") + ": header entry has no \"data_offsets\"");
  EXPECT_HAS(single_file_error(dir, R"({"w": 5})", data), "tensor w in");
  EXPECT_HAS(single_file_error(dir, R"({"w": {"dtype": 1, "shape": [2], "data_offsets": [0, 8]}})", data),
             "\"dtype\" is not a string");
  EXPECT_HAS(single_file_error(dir, R"({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", data),
             "\"shape\" is not an array");
  EXPECT_HAS(single_file_error(dir, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8]}})", data),
             "\"data_offsets\" is not an array of two integers");
}

TEST(Safetensors, UnsupportedDtypes) {
  pg::test::TempDir dir;
  for (const char* dtype : {"I64", "F64", "F8_E4M3", "I32", "I16", "BOOL"}) {
    std::string header = std::string(R"({"token_ids": {"dtype": ")") + dtype +
                         R"(", "shape": [1], "data_offsets": [0, 8]}})";
    std::string msg = single_file_error(dir, header, std::string(8, '\0'));
    EXPECT_HAS(msg, "tensor token_ids in " + dir.file("model.safetensors"));
    EXPECT_HAS(msg, std::string("has dtype ") + dtype + ", which is not supported");
    EXPECT_HAS(msg, "supported: F32, BF16, F16, I8, U8");
  }
  std::string msg = single_file_error(
      dir, R"({"w": {"dtype": "Q4_K", "shape": [1], "data_offsets": [0, 8]}})", std::string(8, '\0'));
  EXPECT_HAS(msg, "unknown dtype \"Q4_K\"");
}

TEST(Safetensors, BadShapes) {
  pg::test::TempDir dir;
  const std::string data(8, '\0');
  std::string msg =
      single_file_error(dir, R"({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}})", data);
  EXPECT_HAS(msg, "tensor w in " + dir.file("model.safetensors") + " has negative dimension -1");
  msg = single_file_error(
      dir, R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", data);
  EXPECT_HAS(msg, "tensor w in");
  EXPECT_HAS(msg, "overflows 64 bits");
  msg = single_file_error(
      dir, R"({"w": {"dtype": "BF16", "shape": [18446744073709551615], "data_offsets": [0, 8]}})", data);
  EXPECT_HAS(msg, "overflows int64");
  msg = single_file_error(dir, R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", data);
  EXPECT_HAS(msg, "which is not an integer");
}

TEST(Safetensors, OffsetsEndBeforeBegin) {
  pg::test::TempDir dir;
  std::string msg = single_file_error(
      dir, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", std::string(8, '\0'));
  EXPECT_HAS(msg, "tensor w in " + dir.file("model.safetensors"));
  EXPECT_HAS(msg, "data_offsets [8, 0] whose end is before its begin");
  msg = single_file_error(
      dir, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", std::string(8, '\0'));
  EXPECT_HAS(msg, "negative data offset -8");
}

TEST(Safetensors, TruncatedDataSection) {
  pg::test::TempDir dir;
  pg::SafetensorsWriter w;
  w.add_f32("a", DType::F32, {4}, iota_f32(4));
  w.add_f32("b", DType::F32, {6}, iota_f32(6));
  const std::string path = dir.file("model.safetensors");
  w.write(path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  std::string msg = open_error(dir.path());
  EXPECT_EQ(msg, "tensor b needs bytes [16, 40) but " + path +
                     "'s data section has only 30 bytes (truncated file?)");
}

TEST(Safetensors, HeaderLiesAboutSize) {
  pg::test::TempDir dir;
  std::string msg = single_file_error(
      dir, R"({"w": {"dtype": "BF16", "shape": [3, 2], "data_offsets": [0, 16]}})", std::string(16, '\0'));
  EXPECT_HAS(msg, "tensor w in " + dir.file("model.safetensors"));
  EXPECT_HAS(msg, "header lies about size");
  EXPECT_HAS(msg, "span 16 bytes but BF16 [3, 2] needs 12");
}

TEST(Safetensors, MetadataAndPadding) {
  pg::test::TempDir dir;
  // Space padding after the JSON (as HF writes) and __metadata__ are accepted.
  std::string header = R"({"__metadata__": {"format": "pt"}, "w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})";
  header.append(5, ' ');
  write_bytes(dir.file("model.safetensors"), raw_safetensors(header, std::string("\x00\x3c\x00\xc0", 4)));
  pg::Checkpoint ckpt = pg::Checkpoint::open(dir.path());
  const pg::TensorView& w = ckpt.get("w", {2});
  EXPECT_EQ(pg::f16_to_f32(static_cast<const uint16_t*>(w.data)[0]), 1.0f);
  EXPECT_EQ(pg::f16_to_f32(static_cast<const uint16_t*>(w.data)[1]), -2.0f);
  // A non-string metadata value is rejected as the HF library does.
  std::string msg = single_file_error(dir, R"({"__metadata__": {"n": 3}})", "");
  EXPECT_HAS(msg, dir.file("model.safetensors") + ": safetensors __metadata__ value for \"n\"");
  msg = single_file_error(dir, R"({"__metadata__": [1]})", "");
  EXPECT_HAS(msg, "__metadata__ is not a JSON object");
  // An empty checkpoint (no tensors) opens fine.
  write_bytes(dir.file("model.safetensors"), raw_safetensors("{}", ""));
  EXPECT_TRUE(pg::Checkpoint::open(dir.path()).names().empty());
}

// ---- MappedFile ------------------------------------------------------------------------

TEST(MappedFile, MapsMovesAndReportsErrors) {
  pg::test::TempDir dir;
  write_bytes(dir.file("f.bin"), "hello mapped world");
  pg::MappedFile a(dir.file("f.bin"));
  ASSERT_EQ(a.size(), 18u);
  EXPECT_EQ(std::memcmp(a.data(), "hello", 5), 0);
  EXPECT_TRUE(points_into_mapping_of(a.data(), a.size(), dir.file("f.bin")));
  a.advise_willneed();
  a.advise_random(3, 4);
  a.advise_sequential(100, 5);  // out of range: ignored

  const uint8_t* p = a.data();
  pg::MappedFile b(std::move(a));
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  pg::MappedFile c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.path(), dir.file("f.bin"));
  EXPECT_EQ(b.data(), nullptr);

  write_bytes(dir.file("empty.bin"), "");
  pg::MappedFile e(dir.file("empty.bin"));
  EXPECT_EQ(e.size(), 0u);

  std::string msg = error_of([&] { pg::MappedFile m(dir.file("missing.bin")); });
  EXPECT_HAS(msg, "cannot open " + dir.file("missing.bin"));
  EXPECT_HAS(msg, "No such file");
  msg = error_of([&] { pg::MappedFile m(dir.path()); });
  EXPECT_HAS(msg, dir.path());
}
