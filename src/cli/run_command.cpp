// `paligemma run`: one request from the command line, or a batch from a JSONL file.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "cli/objects_json.h"
#include "paligemma/structured.h"
#include "paligemma/error.h"
#include "paligemma/profile.h"
#include "paligemma/generate.h"
#include "paligemma/image.h"
#include "paligemma/model.h"
#include "paligemma/npy.h"

namespace pg::cli {
namespace {

struct RunArgs {
  ModelFlags model;
  std::vector<std::string> images;
  std::string prompt;
  std::string batch_file;
  std::string mode = "greedy";
  GenerationOptions gen;
  std::string resize = "bicubic";
  bool json = false;
  std::string dump_dir;
  std::string bins = "demo";
  std::string vae, annotate, masks;
};

struct Job {
  std::vector<std::string> images;
  std::string prompt;
};

std::vector<Job> read_batch(const std::string& path) {
  if (std::filesystem::is_directory(path)) throw Error("batch file " + path + " is a directory");
  std::ifstream in(path);
  if (!in) throw Error("cannot open batch file " + path);
  const std::filesystem::path base = std::filesystem::path(path).parent_path();
  std::vector<Job> jobs;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + " line " + std::to_string(number);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + ": not valid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      throw Error(where + ": needs a string field \"prompt\"");
    Job job;
    job.prompt = j["prompt"].get<std::string>();
    auto add_image = [&](const nlohmann::json& v) {
      if (!v.is_string()) throw Error(where + ": \"image\" must be a path or a list of paths");
      std::filesystem::path p = v.get<std::string>();
      job.images.push_back(p.is_absolute() ? p.string() : (base / p).string());
    };
    if (j.contains("image")) {
      if (j["image"].is_array())
        for (const auto& v : j["image"]) add_image(v);
      else
        add_image(j["image"]);
    }
    jobs.push_back(std::move(job));
  }
  if (jobs.empty()) throw Error("batch file " + path + " has no requests");
  return jobs;
}

void dump(const std::string& dir, const Model& model, const Request& req, const Result& res) {
  std::filesystem::create_directories(dir);
  const int S = model.config().vision.image_size;
  const int64_t n_img = static_cast<int64_t>(req.pixels.size());
  std::vector<float> pixels;
  for (const auto& p : req.pixels) pixels.insert(pixels.end(), p.begin(), p.end());
  write_npy(dir + "/pixel_values.npy", pixels.data(), {n_img, 3, S, S});
  const int64_t H = model.config().text.hidden_size;
  write_npy(dir + "/image_features.npy", res.image_features.data(),
            {static_cast<int64_t>(res.image_features.size()) / H, H});
  std::vector<int64_t> ids(res.prompt_ids.begin(), res.prompt_ids.end());
  write_npy(dir + "/input_ids.npy", ids.data(), {static_cast<int64_t>(ids.size())});
  std::vector<int64_t> gen(res.tokens.begin(), res.tokens.end());
  write_npy(dir + "/generated_ids.npy", gen.data(), {static_cast<int64_t>(gen.size())});
  write_npy(dir + "/step_logits.npy", res.step_logits.data(),
            {static_cast<int64_t>(res.tokens.size()), static_cast<int64_t>(model.vocab_size())});
}

