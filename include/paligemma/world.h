#pragma once
// A deterministic synthetic "world": images of flat-coloured shapes (and sometimes a word or a
// number) with exact ground truth, and training examples in PaliGemma's task format.
//
// Determinism. Image i of seed S depends only on (S, i, size, max_objects, text_probability,
// shapes (the list and its order), font file), its examples also on the tasks' own options
// (questions, questions_per_image, bins, the VQ-VAE): every random choice comes from our own splitmix64 stream seeded
// from (S, i), never from <random>'s distributions (whose outputs differ between standard libraries). Backgrounds and
// shapes are rasterised in integer arithmetic (1/8-pixel fixed point), so they are the same on
// any machine. Text glyphs come from stb_truetype (float math) on DejaVuSans and are binarised
// (coverage >= 128): the same for the same build and font file. Growing a split (more images)
// never changes earlier images, and the examples of one task never depend on which other tasks
// are written (each task draws from its own stream, seeded from (S, i, task)).
//
// Splits. The train split uses seed S; a held-out (val / test) split must use a different seed
// (image i of another seed is an independent draw). Write each split with its own --split-name:
// file names carry it, so several splits may share one output directory.
//
// A scene: a background (flat, horizontal / vertical / diagonal gradient, or flat with noise, in
// muted mid-tones that every object colour stands out from), 1..max_objects objects drawn in
// order (later on top), then, with probability text_probability, one text item (a word of a
// fixed list or a number 0-999, DejaVuSans at 10-14% of the side, at least 8 px) placed where it
// touches no object (left out when it does not fit or 20 tries find no free place, so somewhat
// fewer images than text_probability says have text). Objects: class (one of options.shapes; by
// default all of kShapeNames but the held-back hexagon), colour
// (kColorNames, flat RGB kColorRgb), size word (small / medium / large: the object's drawn size,
// radius 6.5-8.5% / 11.5-14.5% / 18-22% of the image side, at least 2 pixels). An object whose
// visible area is below 40% of its drawn area (or under 4 pixels) is removed and the scene
// redrawn without it, so no unlabelled fragment remains. Two objects of the same colour never
// overlap (their boxes are kept apart), so every object reads as one region.
//
// Ground truth: each object's visible pixels (mask) and the tight box around them, in pixels
// ([x0, x1) x [y0, y1), integer edges); the text's string, colour and tight box.
//
// Examples (one JSONL line each, {"image", "prefix", "suffix", "task"} plus "mask" for segment;
// "task" is the task's name). Per image: caption 1, answer up to questions_per_image, detect 1,
// segment at most 1, ocr at most 1.
//   caption  "caption en" -> "a large red circle and a small blue square." : objects left to
//            right by box centre (ties: top to bottom), "a <size> <colour> <shape>", joined by
//            ", " with " and " before the last; when the image has text, a last item
//            `the text "WORD"`. Ends with ".".
//   answer   "answer en <question>" -> a short answer. Up to questions_per_image questions per
//            image (each: a question type drawn uniformly among the types that apply, then one
//            of its questions; never the same question twice), from these candidates:
//              "how many <shape plural> are there?"                  -> "0".."16"
//                 (every class present, and one absent class of options.shapes)
//              "what color is the <shape>?"  (exactly one such shape) -> "<colour>"
//              "what shape is the <colour> object?" (exactly one)     -> "<shape>"
//              "is the <colour> <shape> left of the <colour> <shape>?" -> "yes" / "no"
//              "is the <colour> <shape> above the <colour> <shape>?"   -> "yes" / "no"
//                 (both expressions name exactly one object; their box centres differ by at
//                 least 10% of the image side along that axis)
//              "what does the text say?" (images with text)            -> the text
//            These five types (WorldQuestion::Count .. Text) are the default. Two more are held
//            back for transfer experiments (a question type the bundled model never saw), asked
//            only when WorldOptions::questions names them:
//              "what size is the <colour> <shape>?" (names one object)  -> "small" / "medium" / "large"
//              "is there a <colour> object?"  -> "yes" / "no": every present colour, and as many
//                 absent colours (drawn at random), so half the candidates are "no"
//   detect   "detect <shape>" or (half the time, when 2+ classes are present) "detect <shape> ;
//            <shape>", one line per image -> pg::detection_target of every
//            object of the named classes (labels: the class names), in prompt class order, each
//            class left to right. Convention: detect prompts only name classes present in the
//            image, so a suffix is never empty.
//   segment  "segment <colour> <shape>" (only when that names exactly one object) ->
//            pg::segmentation_target(box labelled "<colour> <shape>", encode_mask(codec, mask,
//            box)); extra field "mask": a PNG of the image's size, 255 on the object's visible
//            pixels. Needs a VQ-VAE with encoder (vae_path); without one no segment line is
//            written (WorldStats::segment_skipped_no_vae says so).
//   ocr      "ocr" -> the text (only images with text).
// Boxes use Bins::Demo by default (bins option).
//
// Files written by write_world(out_dir):
//   out_dir/images/<split>_<index:06>.png
//   out_dir/masks/<split>_<index:06>_<object>.png   (segment lines only; object = its index in
//                                                    WorldScene::objects)
//   out_dir/<split>.jsonl                           (paths relative to out_dir)
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "paligemma/image.h"
#include "paligemma/metrics.h"
#include "paligemma/structured.h"

