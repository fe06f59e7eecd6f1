// Sampling one scene of the synthetic world: background, objects (with occlusion-aware masks),
// optional text. Every random choice comes from world::Rng (see world_internal.h).
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>

#include "paligemma/error.h"
#include "render/font.h"
#include "world/world_internal.h"

namespace pg {
namespace {

using world::kQ;
using world::Rng;
using world::ShapeGeometry;

constexpr const char* kWords[] = {"cat",  "dog", "sun", "tree", "car", "book", "fish", "bird",
                                  "moon", "cup", "key", "hat",  "map", "pen",  "boat", "lamp"};
constexpr int kWordCount = int(sizeof(kWords) / sizeof(kWords[0]));

// Radius (half extent) per size word, in thousandths of the image side.
constexpr int kRadiusPerMille[3][2] = {{65, 85}, {115, 145}, {180, 220}};

const render::Font& cached_font(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<render::Font>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(path);
  if (it == cache.end()) it = cache.emplace(path, std::make_unique<render::Font>(path, "world")).first;
  return *it->second;
}

struct Extent {
  int64_t x0, y0, x1, y1;
  bool intersects(const Extent& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
};

Extent full_extent(const ShapeGeometry& g, int64_t margin) {
  return {g.cx - g.r - margin, g.cy - g.r - margin, g.cx + g.r + margin, g.cy + g.r + margin};
}

struct Candidate {
  ShapeGeometry geometry;
  WorldColor color;
  WorldSize size;
};

std::vector<Candidate> sample_objects(const WorldOptions& o, Rng& rng) {
  const int64_t S = o.size;
  const int n = int(rng.uniform(1, o.max_objects));
  std::vector<Candidate> out;
  for (int i = 0; i < n; ++i) {
    Candidate c;
    c.geometry.shape = o.shapes[size_t(rng.uniform(0, int64_t(o.shapes.size()) - 1))];
    c.color = WorldColor(rng.uniform(0, kWorldColorCount - 1));
    c.size = WorldSize(rng.uniform(0, 2));
    c.geometry.vertical = rng.chance(0.5);
    const auto& pm = kRadiusPerMille[int(c.size)];
    c.geometry.r = std::max<int64_t>(rng.uniform(S * kQ * pm[0] / 1000, S * kQ * pm[1] / 1000), 2 * kQ);
    const int64_t lo = c.geometry.r + kQ, hi = S * kQ - c.geometry.r - kQ;
    bool placed = false;
    for (int attempt = 0; attempt < 30 && !placed; ++attempt) {
      c.geometry.cx = hi >= lo ? rng.uniform(lo, hi) : S * kQ / 2;
      c.geometry.cy = hi >= lo ? rng.uniform(lo, hi) : S * kQ / 2;
      placed = true;
      const Extent e = full_extent(c.geometry, 2 * kQ);
      for (const Candidate& p : out)
        if (p.color == c.color && e.intersects(full_extent(p.geometry, 2 * kQ))) placed = false;
    }
    if (placed) out.push_back(c);
  }
  return out;
}

// Draws the objects' ownership (topmost object per pixel), removing objects that are mostly
// hidden until every remaining one shows at least 40% of itself (and 4 pixels).
std::vector<int> resolve_occlusion(std::vector<Candidate>& objects, int S) {
  std::vector<int> owner;
  for (;;) {
    owner.assign(size_t(S) * size_t(S), -1);
    std::vector<int64_t> full(objects.size(), 0), visible(objects.size(), 0);
    for (size_t i = 0; i < objects.size(); ++i) {
      int x0, y0, x1, y1;
      world::shape_pixel_extent(objects[i].geometry, S, x0, y0, x1, y1);
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x)
          if (world::shape_contains(objects[i].geometry, x * kQ + kQ / 2, y * kQ + kQ / 2)) {
            owner[size_t(y) * size_t(S) + size_t(x)] = int(i);
            ++full[i];
          }
    }
    for (int id : owner)
      if (id >= 0) ++visible[size_t(id)];
    int worst = -1;
    for (size_t i = 0; i < objects.size(); ++i) {
      const bool bad = visible[i] * 10 < full[i] * 4 || visible[i] < 4;
      if (!bad) continue;
      // Smallest visible fraction first (cross-multiplied; ties: the earlier object).
      if (worst < 0 || visible[i] * full[size_t(worst)] < visible[size_t(worst)] * full[i]) worst = int(i);
    }
    if (worst < 0) return owner;
    objects.erase(objects.begin() + worst);
  }
}

void place_text(WorldScene& scene, std::vector<int>& owner, const WorldOptions& o, Rng& rng) {
  const int S = o.size;
  std::string text;
  if (rng.chance(0.6)) text = kWords[rng.uniform(0, kWordCount - 1)];
  else text = std::to_string(rng.uniform(0, 999));
  const int px = int(std::max<int64_t>(rng.uniform(int64_t(S) * 10 / 100, int64_t(S) * 14 / 100), 8));
  const render::Font& font = cached_font(o.font_path);
  const std::vector<uint32_t> cps = render::utf8_codepoints(text);
  const render::TextLayout layout = font.measure(cps, float(px));
  std::vector<std::pair<int, int>> pixels;  // binarised glyph pixels, relative to (0, 0)
  font.draw(cps, layout, 0, 0, [&](int x, int y, unsigned char a) {
    if (a >= 128) pixels.emplace_back(x, y);
  });
  const uint64_t position_draws = rng.next();  // the same number of draws whatever happens below
  if (pixels.empty()) return;
  std::sort(pixels.begin(), pixels.end());
  pixels.erase(std::unique(pixels.begin(), pixels.end()), pixels.end());
  int mx0 = pixels[0].first, mx1 = mx0, my0 = pixels[0].second, my1 = my0;
  for (auto [x, y] : pixels) mx0 = std::min(mx0, x), mx1 = std::max(mx1, x), my0 = std::min(my0, y), my1 = std::max(my1, y);
  const int tw = mx1 - mx0 + 1, th = my1 - my0 + 1;
  if (tw > S - 2 || th > S - 2) return;
  Rng pos(position_draws);
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int left = int(pos.uniform(1, S - 1 - tw)), top = int(pos.uniform(1, S - 1 - th));
    const Extent box{left - 2, top - 2, left + tw + 2, top + th + 2};
    bool clear = true;
    for (const WorldObject& ob : scene.objects)
      if (box.intersects(Extent{int64_t(ob.box.x0), int64_t(ob.box.y0), int64_t(ob.box.x1), int64_t(ob.box.y1)}))
        clear = false;
    if (!clear) continue;
    // Contrast with the background under the text.
    int64_t lum = 0, count = 0;
    for (int y = top; y < top + th; ++y)
      for (int x = left; x < left + tw; ++x) {
        const uint8_t* p = &scene.image.rgb[(size_t(y) * size_t(S) + size_t(x)) * 3];
        lum += 299 * p[0] + 587 * p[1] + 114 * p[2];
        ++count;
      }
    WorldText t;
    t.text = text;
    t.rgb = lum >= 128 * 1000 * count ? std::array<uint8_t, 3>{25, 25, 25} : std::array<uint8_t, 3>{240, 240, 240};
    const int ox = left - mx0, oy = top - my0;
    for (auto [x, y] : pixels) {
      const size_t i = size_t(y + oy) * size_t(S) + size_t(x + ox);
      owner[i] = -1;
      for (int k = 0; k < 3; ++k) scene.image.rgb[i * 3 + size_t(k)] = t.rgb[size_t(k)];
    }
    t.box = Box{double(left), double(top), double(left + tw), double(top + th)};
    scene.text = t;
    return;
  }
}

}  // namespace

