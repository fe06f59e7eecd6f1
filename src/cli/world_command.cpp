// `paligemma world`: write a split of the deterministic synthetic world (include/paligemma/world.h):
// images, masks and a JSONL file of PaliGemma-format examples.
#include <chrono>
#include <iostream>

#include "cli/commands.h"
#include "cli/objects_json.h"
#include "paligemma/error.h"
#include "paligemma/world.h"

namespace pg::cli {
namespace {

struct WorldArgs {
  std::string out;
  uint64_t seed = 0;
  int images = 0;
  int size = 224;
  std::string tasks = world_task_list(WorldOptions{}.tasks);
  std::string vae;
  int max_objects = 4;
  double text_probability = 0.3;
  int questions = 2;
  std::string question_types = world_question_list(WorldOptions{}.questions);
  std::string shapes = world_shape_list(WorldOptions{}.shapes);
  std::string split = "train";
  std::string bins = "demo";
  std::string font = WorldOptions{}.font_path;
};

int world(const WorldArgs& a) {
  WorldOptions o;
  o.seed = a.seed;
  o.images = a.images;
  o.size = a.size;
  o.tasks = parse_world_tasks(a.tasks);
  o.vae_path = a.vae;
  o.max_objects = a.max_objects;
  o.text_probability = a.text_probability;
  o.questions_per_image = a.questions;
  o.questions = parse_world_questions(a.question_types);
  o.shapes = parse_world_shapes(a.shapes);
  o.split_name = a.split;
  o.bins = parse_bins(a.bins);
  o.font_path = a.font;
  validate_world_options(o);
  for (WorldTask t : o.tasks)
    if (t == WorldTask::Segment && o.vae_path.empty())
      std::cerr << "world: no --vae given: segment examples are not written\n";
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  bool printed = false;
  const WorldStats stats = write_world(a.out, o, [&](int done, int total) {
    const auto now = std::chrono::steady_clock::now();
    if (done == total ? printed : now - last < std::chrono::seconds(1)) return;
    last = now;
    printed = true;
    std::cerr << "\rworld: " << done << "/" << total << " images" << std::flush;
  });
  if (printed) std::cerr << "\n";
  int lines = 0;
  std::string per_task;
  for (int t = 0; t < 5; ++t) {
    lines += stats.lines_per_task[size_t(t)];
    if (stats.lines_per_task[size_t(t)])
      per_task += std::string(per_task.empty() ? "" : ", ") + kTaskNames[t] + " " +
                  std::to_string(stats.lines_per_task[size_t(t)]);
  }
  std::cerr << "world: wrote " << stats.images << " images and " << lines << " lines (" << per_task << ") to "
            << a.out << "/" << o.split_name << ".jsonl\n";
  return 0;
}

}  // namespace

Runner add_world_command(CLI::App& app) {
  auto args = std::make_shared<WorldArgs>();
  CLI::App* cmd = app.add_subcommand(
      "world", "Generate a deterministic synthetic dataset (shapes, colours, text) in PaliGemma's task format");
  cmd->add_option("--out", args->out, "Output directory (images/, masks/, <split-name>.jsonl)")->required();
  cmd->add_option("--seed", args->seed,
                  "Seed; image i depends only on (seed, i). Held-out splits must use another seed")
      ->required();
  cmd->add_option("--images", args->images, "Number of images (> 0)")->required();
  cmd->add_option("--size", args->size, "Square image side in pixels (16..4096)")->capture_default_str();
  cmd->add_option("--tasks", args->tasks, "Comma list of caption, answer, detect, segment, ocr")->capture_default_str();
  cmd->add_option("--vae", args->vae, "VQ-VAE npz with encoder (vae-oid.npz), needed for segment examples");
  cmd->add_option("--max-objects", args->max_objects, "Most objects per image (1..16)")->capture_default_str();
  cmd->add_option("--text-probability", args->text_probability, "Probability that an image has a text item")
      ->capture_default_str();
  cmd->add_option("--questions", args->questions, "answer examples per image (1..16)")->capture_default_str();
  cmd->add_option("--shapes", args->shapes,
                  "Comma list of the object classes drawn: circle, square, triangle, rectangle, star, ring, and the "
                  "held-back hexagon")
      ->capture_default_str();
  cmd->add_option("--question-types", args->question_types,
                  "Comma list of count, color, shape, position, text, and the held-back size, exists")
      ->capture_default_str();
  cmd->add_option("--split-name", args->split, "Split name: the JSONL file and the file-name prefix")
      ->capture_default_str();
  cmd->add_option("--bins", args->bins, "demo: bin / 1024 * size (Google's demo); bigvision: bin / 1023 * size")
      ->capture_default_str();
  cmd->add_option("--font", args->font, "TrueType font for the text items")->capture_default_str();
  return [args] { return world(*args); };
}

}  // namespace pg::cli