namespace pg {

class MaskCodec;

enum class WorldShape { Circle, Square, Triangle, Rectangle, Star, Ring, Hexagon };
enum class WorldColor { Red, Green, Blue, Yellow, Purple, Orange, White, Black };
enum class WorldSize { Small, Medium, Large };
enum class WorldTask { Caption, Answer, Detect, Segment, Ocr };
enum class WorldQuestion { Count, Color, Shape, Position, Text, Size, Exists };

inline constexpr int kWorldShapeCount = 7;
inline constexpr int kWorldColorCount = 8;
inline constexpr const char* kShapeNames[kWorldShapeCount] = {"circle", "square", "triangle", "rectangle",
                                                              "star",   "ring",   "hexagon"};
inline constexpr const char* kShapePlurals[kWorldShapeCount] = {"circles", "squares", "triangles", "rectangles",
                                                                "stars",   "rings",   "hexagons"};
inline constexpr const char* kColorNames[kWorldColorCount] = {"red",    "green",  "blue",  "yellow",
                                                              "purple", "orange", "white", "black"};
inline constexpr std::array<uint8_t, 3> kColorRgb[kWorldColorCount] = {
    {{220, 30, 30}}, {{30, 170, 50}}, {{30, 70, 225}},   {{245, 220, 25}},
    {{145, 45, 185}}, {{250, 130, 15}}, {{250, 250, 250}}, {{15, 15, 15}}};
inline constexpr const char* kSizeNames[3] = {"small", "medium", "large"};
inline constexpr const char* kTaskNames[5] = {"caption", "answer", "detect", "segment", "ocr"};
inline constexpr int kWorldQuestionCount = 7;
inline constexpr const char* kQuestionNames[kWorldQuestionCount] = {"count", "color", "shape", "position",
                                                                    "text",  "size",  "exists"};

struct WorldOptions {
  uint64_t seed = 0;
  int images = 100;  // > 0
  int size = 224;    // square side in pixels, 16..4096
  std::vector<WorldTask> tasks = {WorldTask::Caption, WorldTask::Answer, WorldTask::Detect, WorldTask::Segment,
                                  WorldTask::Ocr};
  int max_objects = 4;             // 1..16: each scene has 1..max_objects objects (fewer when dropped)
  double text_probability = 0.3;   // [0, 1]
  int questions_per_image = 2;     // answer lines per image, 1..16
  // The object classes scenes draw from (uniformly, in this order); not empty. The default is
  // the six classes of the bundled model's training; Hexagon is held back for transfer
  // experiments (a class the model never saw).
  std::vector<WorldShape> shapes = {WorldShape::Circle,    WorldShape::Square, WorldShape::Triangle,
                                    WorldShape::Rectangle, WorldShape::Star,   WorldShape::Ring};
  // The question types answer examples draw from (see above); not empty.
  std::vector<WorldQuestion> questions = {WorldQuestion::Count, WorldQuestion::Color, WorldQuestion::Shape,
                                          WorldQuestion::Position, WorldQuestion::Text};
  std::string vae_path;            // VQ-VAE npz with encoder, for segment; empty: no segment lines
  std::string split_name = "train";  // file names: letters, digits, '-', '_'
  std::string font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
  Bins bins = Bins::Demo;
};

struct WorldObject {
  WorldShape shape = WorldShape::Circle;
  WorldColor color = WorldColor::Red;
  WorldSize size = WorldSize::Small;
  Box box;          // tight around the visible pixels, integer edges
  BinaryMask mask;  // visible pixels (image size), 1 inside
};

struct WorldText {
  std::string text;
  std::array<uint8_t, 3> rgb{};
  Box box;  // tight around the drawn pixels
};

struct WorldScene {
  Image image;
  std::vector<WorldObject> objects;  // in drawing order (later on top)
  std::optional<WorldText> text;
};

struct WorldExample {
  WorldTask task = WorldTask::Caption;
  std::string prefix, suffix;
  int mask_object = -1;  // segment: the index of the referred object in WorldScene::objects
};

struct WorldStats {
  int images = 0;
  std::vector<int> lines_per_task = std::vector<int>(5, 0);  // indexed by WorldTask
  bool segment_skipped_no_vae = false;  // segment was asked for but no vae_path was given
};

// "caption,answer" -> tasks (order kept, duplicates removed). pg::Error naming an unknown task
// or an empty list.
std::vector<WorldTask> parse_world_tasks(const std::string& comma_list);
const char* world_task_name(WorldTask task);
// "hexagon,circle" -> object classes, the same way.
std::vector<WorldShape> parse_world_shapes(const std::string& comma_list);
// "size,exists" -> question types, the same way (pg::Error naming an unknown type or an empty list).
std::vector<WorldQuestion> parse_world_questions(const std::string& comma_list);
// The inverses: {Circle, Ring} -> "circle,ring", the same for tasks and question types (how the
// CLI spells a list, e.g. its defaults, which are WorldOptions{}'s).
std::string world_task_list(const std::vector<WorldTask>& tasks);
std::string world_shape_list(const std::vector<WorldShape>& shapes);
std::string world_question_list(const std::vector<WorldQuestion>& questions);

// pg::Error naming the bad option (images <= 0, size < 16 or > 4096, max_objects outside 1..16,
// text_probability outside [0, 1], questions_per_image outside 1..16, no task, no shape or no
// question type, a shape or question type named twice or out of range, a bad split name).
void validate_world_options(const WorldOptions& options);

// Scene i of options.seed (validates the options; the font is read only when the scene has text).
WorldScene make_world_scene(const WorldOptions& options, int64_t index);

// The examples of one scene for options.tasks. codec: needed for segment lines (null: none).
std::vector<WorldExample> make_world_examples(const WorldScene& scene, const WorldOptions& options, int64_t index,
                                              const MaskCodec* codec);

// Writes the split (see the file layout above). progress(done, total) is called after each
// image when given. pg::Error for bad options, an unreadable VQ-VAE (or one without encoder)
// or an unwritable directory.
WorldStats write_world(const std::string& out_dir, const WorldOptions& options,
                       const std::function<void(int, int)>& progress = {});

// The file names (relative to the output directory) write_world uses.
std::string world_image_name(const WorldOptions& options, int64_t index);
std::string world_mask_name(const WorldOptions& options, int64_t index, int object);

}  // namespace pg