nlohmann::json result_json(const Model& model, const Result& r, double load_s, const DetectedObjects* objects) {
  nlohmann::json j;
  j["text"] = r.text;
  j["tokens"] = r.tokens;
  std::vector<std::string> pieces;
  for (int t : r.tokens) pieces.push_back(model.tokenizer().piece(t));
  j["token_pieces"] = pieces;
  j["logprobs"] = r.logprobs;
  j["score"] = r.score;
  j["stop_reason"] = r.stop_reason;
  j["prompt_tokens"] = r.prompt_ids.size();
  if (objects) {
    nlohmann::json o = objects_json(*objects);
    j["objects"] = o["objects"];
    j["skipped"] = o["skipped"];
  }
  const Timings& t = r.timings;
  j["timings"] = {
      {"load_s", load_s},
      {"image_encode_s", t.image_encode_s},
      {"prefill_s", t.prefill_s},
      {"decode_s", t.decode_s},
      {"time_to_first_token_s", t.image_encode_s + t.prefill_s},
      {"images_encoded", t.images_encoded},
      {"images_from_cache", t.images_from_cache},
      {"batch_prompt_tokens", t.prompt_tokens},
      {"batch_generated_tokens", t.generated_tokens},
      {"prefill_tokens_per_s", t.prefill_s > 0 ? t.prompt_tokens / t.prefill_s : 0.0},
      {"decode_tokens_per_s", t.decode_s > 0 ? t.generated_tokens / t.decode_s : 0.0},
  };
  return j;
}

int run(const RunArgs& a) {
  std::vector<Job> jobs;
  if (!a.batch_file.empty()) {
    if (!a.prompt.empty() || !a.images.empty()) throw Error("use either --batch or --image/--prompt, not both");
    jobs = read_batch(a.batch_file);
  } else {
    if (a.prompt.empty()) throw Error("prompt is empty: give --prompt, e.g. --prompt \"caption en\"");
    jobs.push_back({a.images, a.prompt});
  }
  GenerationOptions gen = a.gen;
  if (a.mode == "greedy") gen.mode = DecodingMode::Greedy;
  else if (a.mode == "sample") gen.mode = DecodingMode::Sample;
  else if (a.mode == "beam") gen.mode = DecodingMode::Beam;
  else throw Error("--mode must be greedy, sample or beam, not '" + a.mode + "'");
  ResizeFilter filter;
  if (a.resize == "bicubic") filter = ResizeFilter::PilBicubic;
  else if (a.resize == "bilinear") filter = ResizeFilter::BigVisionBilinear;
  else throw Error("--resize must be bicubic or bilinear, not '" + a.resize + "'");
  gen.keep_step_logits = !a.dump_dir.empty();
  if (gen.max_new_tokens < 0) throw Error("--max-new-tokens must be >= 0");
  if (gen.max_context < 0) throw Error("--max-context must be >= 0 (0: the model's max_position_embeddings)");
  if (!a.dump_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(a.dump_dir, ec);
    if (ec || !std::filesystem::is_directory(a.dump_dir))
      throw Error("--dump: cannot create directory " + a.dump_dir + (ec ? ": " + ec.message() : ""));
  }
  // Decode every image before loading the model, so a bad file fails fast.
  std::vector<std::vector<Image>> images;
  for (const Job& job : jobs) {
    images.emplace_back();
    for (const auto& path : job.images) images.back().push_back(load_image(path));
  }

  auto codec = load_codec(a.vae, a.model.dir);  // a bad --vae fails before any model work

  auto t0 = std::chrono::steady_clock::now();
  auto model = load_model_with_progress(a.model);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::vector<Request> requests;
  const int S = model->config().vision.image_size;
  for (size_t j = 0; j < jobs.size(); ++j) {
    Request req;
    req.prompt = jobs[j].prompt;
    for (const Image& img : images[j]) req.pixels.push_back(preprocess_image(img, S, filter));
    requests.push_back(std::move(req));
  }
  std::vector<Result> results = generate(*model, requests, gen);

  if (!a.dump_dir.empty()) {
    for (size_t i = 0; i < results.size(); ++i)
      dump(results.size() == 1 ? a.dump_dir : a.dump_dir + "/request_" + std::to_string(i), *model, requests[i],
           results[i]);
  }
  // Boxes (and masks) when an answer has <loc> tokens, in the pixels of its first image.
  const Bins bins = parse_bins(a.bins);
  std::vector<std::optional<DetectedObjects>> structured(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    const bool wanted = a.json || !a.annotate.empty() || !a.masks.empty();
    if (!wanted || images[i].empty() || results[i].text.find("<loc") == std::string::npos) continue;
    const Image& img = images[i][0];
    structured[i] = detect_objects(results[i], model->tokenizer(), codec.get(), img.width, img.height, bins);
  }
  if (!a.annotate.empty() || !a.masks.empty()) {
    if (results.size() != 1 || images[0].empty()) throw Error("--annotate and --masks need one request with an image");
    DetectedObjects none;
    write_visual_outputs(structured[0] ? *structured[0] : none, images[0][0], a.annotate, a.masks);
  }
  auto objects_of = [&](size_t i) { return structured[i] ? &*structured[i] : nullptr; };
  if (a.json) {
    if (results.size() == 1) {
      std::cout << result_json(*model, results[0], load_s, objects_of(0)).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      nlohmann::json arr = nlohmann::json::array();
      for (size_t i = 0; i < results.size(); ++i) arr.push_back(result_json(*model, results[i], load_s, objects_of(i)));
      std::cout << arr.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
  } else {
    for (const auto& r : results) std::cout << r.text << "\n";
  }
  if (profile::enabled()) std::cerr << profile::report();
  return 0;
}

}  // namespace

