// The synthetic world (include/paligemma/world.h): determinism, ground truth against the
// written pixels, examples against the ground truth, the trainer's reader, bad options, CLI.
#include "paligemma/world.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/random.h"
#include "paligemma/annotate.h"
#include "paligemma/error.h"
#include "paligemma/image.h"
#include "paligemma/mask_codec.h"
#include "paligemma/segmentation.h"
#include "paligemma/structured.h"
#include "test_util.h"
#include "train/dataset.h"

namespace pg {
namespace {

namespace fs = std::filesystem;

std::string vae_fixture() { return test::fixture("vae/vae_stored.npz"); }

WorldOptions small_options(uint64_t seed, int images) {
  WorldOptions o;
  o.seed = seed;
  o.images = images;
  o.size = 64;
  o.text_probability = 0.5;
  o.vae_path = vae_fixture();
  return o;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every regular file under dir, by relative path -> contents.
std::map<std::string, std::string> tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_bytes(e.path());
  return out;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(WorldDeterminism, SameSeedSameBytesAndGrowingKeepsEarlierImages) {
  test::TempDir a, b, c, d;
  write_world(a.path(), small_options(7, 5));
  write_world(b.path(), small_options(7, 5));
  write_world(c.path(), small_options(7, 10));
  write_world(d.path(), small_options(8, 5));
  const auto ta = tree(a.path()), tb = tree(b.path()), tc = tree(c.path()), td = tree(d.path());
  ASSERT_GE(ta.size(), 6u);
  EXPECT_EQ(ta, tb);  // byte-identical, every file

  // Growing the split changes nothing of the first five images, their masks or lines.
  for (const auto& [name, bytes] : ta) {
    if (name == "train.jsonl") continue;
    ASSERT_TRUE(tc.count(name)) << name;
    EXPECT_EQ(tc.at(name), bytes) << name;
  }
  const std::string jsonl5 = ta.at("train.jsonl"), jsonl10 = tc.at("train.jsonl");
  ASSERT_GT(jsonl10.size(), jsonl5.size());
  EXPECT_EQ(jsonl10.substr(0, jsonl5.size()), jsonl5);
  EXPECT_EQ(tc.count("images/train_000009.png"), 1u);

  // Another seed gives other images.
  int same = 0;
  for (int i = 0; i < 5; ++i) {
    const std::string name = world_image_name(small_options(7, 5), i);
    same += ta.at(name) == td.at(name);
  }
  EXPECT_EQ(same, 0);

  // Which tasks are written does not change the examples of the others.
  WorldOptions only = small_options(7, 5);
  only.tasks = {WorldTask::Detect};
  const WorldScene scene = make_world_scene(only, 3);
  const auto detect_only = make_world_examples(scene, only, 3, nullptr);
  const auto all = make_world_examples(scene, small_options(7, 5), 3, nullptr);
  ASSERT_EQ(detect_only.size(), 1u);
  bool found = false;
  for (const WorldExample& e : all)
    if (e.task == WorldTask::Detect) found = e.prefix == detect_only[0].prefix && e.suffix == detect_only[0].suffix;
  EXPECT_TRUE(found);
}

// Pins the pixels of a few text-free scenes (integer-only drawing: the same on every machine and
// compiler). A deliberate change to the generator changes these; update them then, and say so,
// since datasets made before no longer match.
TEST(WorldDeterminism, PinnedScenes) {
  WorldOptions o = small_options(1, 1);
  o.text_probability = 0;
  std::string hashes;
  for (int i = 0; i < 4; ++i) {
    const WorldScene s = make_world_scene(o, i);
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the pixels and the masks
    for (uint8_t b : s.image.rgb) h = (h ^ b) * 1099511628211ull;
    for (const WorldObject& ob : s.objects)
      for (uint8_t b : ob.mask.data) h = (h ^ b) * 1099511628211ull;
    hashes += std::to_string(h) + " ";
  }
  EXPECT_EQ(hashes, "5190058859396713531 5025096444100986707 3938270613731686410 11216124696535027638 ");
}

TEST(WorldScene, EveryOptionRangeGivesValidScenes) {
  for (int size : {16, 17, 23, 40}) {
    WorldOptions o = small_options(uint64_t(size), 1);
    o.size = size;
    o.max_objects = 16;
    o.text_probability = 1;
    for (int i = 0; i < 20; ++i) {
      const WorldScene s = make_world_scene(o, i);
      ASSERT_GE(s.objects.size(), 1u) << size << " " << i;
      ASSERT_EQ(s.image.rgb.size(), size_t(size) * size_t(size) * 3);
      for (const WorldObject& ob : s.objects) {
        ASSERT_GE(ob.box.x0, 0);
        ASSERT_LE(ob.box.x1, size);
        ASSERT_LT(ob.box.x0, ob.box.x1);
        ASSERT_LT(ob.box.y0, ob.box.y1);
      }
      for (const WorldExample& e : make_world_examples(s, o, i, nullptr)) ASSERT_FALSE(e.suffix.empty());
    }
  }
}

TEST(WorldScene, GroundTruthMatchesTheWrittenPixels) {
  test::TempDir dir;
  WorldOptions o = small_options(11, 1);
  o.max_objects = 6;
  int objects = 0, texts = 0;
  std::map<int, int> shapes;
  for (int i = 0; i < 30; ++i) {
    const WorldScene s = make_world_scene(o, i);
    ASSERT_GE(s.objects.size(), 1u) << i;
    ASSERT_LE(s.objects.size(), 6u) << i;
    const std::string png = dir.file("scene.png");
    write_png(png, s.image);
    const Image img = load_image(png);
    ASSERT_EQ(img.width, 64);
    ASSERT_EQ(img.height, 64);
    ASSERT_EQ(img.rgb, s.image.rgb);
    std::vector<int> owners(64 * 64, 0);
    for (size_t k = 0; k < s.objects.size(); ++k) {
      const WorldObject& ob = s.objects[k];
      const auto& rgb = kColorRgb[int(ob.color)];
      ASSERT_EQ(ob.mask.width, 64);
      ASSERT_EQ(ob.mask.data.size(), 64u * 64u);
      int x0 = 64, y0 = 64, x1 = -1, y1 = -1, n = 0;
      for (int y = 0; y < 64; ++y)
        for (int x = 0; x < 64; ++x) {
          if (!ob.mask.data[size_t(y * 64 + x)]) continue;
          ++n;
          ++owners[size_t(y * 64 + x)];
          const uint8_t* p = &img.rgb[size_t(y * 64 + x) * 3];
          ASSERT_TRUE(p[0] == rgb[0] && p[1] == rgb[1] && p[2] == rgb[2])
              << "scene " << i << " object " << k << " pixel " << x << "," << y;
          x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x + 1), y1 = std::max(y1, y + 1);
        }
      ASSERT_GE(n, 4) << "scene " << i << " object " << k;
      EXPECT_EQ(ob.box.x0, x0);
      EXPECT_EQ(ob.box.y0, y0);
      EXPECT_EQ(ob.box.x1, x1);
      EXPECT_EQ(ob.box.y1, y1);
      ++objects;
      ++shapes[int(ob.shape)];
    }
    for (int v : owners) ASSERT_LE(v, 1) << "masks overlap in scene " << i;
    if (s.text) {
      ++texts;
      EXPECT_FALSE(s.text->text.empty());
      // The text's box is tight around pixels of its colour, and touches no object.
      const Box& b = s.text->box;
      int n = 0;
      for (int y = int(b.y0); y < int(b.y1); ++y)
        for (int x = int(b.x0); x < int(b.x1); ++x) {
          EXPECT_EQ(owners[size_t(y * 64 + x)], 0);
          const uint8_t* p = &img.rgb[size_t(y * 64 + x) * 3];
          n += p[0] == s.text->rgb[0] && p[1] == s.text->rgb[1] && p[2] == s.text->rgb[2];
        }
      EXPECT_GT(n, 0);
    }
  }
  EXPECT_GT(objects, 40);
  EXPECT_GT(texts, 3);
  EXPECT_GE(shapes.size(), 5u);  // the shape classes all turn up
}

TEST(WorldExamples, SuffixesAgreeWithTheGroundTruth) {
  WorldOptions o = small_options(5, 1);
  o.size = 96;
  o.questions_per_image = 4;
  o.text_probability = 0.6;
  const std::regex how_many("how many (\\w+) are there\\?");
  const std::regex color_of("what color is the (\\w+)\\?");
  int detects = 0, counts = 0, colors = 0, captions = 0, ocrs = 0;
  for (int i = 0; i < 25; ++i) {
    const WorldScene s = make_world_scene(o, i);
    for (const WorldExample& e : make_world_examples(s, o, i, nullptr)) {
      ASSERT_EQ(e.suffix.find('\n'), std::string::npos);
      std::smatch m;
      if (e.task == WorldTask::Detect) {
        ++detects;
        // Classes named in the prompt, then objects of each class left to right.
        std::vector<std::string> classes;
        std::string rest = e.prefix.substr(std::string("detect ").size());
        for (size_t p; (p = rest.find(" ; ")) != std::string::npos; rest = rest.substr(p + 3))
          classes.push_back(rest.substr(0, p));
        classes.push_back(rest);
        std::vector<const WorldObject*> expected;
        for (const std::string& c : classes) {
          std::vector<const WorldObject*> of;
          for (const WorldObject& ob : s.objects)
            if (kShapeNames[int(ob.shape)] == c) of.push_back(&ob);
          ASSERT_FALSE(of.empty()) << e.prefix;
          std::stable_sort(of.begin(), of.end(), [](auto* a, auto* b) { return a->box.x0 + a->box.x1 < b->box.x0 + b->box.x1; });
          expected.insert(expected.end(), of.begin(), of.end());
        }
        const ParsedAnswer a = parse_answer(e.suffix, 96, 96);
        EXPECT_TRUE(a.skipped.empty()) << e.suffix;
        ASSERT_EQ(a.objects.size(), expected.size()) << e.suffix;
        const double bin = 96.0 / 1024.0 + 1e-9;
        for (size_t k = 0; k < expected.size(); ++k) {
          EXPECT_EQ(a.objects[k].label, kShapeNames[int(expected[k]->shape)]);
          EXPECT_NEAR(a.objects[k].box.x0, expected[k]->box.x0, bin);
          EXPECT_NEAR(a.objects[k].box.y0, expected[k]->box.y0, bin);
          EXPECT_NEAR(a.objects[k].box.x1, expected[k]->box.x1, bin);
          EXPECT_NEAR(a.objects[k].box.y1, expected[k]->box.y1, bin);
        }
      } else if (e.task == WorldTask::Answer) {
        const std::string q = e.prefix.substr(std::string("answer en ").size());
        if (std::regex_match(q, m, how_many)) {
          ++counts;
          int n = 0;
          for (const WorldObject& ob : s.objects) n += kShapePlurals[int(ob.shape)] == m[1].str();
          EXPECT_EQ(e.suffix, std::to_string(n)) << q;
        } else if (std::regex_match(q, m, color_of)) {
          ++colors;
          std::vector<std::string> found;
          for (const WorldObject& ob : s.objects)
            if (kShapeNames[int(ob.shape)] == m[1].str()) found.push_back(kColorNames[int(ob.color)]);
          ASSERT_EQ(found.size(), 1u) << q;  // only asked when unique
          EXPECT_EQ(e.suffix, found[0]);
        } else if (q == "what does the text say?") {
          ASSERT_TRUE(s.text.has_value());
          EXPECT_EQ(e.suffix, s.text->text);
        } else {
          EXPECT_TRUE(e.suffix == "yes" || e.suffix == "no" || q.rfind("what shape is the ", 0) == 0) << q;
        }
      } else if (e.task == WorldTask::Caption) {
        ++captions;
        EXPECT_EQ(e.prefix, "caption en");
        EXPECT_EQ(e.suffix.back(), '.');
        // One "a <size> <colour> <shape>" per object.
        size_t phrases = 0;
        for (const WorldObject& ob : s.objects) {
          const std::string phrase = std::string("a ") + kSizeNames[int(ob.size)] + " " + kColorNames[int(ob.color)] +
                                     " " + kShapeNames[int(ob.shape)];
          EXPECT_NE(e.suffix.find(phrase), std::string::npos) << e.suffix << " lacks " << phrase;
        }
        for (size_t p = 0; (p = e.suffix.find("a ", p)) != std::string::npos; ++p)
          phrases += p == 0 || e.suffix[p - 1] == ' ';
        EXPECT_EQ(phrases, s.objects.size()) << e.suffix;
      } else if (e.task == WorldTask::Ocr) {
        ++ocrs;
        ASSERT_TRUE(s.text.has_value());
        EXPECT_EQ(e.suffix, s.text->text);
      }
      EXPECT_NE(e.task, WorldTask::Segment);  // no codec given
    }
    if (!s.text) {
      for (const WorldExample& e : make_world_examples(s, o, i, nullptr)) EXPECT_NE(e.task, WorldTask::Ocr);
    }
  }
  EXPECT_EQ(detects, 25);
  EXPECT_EQ(captions, 25);
  EXPECT_GT(counts, 5);
  EXPECT_GT(colors, 2);
  EXPECT_GT(ocrs, 3);
}

// The examples of the default world are those the code wrote before the held-back options
// existed: the FNV-1a hash (pg::fnv1a) of "prefix\tsuffix\n" of images 0-19 of seed 1 at 224 px (caption,
// answer, detect, ocr; 84 lines), taken from the train.jsonl that version 0 of the world model
// was trained on (written by commit e11dc5d).
TEST(WorldDeterminism, PinnedDefaultExamples) {
  WorldOptions o;
  o.seed = 1;
  o.images = 20;
  o.size = 224;
  o.tasks = parse_world_tasks("caption,answer,detect,ocr");
  std::string text;
  int lines = 0;
  for (int i = 0; i < 20; ++i)
    for (const WorldExample& e : make_world_examples(make_world_scene(o, i), o, i, nullptr)) {
      text += e.prefix + "\t" + e.suffix + "\n";
      ++lines;
    }
  EXPECT_EQ(lines, 84);
  EXPECT_EQ(fnv1a(text), 0xdcc85e2eb929dcdaull);
}

// The held-back question types: asked only when named, answers from the ground truth, and
// "is there" balanced between yes and no.
TEST(WorldExamples, HeldBackQuestionTypesAreAskedOnlyWhenNamed) {
  WorldOptions o = small_options(11, 1);
  o.size = 96;
  o.questions_per_image = 3;
  o.tasks = {WorldTask::Answer};
  const std::regex size_of("what size is the (\\w+) (\\w+)\\?");
  const std::regex is_there("is there a (\\w+) object\\?");
  // Default types: neither held-back question ever appears, and naming the five defaults
  // explicitly changes nothing.
  WorldOptions explicit_default = o;
  explicit_default.questions = parse_world_questions("count,color,shape,position,text");
  for (int i = 0; i < 40; ++i) {
    const WorldScene s = make_world_scene(o, i);
    const std::vector<WorldExample> a = make_world_examples(s, o, i, nullptr);
    const std::vector<WorldExample> b = make_world_examples(s, explicit_default, i, nullptr);
    ASSERT_EQ(a.size(), b.size());
    for (size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k].prefix, b[k].prefix);
      EXPECT_EQ(a[k].suffix, b[k].suffix);
      const std::string q = a[k].prefix.substr(std::string("answer en ").size());
      EXPECT_FALSE(std::regex_match(q, size_of) || std::regex_match(q, is_there)) << q;
    }
  }
  o.questions = parse_world_questions("size, exists");
  int sizes = 0, yes = 0, no = 0;
  for (int i = 0; i < 200; ++i) {
    const WorldScene s = make_world_scene(o, i);
    for (const WorldExample& e : make_world_examples(s, o, i, nullptr)) {
      const std::string q = e.prefix.substr(std::string("answer en ").size());
      std::smatch m;
      if (std::regex_match(q, m, size_of)) {
        ++sizes;
        std::vector<std::string> found;
        for (const WorldObject& ob : s.objects)
          if (kColorNames[int(ob.color)] == m[1].str() && kShapeNames[int(ob.shape)] == m[2].str())
            found.push_back(kSizeNames[int(ob.size)]);
        ASSERT_EQ(found.size(), 1u) << q;  // only asked of an object the expression names alone
        EXPECT_EQ(e.suffix, found[0]) << q;
      } else if (std::regex_match(q, m, is_there)) {
        bool present = false;
        for (const WorldObject& ob : s.objects) present |= kColorNames[int(ob.color)] == m[1].str();
        EXPECT_EQ(e.suffix, present ? "yes" : "no") << q;
        (present ? yes : no) += 1;
      } else {
        ADD_FAILURE() << "a question of a type not asked for: " << q;
      }
    }
  }
  EXPECT_GT(sizes, 100);
  EXPECT_GT(yes, 100);
  EXPECT_NEAR(double(no) / double(yes + no), 0.5, 0.08) << yes << " yes, " << no << " no";
  EXPECT_NE(test::error_of([] { parse_world_questions("size,colour"); }).find("unknown world question type 'colour'"),
            std::string::npos);
  o.questions = {WorldQuestion::Size, WorldQuestion::Size};
  EXPECT_NE(test::error_of([&] { validate_world_options(o); }).find("'size' is named twice"), std::string::npos);
  o.questions = {WorldQuestion(9)};
  EXPECT_NE(test::error_of([&] { validate_world_options(o); }).find("out of range"), std::string::npos);
  o.questions.clear();
  EXPECT_NE(test::error_of([&] { validate_world_options(o); }).find("no question type"), std::string::npos);
}

