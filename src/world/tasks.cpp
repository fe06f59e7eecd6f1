// The examples of one scene in PaliGemma's task format (see include/paligemma/world.h for the
// grammar of every prefix and suffix).
#include <algorithm>
#include <numeric>

#include "paligemma/error.h"
#include "paligemma/segmentation.h"
#include "world/world_internal.h"

namespace pg {
namespace {

using world::Rng;

double centre_x(const WorldObject& o) { return (o.box.x0 + o.box.x1) / 2; }
double centre_y(const WorldObject& o) { return (o.box.y0 + o.box.y1) / 2; }

// Object indices left to right by box centre (ties: top to bottom, then drawing order).
std::vector<int> reading_order(const WorldScene& s) {
  std::vector<int> order(s.objects.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const WorldObject &oa = s.objects[size_t(a)], &ob = s.objects[size_t(b)];
    const double ax = oa.box.x0 + oa.box.x1, bx = ob.box.x0 + ob.box.x1;
    if (ax != bx) return ax < bx;
    return oa.box.y0 + oa.box.y1 < ob.box.y0 + ob.box.y1;
  });
  return order;
}

std::string expression(const WorldObject& o) {
  return std::string(kColorNames[int(o.color)]) + " " + kShapeNames[int(o.shape)];
}

// Objects that "<colour> <shape>" names alone.
std::vector<int> referable(const WorldScene& s) {
  std::vector<int> out;
  for (size_t i = 0; i < s.objects.size(); ++i) {
    int n = 0;
    for (const WorldObject& o : s.objects) n += o.color == s.objects[i].color && o.shape == s.objects[i].shape;
    if (n == 1) out.push_back(int(i));
  }
  return out;
}

std::string caption(const WorldScene& s) {
  std::vector<std::string> items;
  for (int i : reading_order(s)) {
    const WorldObject& o = s.objects[size_t(i)];
    items.push_back(std::string("a ") + kSizeNames[int(o.size)] + " " + expression(o));
  }
  if (s.text) items.push_back("the text \"" + s.text->text + "\"");
  if (items.empty()) return "an empty picture.";
  std::string out = items[0];
  for (size_t i = 1; i < items.size(); ++i) out += (i + 1 == items.size() ? " and " : ", ") + items[i];
  return out + ".";
}

struct Question {
  std::string question, answer;
};

std::vector<Question> answers(const WorldScene& s, const WorldOptions& options, Rng& rng) {
  const double S = s.image.width;
  int per_shape[kWorldShapeCount] = {}, per_color[kWorldColorCount] = {};
  for (const WorldObject& o : s.objects) ++per_shape[int(o.shape)], ++per_color[int(o.color)];
  auto asked = [&](WorldQuestion q) {
    return std::find(options.questions.begin(), options.questions.end(), q) != options.questions.end();
  };
  // Candidates by question type (indexed by WorldQuestion), so that no type crowds out the
  // others. The default types draw from rng exactly as before the held-back types existed, so
  // the default output has not changed.
  std::vector<std::vector<Question>> types(kWorldQuestionCount);
  std::vector<int> absent;
  for (WorldShape shape : options.shapes) {  // the classes this world draws from: a count of 0 is true
    const int k = int(shape);
    if (per_shape[k]) types[0].push_back({std::string("how many ") + kShapePlurals[k] + " are there?", std::to_string(per_shape[k])});
    else absent.push_back(k);
  }
  if (!absent.empty()) {
    const int k = absent[size_t(rng.uniform(0, int64_t(absent.size()) - 1))];
    types[0].push_back({std::string("how many ") + kShapePlurals[k] + " are there?", "0"});
  }
  for (const WorldObject& o : s.objects) {
    if (per_shape[int(o.shape)] == 1)
      types[1].push_back({std::string("what color is the ") + kShapeNames[int(o.shape)] + "?", kColorNames[int(o.color)]});
    if (per_color[int(o.color)] == 1)
      types[2].push_back({std::string("what shape is the ") + kColorNames[int(o.color)] + " object?", kShapeNames[int(o.shape)]});
  }
  const std::vector<int> ref = referable(s);
  for (int a : ref)
    for (int b : ref) {
      if (a == b) continue;
      const WorldObject &oa = s.objects[size_t(a)], &ob = s.objects[size_t(b)];
      const double dx = centre_x(ob) - centre_x(oa), dy = centre_y(ob) - centre_y(oa);
      if (std::max(dx, -dx) >= 0.1 * S)
        types[3].push_back({"is the " + expression(oa) + " left of the " + expression(ob) + "?", dx > 0 ? "yes" : "no"});
      if (std::max(dy, -dy) >= 0.1 * S)
        types[3].push_back({"is the " + expression(oa) + " above the " + expression(ob) + "?", dy > 0 ? "yes" : "no"});
    }
  if (s.text) types[4].push_back({"what does the text say?", s.text->text});
  if (asked(WorldQuestion::Size))
    for (int a : ref)
      types[5].push_back(
          {"what size is the " + expression(s.objects[size_t(a)]) + "?", kSizeNames[int(s.objects[size_t(a)].size)]});
  if (asked(WorldQuestion::Exists)) {
    std::vector<int> absent_colors;
    for (int c = 0; c < kWorldColorCount; ++c) {
      if (per_color[c])
        types[6].push_back({std::string("is there a ") + kColorNames[c] + " object?", "yes"});
      else
        absent_colors.push_back(c);
    }
    const size_t present = types[6].size();
    for (size_t n = 0; n < present && !absent_colors.empty(); ++n) {
      const size_t pick = size_t(rng.uniform(0, int64_t(absent_colors.size()) - 1));
      types[6].push_back({std::string("is there a ") + kColorNames[absent_colors[pick]] + " object?", "no"});
      absent_colors.erase(absent_colors.begin() + int64_t(pick));
    }
  }
  for (int t = 0; t < kWorldQuestionCount; ++t)
    if (!asked(WorldQuestion(t))) types[size_t(t)].clear();

  std::vector<Question> out;
  for (int n = 0; n < options.questions_per_image; ++n) {
    std::vector<int> live;
    for (int t = 0; t < kWorldQuestionCount; ++t)
      if (!types[size_t(t)].empty()) live.push_back(t);
    if (live.empty()) break;
    auto& pool = types[size_t(live[size_t(rng.uniform(0, int64_t(live.size()) - 1))])];
    const size_t pick = size_t(rng.uniform(0, int64_t(pool.size()) - 1));
    out.push_back(pool[pick]);
    pool.erase(pool.begin() + int64_t(pick));
  }
  return out;
}

WorldExample detect(const WorldScene& s, const WorldOptions& o, Rng& rng) {
  std::vector<int> present;
  for (int k = 0; k < kWorldShapeCount; ++k)
    for (const WorldObject& ob : s.objects)
      if (int(ob.shape) == k) {
        present.push_back(k);
        break;
      }
  std::vector<int> classes;
  const bool two = present.size() >= 2 && rng.chance(0.5);
  const size_t first = size_t(rng.uniform(0, int64_t(present.size()) - 1));
  classes.push_back(present[first]);
  if (two) {
    present.erase(present.begin() + int64_t(first));
    classes.push_back(present[size_t(rng.uniform(0, int64_t(present.size()) - 1))]);
  }
  WorldExample e;
  e.task = WorldTask::Detect;
  e.prefix = "detect";
  std::vector<LabeledBox> boxes;
  const std::vector<int> order = reading_order(s);
  for (size_t c = 0; c < classes.size(); ++c) {
    e.prefix += std::string(c ? " ; " : " ") + kShapeNames[classes[c]];
    for (int i : order)
      if (int(s.objects[size_t(i)].shape) == classes[c]) boxes.push_back({kShapeNames[classes[c]], s.objects[size_t(i)].box});
  }
  e.suffix = detection_target(boxes, s.image.width, s.image.height, o.bins);
  return e;
}

}  // namespace

