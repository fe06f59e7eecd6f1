// `paligemma info`: architecture, parameter counts, dtypes, memory needed.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "paligemma/error.h"
#include "paligemma/model_info.h"

namespace pg::cli {
namespace {

struct InfoArgs {
  ModelFlags model;
  int text_tokens = 32;
  int new_tokens = 64;
  int images = 1;
  bool json = false;
};

std::string gib(int64_t bytes) {
  char buf[64];
  if (bytes >= (1LL << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1LL << 30));
  else std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / double(1 << 20));
  return buf;
}

std::string count(int64_t n) {
  char buf[64];
  if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%.3f B", n / 1e9);
  else if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

int info(const InfoArgs& a) {
  if (a.images < 0 || a.images > 64) throw Error("--images must be between 0 and 64");
  if (a.text_tokens < 0 || a.text_tokens > (1 << 20)) throw Error("--text-tokens must be between 0 and 1048576");
  if (a.new_tokens < 0 || a.new_tokens > (1 << 20)) throw Error("--new-tokens must be between 0 and 1048576");
  ModelFlags flags = a.model;
  flags.quiet = true;
  auto model = load_model_with_progress(flags);
  const ModelConfig& c = model->config();
  const ParameterCounts p = count_parameters(model->checkpoint());
  const WeightFormats wf = weight_formats(model->checkpoint());
  const MemoryEstimate m = estimate_memory(c, p.weight_bytes, a.images, a.text_tokens, a.new_tokens,
                                           model->options().kv_cache);
  const auto& t = c.text;
  const auto& v = c.vision;
  const bool g2 = t.arch == TextArch::Gemma2;
  if (a.json) {
    nlohmann::json j;
    j["model_dir"] = model->dir();
    j["family"] = g2 ? "PaliGemma 2" : "PaliGemma 1";
    j["vision"] = {{"image_size", v.image_size}, {"patch_size", v.patch_size}, {"tokens", v.num_patches()},
                   {"hidden_size", v.hidden_size}, {"layers", v.num_layers}, {"heads", v.num_heads},
                   {"intermediate_size", v.intermediate_size}};
    j["text"] = {{"model_type", t.model_type}, {"hidden_size", t.hidden_size}, {"layers", t.num_layers},
                 {"heads", t.num_heads}, {"kv_heads", t.num_kv_heads}, {"head_dim", t.head_dim},
                 {"intermediate_size", t.intermediate_size}, {"vocab_size", t.vocab_size},
                 {"query_scale", t.query_scale()}, {"attn_logit_softcap", t.attn_logit_softcap},
                 {"final_logit_softcap", t.final_logit_softcap}, {"sliding_window", t.sliding_window}};
    j["parameters"] = {{"vision", p.vision}, {"projector", p.projector}, {"language", p.language},
                       {"other", p.other}, {"total", p.total()}, {"by_dtype", p.by_dtype}};
    j["weights"] = {{"vision", wf.vision}, {"text", wf.text}, {"embedding", wf.embedding},
                    {"total_bytes", wf.weight_bytes}, {"quantized_version", wf.quantized_version}};
    j["memory"] = {{"weights_bytes", m.weight_bytes}, {"kv_cache_bytes", m.kv_cache_bytes},
                   {"activation_bytes", m.activation_bytes}, {"total_bytes", m.total()},
                   {"request", {{"images", a.images}, {"text_tokens", a.text_tokens}, {"new_tokens", a.new_tokens}}}};
    j["files"] = model->checkpoint().file_count();
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << "model        " << model->dir() << " (" << model->checkpoint().file_count() << " safetensors file"
            << (model->checkpoint().file_count() == 1 ? "" : "s") << ")\n";
  std::cout << "family       " << (g2 ? "PaliGemma 2" : "PaliGemma 1") << ", " << v.image_size << " px\n";
  std::cout << "vision       SigLIP: " << v.num_layers << " layers, width " << v.hidden_size << ", " << v.num_heads
            << " heads, MLP " << v.intermediate_size << ", patch " << v.patch_size << " -> " << v.num_patches()
            << " tokens per image\n";
  std::cout << "projector    linear " << v.hidden_size << " -> " << c.projection_dim << "\n";
  std::cout << "language     " << t.model_type << ": " << t.num_layers << " layers, width " << t.hidden_size << ", "
            << t.num_heads << " q heads / " << t.num_kv_heads << " kv heads x " << t.head_dim << ", MLP "
            << t.intermediate_size << ", vocab " << t.vocab_size << "\n";
  if (g2)
    std::cout << "             query scale " << t.query_pre_attn_scalar << "^-0.5, attention soft-cap "
              << t.attn_logit_softcap << ", final soft-cap " << t.final_logit_softcap << ", sliding window "
              << t.sliding_window << "\n";
  std::cout << "parameters   " << count(p.total()) << " (vision " << count(p.vision) << ", projector "
            << count(p.projector) << ", language " << count(p.language) << ")\n";
  std::cout << "dtypes      ";
  for (const auto& [dt, n] : p.by_dtype) std::cout << " " << dt << ": " << count(n);
  std::cout << "\n";
  std::cout << "weights      vision " << wf.vision << ", text " << wf.text << ", embedding " << wf.embedding << ", "
            << gib(wf.weight_bytes) << " in total"
            << (wf.quantized_version ? " (paligemma.cpp quantized v" + std::to_string(wf.quantized_version) + ")" : "")
            << "\n";
  std::cout << "memory       weights " << gib(m.weight_bytes) << " (mapped) + KV cache " << gib(m.kv_cache_bytes)
            << " + activations " << gib(m.activation_bytes) << " = " << gib(m.total()) << "\n";
  std::cout << "             for " << a.images << " image(s), " << a.text_tokens << " prompt tokens, "
            << a.new_tokens << " new tokens\n";
  return 0;
}

}  // namespace

Runner add_info_command(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a checkpoint: architecture, parameters, dtypes, memory");
  add_model_flags(*cmd, args->model);
  cmd->add_option("--images", args->images, "Images per request for the memory estimate")->capture_default_str();
  cmd->add_option("--text-tokens", args->text_tokens, "Prompt text tokens for the memory estimate")->capture_default_str();
  cmd->add_option("--new-tokens", args->new_tokens, "Generated tokens for the memory estimate")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print as JSON");
  return [args] { return info(*args); };
}

}  // namespace pg::cli