// The held-back hexagon: never drawn by default (and the default scenes are the same as with
// the six classes named), drawn when named; it rasterises as a regular hexagon (area 3 sqrt(3) / 2
// r^2, unlike the circle's pi r^2) and the examples name it.
TEST(WorldScene, HeldBackHexagonIsDrawnOnlyWhenNamed) {
  WorldOptions o = small_options(21, 1);
  o.size = 128;
  o.tasks = {WorldTask::Caption, WorldTask::Answer, WorldTask::Detect};
  WorldOptions explicit_default = o;
  explicit_default.shapes = parse_world_shapes("circle,square,triangle,rectangle,star,ring");
  // How the CLI spells a list (its --shapes default): the inverse of the parser.
  EXPECT_EQ(world_shape_list(o.shapes), "circle,square,triangle,rectangle,star,ring");
  EXPECT_EQ(world_shape_list(parse_world_shapes("hexagon, circle")), "hexagon,circle");
  EXPECT_EQ(world_task_list(parse_world_tasks("ocr, caption")), "ocr,caption");
  EXPECT_EQ(world_question_list(parse_world_questions("exists,count")), "exists,count");
  for (int i = 0; i < 40; ++i) {
    const WorldScene a = make_world_scene(o, i), b = make_world_scene(explicit_default, i);
    EXPECT_EQ(a.image.rgb, b.image.rgb);
    for (const WorldObject& ob : a.objects) EXPECT_NE(ob.shape, WorldShape::Hexagon);
    for (const WorldExample& e : make_world_examples(a, o, i, nullptr))
      EXPECT_EQ(e.suffix.find("hexagon"), std::string::npos);
  }
  o.shapes = parse_world_shapes("hexagon, circle");
  o.max_objects = 1;
  o.text_probability = 0;
  int hexagons = 0, circles = 0, named = 0;
  double hexagon_fill = 0, circle_fill = 0;  // visible pixels / (box side / 2)^2
  for (int i = 0; i < 60; ++i) {
    const WorldScene s = make_world_scene(o, i);
    ASSERT_EQ(s.objects.size(), 1u);
    const WorldObject& ob = s.objects[0];
    int64_t area = 0;
    for (uint8_t v : ob.mask.data) area += v;
    // The box's width is the hexagon's corner-to-corner width 2r (its height is sqrt(3) r).
    const double r = (ob.box.x1 - ob.box.x0) / 2;
    if (ob.shape == WorldShape::Hexagon) {
      ++hexagons;
      hexagon_fill += double(area) / (r * r);
      EXPECT_NEAR((ob.box.y1 - ob.box.y0) / (ob.box.x1 - ob.box.x0), std::sqrt(3.0) / 2, 0.08);
    } else {
      ASSERT_EQ(ob.shape, WorldShape::Circle);
      ++circles;
      circle_fill += double(area) / (r * r);
    }
    for (const WorldExample& e : make_world_examples(s, o, i, nullptr))
      if (e.task == WorldTask::Caption)
        named += e.suffix.find(ob.shape == WorldShape::Hexagon ? "hexagon" : "circle") != std::string::npos;
  }
  EXPECT_GT(hexagons, 15);
  EXPECT_GT(circles, 15);
  EXPECT_EQ(named, 60);
  EXPECT_NEAR(hexagon_fill / hexagons, 3 * std::sqrt(3.0) / 2, 0.25);
  EXPECT_NEAR(circle_fill / circles, M_PI, 0.25);
  EXPECT_NE(test::error_of([] { parse_world_shapes("hexagon,pentagon"); }).find("unknown world shape 'pentagon'"),
            std::string::npos);
  o.shapes = {WorldShape::Hexagon, WorldShape::Circle, WorldShape::Hexagon};
  EXPECT_NE(test::error_of([&] { validate_world_options(o); }).find("'hexagon' is named twice"), std::string::npos);
  o.shapes.clear();
  EXPECT_NE(test::error_of([&] { validate_world_options(o); }).find("no shape"), std::string::npos);
}

