// `paligemma bench`: the phases of one request timed apart, repeated, on a real image:
// image encoding (the tower + projector, never from the feature cache), prefill of the whole
// prompt, time to first token, greedy decoding (tokens/s over --new-tokens steps past any
// <eos>), and the process's peak resident memory next to what the request should need
// (mapped weights + KV cache + activations, paligemma info's estimate).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "generate/sampler.h"
#include "paligemma/backend.h"
#include "paligemma/error.h"
#include "paligemma/image.h"
#include "paligemma/model_info.h"
#include "paligemma/profile.h"

namespace pg::cli {
namespace {

struct BenchArgs {
  ModelFlags model;
  std::string image;
  std::string prompt = "caption en";
  int new_tokens = 16;
  int repeats = 3;
  int warmup = 1;
  bool json = false;
};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Sample {
  double image_s, prefill_s, first_token_s, decode_s;
  int decoded;
};

Sample one_request(const Model& model, const std::vector<float>& pixels, const std::vector<int>& ids,
                   int new_tokens) {
  Sample s{};
  const int V = model.vocab_size();
  auto t0 = Clock::now();
  std::vector<float> features = model.encode_image(pixels.data());
  s.image_s = since(t0);

  const int L = static_cast<int>(ids.size());
  KVCache cache = model.new_cache(L + new_tokens, L);
  std::vector<float> logits(V);
  t0 = Clock::now();
  std::vector<DecoderStep> steps(1);
  steps[0] = {&cache, ids.data(), L, features.data(), model.config().image_tokens_per_image(), logits.data(), false};
  model.decode(steps);
  int token = argmax(logits.data(), V);
  s.prefill_s = since(t0);
  s.first_token_s = s.image_s + s.prefill_s;

  t0 = Clock::now();
  for (int i = 0; i < new_tokens; ++i) {
    steps[0] = {&cache, &token, 1, nullptr, 0, logits.data(), false};
    model.decode(steps);
    token = argmax(logits.data(), V);
  }
  s.decode_s = since(t0);
  s.decoded = new_tokens;
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int64_t peak_rss_bytes() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

int bench(const BenchArgs& a) {
  if (a.image.empty()) throw Error("bench needs --image");
  if (a.repeats < 1 || a.repeats > 1000) throw Error("--repeats must be between 1 and 1000");
  if (a.warmup < 0 || a.warmup > 100) throw Error("--warmup must be between 0 and 100");
  if (a.new_tokens < 1 || a.new_tokens > 4096) throw Error("--new-tokens must be between 1 and 4096");
  Image img = load_image(a.image);
  auto t0 = Clock::now();
  auto model = load_model_with_progress(a.model);
  const double load_s = since(t0);
  const ModelConfig& c = model->config();
  std::vector<float> pixels = preprocess_image(img, c.vision.image_size, ResizeFilter::PilBicubic);
  std::vector<int> ids = build_prompt(model->tokenizer(), c, a.prompt, 1);
  const int total = a.warmup + a.repeats;
  std::vector<double> image, prefill, ttft, decode_tps;
  for (int r = 0; r < total; ++r) {
    const bool warm = r < a.warmup;
    if (!warm && r == a.warmup) profile::reset();
    Sample s = one_request(*model, pixels, ids, a.new_tokens);
    if (!a.model.quiet) {
      std::fprintf(stderr, "%s %d/%d: image %.3f s, prefill %.3f s (%.1f tokens/s), first token %.3f s, decode %.2f tokens/s\n",
                   warm ? "warm-up" : "run", warm ? r + 1 : r - a.warmup + 1, warm ? a.warmup : a.repeats, s.image_s,
                   s.prefill_s, ids.size() / s.prefill_s, s.first_token_s, s.decoded / s.decode_s);
    }
    if (warm) continue;
    image.push_back(s.image_s);
    prefill.push_back(s.prefill_s);
    ttft.push_back(s.first_token_s);
    decode_tps.push_back(s.decoded / s.decode_s);
  }
  const ParameterCounts p = count_parameters(model->checkpoint());
  const MemoryEstimate m = estimate_memory(c, p.weight_bytes, 1, static_cast<int>(ids.size()) - c.image_tokens_per_image(),
                                           a.new_tokens, model->options().kv_cache);
  const int64_t rss = peak_rss_bytes();
  const int L = static_cast<int>(ids.size());
  nlohmann::json j;
  j["model_dir"] = model->dir();
  j["kernels"] = kernel_path_name(kernel_path());
  j["precision"] = precision_name(precision());
  j["threads"] = threads();
  j["cpu"] = cpu_features_string();
  j["weights"] = {{"vision", weight_formats(model->checkpoint()).vision},
                  {"text", weight_formats(model->checkpoint()).text},
                  {"embedding", weight_formats(model->checkpoint()).embedding}};
  j["kv_cache"] = dtype_name(model->options().kv_cache);
  j["prompt_tokens"] = L;
  j["new_tokens"] = a.new_tokens;
  j["repeats"] = a.repeats;
  j["load_s"] = load_s;
  auto stat = [](const std::vector<double>& v) {
    return nlohmann::json{{"median", median(v)}, {"best", *std::min_element(v.begin(), v.end())}};
  };
  auto stat_max = [](const std::vector<double>& v) {
    return nlohmann::json{{"median", median(v)}, {"best", *std::max_element(v.begin(), v.end())}};
  };
  j["image_encode_s"] = stat(image);
  j["prefill_s"] = stat(prefill);
  std::vector<double> prefill_tps;
  for (double s : prefill) prefill_tps.push_back(L / s);
  j["prefill_tokens_per_s"] = stat_max(prefill_tps);
  j["time_to_first_token_s"] = stat(ttft);
  j["decode_tokens_per_s"] = stat_max(decode_tps);
  j["memory"] = {{"peak_rss_bytes", rss},
                 {"weights_bytes", m.weight_bytes},
                 {"kv_cache_bytes", m.kv_cache_bytes},
                 {"activation_bytes", m.activation_bytes},
                 {"expected_bytes", m.total()},
                 {"peak_rss_over_expected", m.total() > 0 ? static_cast<double>(rss) / m.total() : 0.0}};
  if (a.json) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("model        %s (%s kernels, %s precision, %d threads)\n", model->dir().c_str(),
                kernel_path_name(kernel_path()), precision_name(precision()), threads());
    std::printf("prompt       %d tokens, %d new tokens, %d repeats (median / best)\n", L, a.new_tokens, a.repeats);
    std::printf("image        %.3f / %.3f s\n", median(image), *std::min_element(image.begin(), image.end()));
    std::printf("prefill      %.3f / %.3f s (%.1f tokens/s)\n", median(prefill),
                *std::min_element(prefill.begin(), prefill.end()), L / median(prefill));
    std::printf("first token  %.3f / %.3f s\n", median(ttft), *std::min_element(ttft.begin(), ttft.end()));
    std::printf("decode       %.2f / %.2f tokens/s\n", median(decode_tps),
                *std::max_element(decode_tps.begin(), decode_tps.end()));
    std::printf("peak RSS     %.2f GiB (expected %.2f GiB: weights %.2f + KV %.3f + activations %.3f)\n",
                rss / 1073741824.0, m.total() / 1073741824.0, m.weight_bytes / 1073741824.0,
                m.kv_cache_bytes / 1073741824.0, m.activation_bytes / 1073741824.0);
  }
  if (profile::enabled()) std::cerr << profile::report();
  return 0;
}

}  // namespace

Runner add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Time image encoding, prefill, first token and decoding");
  add_model_flags(*cmd, args->model);
  cmd->add_option("--image", args->image, "Image file")->required();
  cmd->add_option("--prompt", args->prompt, "Prompt prefix")->capture_default_str();
  cmd->add_option("--new-tokens", args->new_tokens, "Greedy steps to time (past <eos>)")->capture_default_str();
  cmd->add_option("--repeats", args->repeats, "Timed repetitions")->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "Untimed repetitions first (page in the weights)")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print the results as JSON");
  return [args] { return bench(*args); };
}

}  // namespace pg::cli
