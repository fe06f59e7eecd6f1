#pragma once
// Subcommands of the `paligemma` tool. Each registers its options on the CLI11 app and
// returns the function that runs it.
#include <CLI/CLI.hpp>
#include <functional>

namespace pg::cli {

using Runner = std::function<int()>;

Runner add_run_command(CLI::App& app);
Runner add_info_command(CLI::App& app);
Runner add_parse_command(CLI::App& app);
Runner add_quantize_command(CLI::App& app);
Runner add_bench_command(CLI::App& app);
Runner add_compare_command(CLI::App& app);
Runner add_finetune_command(CLI::App& app);
Runner add_world_command(CLI::App& app);
Runner add_eval_command(CLI::App& app);
Runner add_tokenizer_command(CLI::App& app);
Runner add_init_command(CLI::App& app);
Runner add_resolution_command(CLI::App& app);
Runner add_pretrain_command(CLI::App& app);
Runner add_vae_train_command(CLI::App& app);
Runner add_plot_command(CLI::App& app);
Runner add_probe_command(CLI::App& app);

}  // namespace pg::cli
