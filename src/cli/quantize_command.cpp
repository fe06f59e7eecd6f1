// `paligemma quantize`: writes an int8 / q4 copy of a checkpoint (docs/QUANTIZATION.md) that
// `paligemma run --model OUT` loads directly.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "paligemma/error.h"
#include "paligemma/quantize.h"

namespace pg::cli {
namespace {

struct QuantizeArgs {
  std::string model, out, type, vision_type, embedding_type;
  bool force = false, quiet = false;
  int threads = 0;
  double shard_gb = 4.0;
};

std::string human(uint64_t bytes) {
  char buf[64];
  if (bytes >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  else std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

int quantize(const QuantizeArgs& a) {
  QuantizeOptions o;
  o.text = parse_quant_type(a.type, "--type");
  o.vision = a.vision_type.empty() ? o.text : parse_quant_type(a.vision_type, "--vision-type");
  o.embedding = a.embedding_type.empty() ? o.text : parse_quant_type(a.embedding_type, "--embedding-type");
  o.force = a.force;
  o.threads = a.threads;
  if (!(a.shard_gb > 0) || a.shard_gb > 1e6) throw Error("--shard-size must be a positive number of GB");
  o.max_shard_bytes = static_cast<uint64_t>(a.shard_gb * 1e9);
  if (o.max_shard_bytes == 0) o.max_shard_bytes = 1;
  if (a.threads < 0) throw Error("--threads must be >= 0");

  QuantizeProgressFn progress;
  bool tty = false;
  if (!a.quiet) {
    tty = isatty(fileno(stderr));
    progress = [tty, last = -1.0](const QuantizeProgress& p) mutable {
      if (!p.finished && p.seconds - last < 0.5 && p.tensor_index != p.tensor_count) return;
      last = p.seconds;
      const double rate = p.seconds > 0 ? p.bytes_done / p.seconds : 0;
      const double eta = rate > 0 ? (p.bytes_total - p.bytes_done) / rate : 0;
      std::fprintf(stderr, "%squantize: tensor %zu/%zu, %s / %s, %.1f MB/s, ETA %.0f s%s%s", tty ? "\r\033[K" : "",
                   p.tensor_index, p.tensor_count, human(p.bytes_done).c_str(), human(p.bytes_total).c_str(),
                   rate / 1e6, eta, p.tensor.empty() ? "" : "  ", p.tensor.c_str());
      if (!tty || p.finished) std::fputc('\n', stderr);
    };
  }
  const QuantizeSummary s = quantize_checkpoint(a.model, a.out, o, progress);
  if (!a.quiet) {
    std::fprintf(stderr, "quantize: wrote %s in %d file%s to %s (source %s) in %.1f s:", human(s.total_bytes).c_str(),
                 s.shards, s.shards == 1 ? "" : "s", s.out_dir.c_str(), human(s.source_bytes).c_str(), s.seconds);
    for (const auto& [type, n] : s.tensors) {
      auto it = s.bytes.find(type);
      std::fprintf(stderr, " %s %lld (%s)", type.c_str(), static_cast<long long>(n),
                   human(it == s.bytes.end() ? 0 : it->second).c_str());
    }
    std::fprintf(stderr, "\n");
  }
  return 0;
}

}  // namespace

Runner add_quantize_command(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Write an int8 / q4 copy of a checkpoint that `paligemma run` loads (docs/QUANTIZATION.md)");
  cmd->add_option("--model", args->model, "Source Hugging Face model directory")->required();
  cmd->add_option("--type", args->type, "Decoder linears: int8, q4, or bf16 (keep as stored)")->required();
  cmd->add_option("--vision-type", args->vision_type,
                  "Vision tower linears and projector: int8, q4 or bf16 (default: --type)");
  cmd->add_option("--embedding-type", args->embedding_type,
                  "Token embedding / tied output layer (and a stored lm_head): int8, q4 or bf16 (default: --type)");
  cmd->add_option("--out", args->out, "Output directory (must be empty or absent unless --force)")->required();
  cmd->add_flag("--force", args->force, "Write into a non-empty output directory, replacing an earlier output");
  cmd->add_option("--threads", args->threads, "Threads for quantising (0: all cores)")->capture_default_str();
  cmd->add_option("--shard-size", args->shard_gb, "Largest safetensors shard, in GB")->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress on stderr");
  return [args] { return quantize(*args); };
}

}  // namespace pg::cli