TEST(WorldWriter, JsonlLoadsWithTheTrainerReaderAndMasksMatch) {
  test::TempDir dir;
  WorldOptions o = small_options(21, 6);
  const WorldStats stats = write_world(dir.path(), o);
  EXPECT_EQ(stats.images, 6);
  EXPECT_FALSE(stats.segment_skipped_no_vae);
  const std::string path = dir.file("train.jsonl");
  const train::Dataset d = train::load_jsonl(path, true);
  EXPECT_TRUE(d.skipped.empty());
  const auto lines = read_jsonl(path);
  ASSERT_EQ(d.records.size(), lines.size());
  int total = 0;
  for (int n : stats.lines_per_task) total += n;
  EXPECT_EQ(total, int(lines.size()));
  EXPECT_GT(stats.lines_per_task[int(WorldTask::Segment)], 0);

  const MaskCodec codec = MaskCodec::load(vae_fixture());
  int segments = 0;
  for (const auto& j : lines) {
    ASSERT_TRUE(j.contains("task"));
    if (j["task"] != "segment") {
      EXPECT_FALSE(j.contains("mask"));
      continue;
    }
    ++segments;
    const std::string image = j["image"];
    const int index = std::stoi(image.substr(image.size() - 10, 6));
    const WorldScene s = make_world_scene(o, index);
    const std::string expr = j["prefix"].get<std::string>().substr(8);  // "segment "
    const WorldObject* ref = nullptr;
    int matches = 0;
    for (const WorldObject& ob : s.objects)
      if (std::string(kColorNames[int(ob.color)]) + " " + kShapeNames[int(ob.shape)] == expr) ref = &ob, ++matches;
    ASSERT_EQ(matches, 1) << expr;
    // The mask PNG is the referred object's visible pixels.
    const Image mask = load_image(dir.file(j["mask"]));
    ASSERT_EQ(mask.width, 64);
    for (size_t p = 0; p < ref->mask.data.size(); ++p) ASSERT_EQ(mask.rgb[p * 3], ref->mask.data[p] ? 255 : 0);
    // The suffix: the box, the 16 codes of encode_mask, the expression.
    const ParsedAnswer a = parse_answer(j["suffix"], 64, 64);
    ASSERT_EQ(a.objects.size(), 1u);
    EXPECT_EQ(a.objects[0].label, expr);
    ASSERT_TRUE(a.objects[0].seg.has_value());
    EXPECT_NEAR(a.objects[0].box.x0, ref->box.x0, 64.0 / 1024 + 1e-9);
    EXPECT_NEAR(a.objects[0].box.y1, ref->box.y1, 64.0 / 1024 + 1e-9);
    const std::array<int, 16> codes = encode_mask(codec, ref->mask, ref->box);
    EXPECT_EQ(*a.objects[0].seg, codes);
  }
  EXPECT_EQ(segments, stats.lines_per_task[int(WorldTask::Segment)]);

  // Without a VAE: no segment lines, and the stats say why.
  test::TempDir plain;
  o.vae_path.clear();
  const WorldStats no_vae = write_world(plain.path(), o);
  EXPECT_TRUE(no_vae.segment_skipped_no_vae);
  EXPECT_EQ(no_vae.lines_per_task[int(WorldTask::Segment)], 0);
  for (const auto& j : read_jsonl(plain.file("train.jsonl"))) EXPECT_NE(j["task"], "segment");
}