Runner add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Answer a prompt about one or more images");
  add_model_flags(*cmd, args->model);
  cmd->add_option("--image", args->images, "Image file (repeat for several images in one prompt)");
  cmd->add_option("--prompt", args->prompt, "Task prefix, e.g. \"caption en\", \"answer en what is this?\", \"detect cat\"");
  cmd->add_option("--batch", args->batch_file,
                  "JSONL file of requests {\"image\": path or [paths], \"prompt\": text}; paths relative to the file");
  cmd->add_option("--mode", args->mode, "Decoding: greedy, sample or beam")->capture_default_str();
  cmd->add_option("--max-new-tokens", args->gen.max_new_tokens, "Most tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", args->gen.temperature, "Sampling temperature")->capture_default_str();
  cmd->add_option("--top-k", args->gen.top_k, "Sample from the k most likely tokens (0: all)")->capture_default_str();
  cmd->add_option("--top-p", args->gen.top_p, "Nucleus sampling mass (1: off)")->capture_default_str();
  cmd->add_option("--seed", args->gen.seed, "Sampling seed (request i of a batch uses seed + i)")->capture_default_str();
  cmd->add_option("--beams", args->gen.num_beams, "Beam width for --mode beam")->capture_default_str();
  cmd->add_option("--max-context", args->gen.max_context,
                  "Positions a sequence may fill (0: max_position_embeddings from config.json)");
  cmd->add_option("--batch-size", args->gen.batch_size, "Requests of a --batch decoded together")
      ->capture_default_str();
  cmd->add_flag("--no-eos-stop{false}", args->gen.stop_at_eos, "Keep generating past <eos>");
  cmd->add_option("--resize", args->resize, "Resize filter: bicubic (transformers/PIL) or bilinear (big_vision)")
      ->capture_default_str();
  cmd->add_flag("--json", args->json,
                "Print text, tokens, log-probs, timings, and for detect/segment answers the objects, as JSON");
  cmd->add_option("--vae", args->vae, "big_vision's vae-oid.npz, to decode the masks of segment answers (default: the model directory's vae-oid.npz, if any)");
  cmd->add_option("--annotate", args->annotate, "Write the image with boxes, labels and masks to this PNG");
  cmd->add_option("--masks", args->masks, "Write one PNG per decoded mask into this directory");
  cmd->add_option("--bins", args->bins, "Box convention: demo (bin / 1024 * size) or bigvision (bin / 1023 * size)")
      ->capture_default_str();
  cmd->add_option("--dump", args->dump_dir,
                  "Write pixel_values, image_features, input_ids, generated_ids and step_logits as .npy files");
  return [args] { return run(*args); };
}

}  // namespace pg::cli
