// `paligemma compare`: next-token agreement of a model with a reference (a quantised
// checkpoint against its source, one kernel path or precision against another): top-1
// agreement and KL(reference || model) at every answer position, teacher-forced on the
// reference's greedy answer, for each image x prompt.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "paligemma/agreement.h"
#include "paligemma/error.h"
#include "paligemma/image.h"

namespace pg::cli {
namespace {

struct CompareArgs {
  ModelFlags model;
  std::string reference;
  std::vector<std::string> images;
  std::vector<std::string> prompts{"caption en"};
  int new_tokens = 16;
  bool json = false;
};

int compare(const CompareArgs& a) {
  if (a.images.empty()) throw Error("compare needs at least one --image");
  if (a.new_tokens < 1 || a.new_tokens > 4096) throw Error("--new-tokens must be between 1 and 4096");
  std::vector<Image> images;
  for (const auto& path : a.images) images.push_back(load_image(path));
  auto model = load_model_with_progress(a.model);
  ModelFlags ref_flags = a.model;
  ref_flags.dir = a.reference;
  auto reference = load_model_with_progress(ref_flags);
  const int S = model->config().vision.image_size;
  if (reference->config().vision.image_size != S)
    throw Error("the models take different image sizes: " + std::to_string(S) + " and " +
                std::to_string(reference->config().vision.image_size));
  DistributionAgreement total;
  nlohmann::json cases = nlohmann::json::array();
  for (size_t i = 0; i < images.size(); ++i) {
    const std::vector<float> px = preprocess_image(images[i], S, ResizeFilter::PilBicubic);
    for (const auto& prompt : a.prompts) {
      DistributionAgreement d = compare_models(*reference, *model, px, prompt, a.new_tokens);
      total.merge(d);
      cases.push_back({{"image", a.images[i]}, {"prompt", prompt}, {"positions", d.positions},
                       {"top1_agreement", d.top1_rate()}, {"mean_kl", d.mean_kl()}, {"max_kl", d.max_kl}});
      if (!a.model.quiet)
        std::fprintf(stderr, "%s | %s: top-1 %d/%d, KL mean %.4g max %.4g\n", a.images[i].c_str(), prompt.c_str(),
                     d.top1_agree, d.positions, d.mean_kl(), d.max_kl);
    }
  }
  nlohmann::json j = {{"model", a.model.dir},
                      {"reference", a.reference},
                      {"new_tokens", a.new_tokens},
                      {"positions", total.positions},
                      {"top1_agreement", total.top1_rate()},
                      {"mean_kl", total.mean_kl()},
                      {"max_kl", total.max_kl},
                      {"cases", cases}};
  if (a.json)
    std::cout << j.dump(2) << "\n";
  else
    std::printf("top-1 agreement %.1f%% (%d/%d positions), KL mean %.4g, max %.4g\n", 100.0 * total.top1_rate(),
                total.top1_agree, total.positions, total.mean_kl(), total.max_kl);
  return 0;
}

}  // namespace

Runner add_compare_command(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand("compare", "Next-token agreement (top-1, KL) of --model with --reference");
  add_model_flags(*cmd, args->model);
  cmd->add_option("--reference", args->reference, "The reference model directory (e.g. the unquantised source)")
      ->required();
  cmd->add_option("--image", args->images, "Image file (repeatable)")->required();
  cmd->add_option("--prompt", args->prompts, "Prompt prefix (repeatable)")->capture_default_str();
  cmd->add_option("--new-tokens", args->new_tokens, "Answer positions compared per request")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print the results as JSON");
  return [args] { return compare(*args); };
}

}  // namespace pg::cli
