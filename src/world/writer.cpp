// Writing a split of the synthetic world: images, referred-object masks, one JSONL file.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "paligemma/annotate.h"
#include "paligemma/error.h"
#include "paligemma/mask_codec.h"
#include "paligemma/world.h"
#include "world/world_internal.h"

namespace pg {
namespace fs = std::filesystem;

namespace {

std::string padded(int64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06lld", static_cast<long long>(index));
  return buf;
}

bool has_task(const WorldOptions& o, WorldTask t) {
  for (WorldTask x : o.tasks)
    if (x == t) return true;
  return false;
}

}  // namespace

std::string world_image_name(const WorldOptions& o, int64_t index) {
  return "images/" + o.split_name + "_" + padded(index) + ".png";
}

std::string world_mask_name(const WorldOptions& o, int64_t index, int object) {
  return "masks/" + o.split_name + "_" + padded(index) + "_" + std::to_string(object) + ".png";
}

WorldStats write_world(const std::string& out_dir, const WorldOptions& o,
                       const std::function<void(int, int)>& progress) {
  validate_world_options(o);
  if (out_dir.empty()) throw Error("world: empty output directory");
  WorldStats stats;
  std::unique_ptr<MaskCodec> codec;
  if (has_task(o, WorldTask::Segment)) {
    if (o.vae_path.empty()) {
      stats.segment_skipped_no_vae = true;
    } else {
      codec = std::make_unique<MaskCodec>(MaskCodec::load(o.vae_path));
      if (!codec->has_encoder())
        throw Error("world: the VQ-VAE '" + o.vae_path +
                    "' has no encoder weights (encoder.*), which segment targets need");
    }
  }
  if (o.text_probability > 0) world::load_world_font(o.font_path);  // fail before writing anything
  const fs::path root(out_dir);
  std::error_code ec;
  for (const char* sub : {"images", "masks"}) {
    fs::create_directories(root / sub, ec);
    if (ec) throw Error("world: cannot create directory '" + (root / sub).string() + "': " + ec.message());
  }
  const fs::path jsonl = root / (o.split_name + ".jsonl");
  std::ofstream out(jsonl, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("world: cannot write '" + jsonl.string() + "'");
  for (int i = 0; i < o.images; ++i) {
    const WorldScene scene = make_world_scene(o, i);
    const std::string image_name = world_image_name(o, i);
    write_png((root / image_name).string(), scene.image);
    for (const WorldExample& e : make_world_examples(scene, o, i, codec.get())) {
      nlohmann::ordered_json j;
      j["image"] = image_name;
      j["prefix"] = e.prefix;
      j["suffix"] = e.suffix;
      j["task"] = world_task_name(e.task);
      if (e.mask_object >= 0) {
        const std::string mask_name = world_mask_name(o, i, e.mask_object);
        write_mask_png((root / mask_name).string(), scene.objects[size_t(e.mask_object)].mask);
        j["mask"] = mask_name;
      }
      out << j.dump() << "\n";
      ++stats.lines_per_task[size_t(e.task)];
    }
    if (!out) throw Error("world: cannot write '" + jsonl.string() + "'");
    ++stats.images;
    if (progress) progress(i + 1, o.images);
  }
  out.close();
  if (!out) throw Error("world: cannot write '" + jsonl.string() + "'");
  return stats;
}

}  // namespace pg