TEST(WorldOptions, BadOptionsNameTheProblem) {
  test::TempDir dir;
  auto err = [&](WorldOptions o) { return test::error_of([&] { write_world(dir.path(), o); }); };
  WorldOptions o = small_options(1, 2);
  EXPECT_NE(test::error_of([] { parse_world_tasks("caption,dance"); }).find("unknown world task 'dance'"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { parse_world_tasks(" , "); }).find("no world task"), std::string::npos);
  EXPECT_EQ(parse_world_tasks("ocr, caption,ocr").size(), 2u);
  WorldOptions bad = o;
  bad.size = 8;
  EXPECT_NE(err(bad).find("image size"), std::string::npos);
  bad = o;
  bad.images = 0;
  EXPECT_NE(err(bad).find("number of images"), std::string::npos);
  bad = o;
  bad.max_objects = 0;
  EXPECT_NE(err(bad).find("max objects"), std::string::npos);
  bad = o;
  bad.text_probability = 1.5;
  EXPECT_NE(err(bad).find("text probability"), std::string::npos);
  bad = o;
  bad.split_name = "../x";
  EXPECT_NE(err(bad).find("split name"), std::string::npos);
  bad = o;
  bad.vae_path = dir.file("missing.npz");
  EXPECT_NE(err(bad).find("missing.npz"), std::string::npos);
  bad = o;
  bad.text_probability = 1;
  bad.font_path = dir.file("nofont.ttf");
  EXPECT_NE(err(bad).find("nofont.ttf"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir.file("train.jsonl")));  // every check runs before anything is written
  bad = o;
  EXPECT_NE(test::error_of([&] { write_world("", bad); }).find("output directory"), std::string::npos);
}