std::vector<WorldExample> make_world_examples(const WorldScene& s, const WorldOptions& o, int64_t index,
                                              const MaskCodec* codec) {
  std::vector<WorldExample> out;
  for (WorldTask task : o.tasks) {
    Rng rng = world::stream(o.seed, index, 100 + uint64_t(task));
    switch (task) {
      case WorldTask::Caption:
        out.push_back({task, "caption en", caption(s), -1});
        break;
      case WorldTask::Answer:
        for (const Question& q : answers(s, o, rng)) out.push_back({task, "answer en " + q.question, q.answer, -1});
        break;
      case WorldTask::Detect:
        if (!s.objects.empty()) out.push_back(detect(s, o, rng));
        break;
      case WorldTask::Segment: {
        if (!codec) break;
        const std::vector<int> ref = referable(s);
        if (ref.empty()) break;
        const int i = ref[size_t(rng.uniform(0, int64_t(ref.size()) - 1))];
        const WorldObject& ob = s.objects[size_t(i)];
        const std::string expr = expression(ob);
        const std::array<int, 16> codes = encode_mask(*codec, ob.mask, ob.box);
        out.push_back({task, "segment " + expr,
                       segmentation_target(LabeledBox{expr, ob.box}, codes, s.image.width, s.image.height, o.bins), i});
        break;
      }
      case WorldTask::Ocr:
        if (s.text) out.push_back({task, "ocr", s.text->text, -1});
        break;
    }
  }
  return out;
}

}  // namespace pg