void world::load_world_font(const std::string& path) { cached_font(path); }

const char* world_task_name(WorldTask task) { return kTaskNames[int(task)]; }

namespace {

// "a, b" -> the indices of the names in `known` (order kept, duplicates removed); `what` names
// the kind of item in the errors.
std::vector<int> parse_name_list(const std::string& comma_list, const char* const* known, int count,
                                 const std::string& what) {
  std::string known_list;
  for (int k = 0; k < count; ++k) known_list += std::string(k ? ", " : "") + known[k];
  std::vector<int> out;
  size_t start = 0;
  while (start <= comma_list.size()) {
    size_t end = comma_list.find(',', start);
    if (end == std::string::npos) end = comma_list.size();
    std::string name = comma_list.substr(start, end - start);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    if (!name.empty()) {
      int found = -1;
      for (int k = 0; k < count; ++k)
        if (name == known[k]) found = k;
      if (found < 0) throw Error("unknown " + what + " '" + name + "' (known: " + known_list + ")");
      if (std::find(out.begin(), out.end(), found) == out.end()) out.push_back(found);
    }
    start = end + 1;
  }
  if (out.empty()) throw Error("no " + what + " given (known: " + known_list + ")");
  return out;
}

// parse_name_list's inverse: the names of the values, comma-separated.
template <class E>
std::string name_list(const std::vector<E>& values, const char* const* names) {
  std::string list;
  for (E v : values) {
    if (!list.empty()) list += ',';
    list += names[int(v)];
  }
  return list;
}

// Every entry of a hand-filled option list in range and named once ('what' names the kind).
template <typename Enum>
void check_enum_list(const std::vector<Enum>& list, int count, const char* const* names, const char* what) {
  for (size_t i = 0; i < list.size(); ++i) {
    const int k = static_cast<int>(list[i]);
    if (k < 0 || k >= count) throw Error(std::string("world: ") + what + " " + std::to_string(k) + " is out of range");
    for (size_t j = 0; j < i; ++j)
      if (list[j] == list[i]) throw Error(std::string("world: the ") + what + " '" + names[k] + "' is named twice");
  }
}

}  // namespace

