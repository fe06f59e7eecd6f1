// `paligemma probe`: linear probes of a checkpoint's vision tower on single-object world scenes
// (include/paligemma/vision_probe.h): how well shape, colour, size and place can be read from its
// pooled output. A table on stdout, or JSON with --json.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "paligemma/error.h"
#include "paligemma/vision_probe.h"

namespace pg::cli {
namespace {

struct ProbeArgs {
  std::string model, shapes = world_shape_list(VisionProbeOptions{}.shapes);
  VisionProbeOptions options;
  int threads = 0;
  bool json = false;
};

int probe(ProbeArgs& a) {
  a.options.shapes = parse_world_shapes(a.shapes);
  a.options.quiet = false;
  ModelOptions mo;
  mo.threads = a.threads;
  std::cerr << "probe: loading " << a.model << "\n";
  const std::unique_ptr<Model> model = Model::load(a.model, mo);
  const std::vector<ProbeResult> results = probe_vision_tower(*model, a.options);
  if (a.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const ProbeResult& r : results)
      j.push_back({{"attribute", r.attribute},
                   {"classes", r.classes},
                   {"train_accuracy", r.train_accuracy},
                   {"test_accuracy", r.test_accuracy},
                   {"chance", r.chance}});
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("%-8s %7s %10s %10s %8s\n", "probe", "classes", "train acc", "test acc", "chance");
    for (const ProbeResult& r : results)
      std::printf("%-8s %7d %10.3f %10.3f %8.3f\n", r.attribute.c_str(), r.classes, r.train_accuracy, r.test_accuracy,
                  r.chance);
  }
  return 0;
}

}  // namespace

Runner add_probe_command(CLI::App& app) {
  auto args = std::make_shared<ProbeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "probe",
      "Linear probes of a checkpoint's vision tower: shape, colour, size and place of single-object world scenes");
  cmd->add_option("--model", args->model, "Hugging Face model directory")->required();
  cmd->add_option("--train-images", args->options.train_images, "Scenes the probes train on")->capture_default_str();
  cmd->add_option("--test-images", args->options.test_images, "Held-out scenes (seed + 1000000) they are scored on")
      ->capture_default_str();
  cmd->add_option("--seed", args->options.seed, "Seed of the training scenes")->capture_default_str();
  cmd->add_option("--shapes", args->shapes, "Comma list of the object classes drawn")->capture_default_str();
  cmd->add_option("--steps", args->options.steps, "Full-batch Adam steps per probe")->capture_default_str();
  cmd->add_option("--threads", args->threads, "Threads (0: all cores)")->capture_default_str();
  cmd->add_flag("--json", args->json, "JSON on stdout instead of a table");
  return [args] { return probe(*args); };
}

}  // namespace pg::cli