TEST(WorldCli, WritesASplitAndReportsBadOptions) {
  test::TempDir dir;
  const std::string base = test::cli_path() + " world --out " + dir.path() + " --seed 3";
  auto ok = test::run_command(base + " --images 3 --size 32 --split-name val");
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("no --vae"), std::string::npos) << ok.output;
  EXPECT_TRUE(fs::exists(dir.file("val.jsonl")));
  EXPECT_TRUE(fs::exists(dir.file("images/val_000002.png")));
  EXPECT_EQ(train::load_jsonl(dir.file("val.jsonl"), false).skipped.size(), 0u);

  for (const auto& [flags, needle] : std::vector<std::pair<std::string, std::string>>{
           {" --images 2 --tasks caption,juggle", "unknown world task 'juggle'"},
           {" --images 2 --question-types count,weight", "unknown world question type 'weight'"},
           {" --images 2 --shapes circle,oval", "unknown world shape 'oval'"},
           {" --images 0", "number of images"},
           {" --images 2 --size 8", "image size"},
           {" --images 2 --tasks segment --vae " + dir.file("nope.npz"), "nope.npz"},
       }) {
    auto r = test::run_command(base + flags);
    EXPECT_EQ(r.exit_code, 1) << flags << ": " << r.output;
    EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << flags << ": " << r.output;
  }
}

}  // namespace
}  // namespace pg