std::vector<WorldTask> parse_world_tasks(const std::string& comma_list) {
  std::vector<WorldTask> out;
  for (int k : parse_name_list(comma_list, kTaskNames, 5, "world task")) out.push_back(WorldTask(k));
  return out;
}

std::vector<WorldShape> parse_world_shapes(const std::string& comma_list) {
  std::vector<WorldShape> out;
  for (int k : parse_name_list(comma_list, kShapeNames, kWorldShapeCount, "world shape")) out.push_back(WorldShape(k));
  return out;
}

std::string world_task_list(const std::vector<WorldTask>& tasks) { return name_list(tasks, kTaskNames); }
std::string world_shape_list(const std::vector<WorldShape>& shapes) { return name_list(shapes, kShapeNames); }
std::string world_question_list(const std::vector<WorldQuestion>& questions) {
  return name_list(questions, kQuestionNames);
}

std::vector<WorldQuestion> parse_world_questions(const std::string& comma_list) {
  std::vector<WorldQuestion> out;
  for (int k : parse_name_list(comma_list, kQuestionNames, kWorldQuestionCount, "world question type"))
    out.push_back(WorldQuestion(k));
  return out;
}

void validate_world_options(const WorldOptions& o) {
  if (o.images <= 0) throw Error("world: the number of images must be > 0, got " + std::to_string(o.images));
  if (o.size < 16 || o.size > 4096)
    throw Error("world: the image size must be 16..4096 pixels, got " + std::to_string(o.size));
  if (o.max_objects < 1 || o.max_objects > 16)
    throw Error("world: max objects must be 1..16, got " + std::to_string(o.max_objects));
  if (!(o.text_probability >= 0 && o.text_probability <= 1))
    throw Error("world: the text probability must be in [0, 1], got " + std::to_string(o.text_probability));
  if (o.questions_per_image < 1 || o.questions_per_image > 16)
    throw Error("world: questions per image must be 1..16, got " + std::to_string(o.questions_per_image));
  if (o.tasks.empty()) throw Error("world: no task given (known: caption, answer, detect, segment, ocr)");
  if (o.shapes.empty())
    throw Error("world: no shape given (known: circle, square, triangle, rectangle, star, ring, hexagon)");
  if (o.questions.empty())
    throw Error("world: no question type given (known: count, color, shape, position, text, size, exists)");
  // The parsers never give these; a caller filling the lists by hand might (a repeated class
  // would weigh double and ask its count question twice).
  check_enum_list(o.shapes, kWorldShapeCount, kShapeNames, "shape");
  check_enum_list(o.questions, kWorldQuestionCount, kQuestionNames, "question type");
  if (o.split_name.empty()) throw Error("world: the split name is empty");
  for (char ch : o.split_name)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
      throw Error("world: the split name '" + o.split_name + "' may hold only letters, digits, '-' and '_'");
}

WorldScene make_world_scene(const WorldOptions& o, int64_t index) {
  validate_world_options(o);
  if (index < 0) throw Error("world: negative image index " + std::to_string(index));
  const int S = o.size;
  Rng rng = world::stream(o.seed, index, 0);
  WorldScene scene;
  world::draw_background(scene.image, S, rng);
  std::vector<Candidate> objects = sample_objects(o, rng);
  std::vector<int> owner = resolve_occlusion(objects, S);
  for (size_t p = 0; p < owner.size(); ++p)
    if (owner[p] >= 0) {
      const auto& rgb = kColorRgb[int(objects[size_t(owner[p])].color)];
      for (int k = 0; k < 3; ++k) scene.image.rgb[p * 3 + size_t(k)] = rgb[size_t(k)];
    }
  auto fill_objects = [&] {
    scene.objects.clear();
    for (size_t i = 0; i < objects.size(); ++i) {
      WorldObject ob;
      ob.shape = objects[i].geometry.shape;
      ob.color = objects[i].color;
      ob.size = objects[i].size;
      ob.mask.width = ob.mask.height = S;
      ob.mask.data.assign(size_t(S) * size_t(S), 0);
      int x0 = S, y0 = S, x1 = -1, y1 = -1;
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x)
          if (owner[size_t(y) * size_t(S) + size_t(x)] == int(i)) {
            ob.mask.data[size_t(y) * size_t(S) + size_t(x)] = 1;
            x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
          }
      ob.box = Box{double(x0), double(y0), double(x1 + 1), double(y1 + 1)};
      scene.objects.push_back(std::move(ob));
    }
  };
  fill_objects();
  const bool want_text = rng.chance(o.text_probability);
  if (want_text) {
    place_text(scene, owner, o, rng);
    if (scene.text) fill_objects();  // text pixels never overlap objects; recomputed for safety
  }
  return scene;
}

}  // namespace pg
