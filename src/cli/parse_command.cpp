// `paligemma parse`: turn a PaliGemma answer produced elsewhere (transformers, vLLM, a log)
// into objects with boxes in the original image's pixels, without loading a model.
#include <iostream>

#include "cli/commands.h"
#include "cli/objects_json.h"
#include "paligemma/error.h"
#include "paligemma/image.h"

namespace pg::cli {
namespace {

struct ParseArgs {
  std::string image;
  int width = 0, height = 0;
  std::string text;
  std::string bins = "demo";
  std::string vae, annotate, masks;
};

int parse(const ParseArgs& a) {
  int w = a.width, h = a.height;
  Image img;
  if (!a.image.empty()) {
    if (w || h) throw Error("use either --image or --width/--height, not both");
    img = load_image(a.image);
    w = img.width;
    h = img.height;
  }
  if (w <= 0 || h <= 0) throw Error("give --image, or --width and --height (> 0), for the original image size");
  if (static_cast<int64_t>(w) * h > kMaxImagePixels)
    throw Error("--width x --height is " + std::to_string(static_cast<int64_t>(w) * h) + " pixels, more than the " +
                std::to_string(kMaxImagePixels) + " an image may have");
  if (a.image.empty() && !a.annotate.empty()) throw Error("--annotate needs --image");
  auto codec = load_codec(a.vae, "");
  DetectedObjects out = detect_objects(parse_answer(a.text, w, h, ParseOptions{parse_bins(a.bins), {}}), codec.get(), w, h);
  write_visual_outputs(out, img, a.annotate, a.masks);
  nlohmann::json j = objects_json(out);
  j["image_size"] = {w, h};
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}

}  // namespace

Runner add_parse_command(CLI::App& app) {
  auto args = std::make_shared<ParseArgs>();
  CLI::App* cmd = app.add_subcommand("parse", "Parse a detect/segment answer into boxes (no model needed), as JSON");
  cmd->add_option("--image", args->image, "The original image (only its size is used)");
  cmd->add_option("--width", args->width, "Original image width, instead of --image");
  cmd->add_option("--height", args->height, "Original image height, instead of --image");
  cmd->add_option("--text", args->text, "The answer, e.g. \"<loc0100><loc0200><loc0800><loc0900> cat\"")->required();
  cmd->add_option("--bins", args->bins, "demo: bin / 1024 * size (Google's demo); bigvision: bin / 1023 * size")
      ->capture_default_str();
  cmd->add_option("--vae", args->vae, "big_vision's vae-oid.npz, to decode <seg> codes into masks");
  cmd->add_option("--annotate", args->annotate, "Write the image with boxes, labels and masks to this PNG");
  cmd->add_option("--masks", args->masks, "Write one PNG per decoded mask into this directory");
  return [args] { return parse(*args); };
}

}  // namespace pg::cli
