// paligemma: command-line front end of the library. Errors are reported as one line on
// stderr ("error: ...") with a non-zero exit code; nothing aborts.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <new>

#include "cli/commands.h"
#include "paligemma/error.h"

int main(int argc, char** argv) {
  // Training alternates parallel regions with serial work (norms, the LoRA paths, the loss).
  // libgomp's default lets an idle worker spin for 300k iterations after each region, which on
  // this machine's vCPUs (likely hyperthread siblings) slows the thread doing that work:
  // PaliGemma 2 3B LoRA, 10.1 s per step by default, 7.8 s with 10k iterations, 7.6 s with
  // none (OMP_WAIT_POLICY=passive); but no spinning at all makes the tiny models' many short
  // regions 2.5x slower (0.068 -> 0.17 s per step), and 10k keeps them at 0.068. libgomp reads
  // its settings when it loads, before main, so the process re-executes itself once with
  // GOMP_SPINCOUNT set; a user's own OMP_WAIT_POLICY / GOMP_SPINCOUNT is kept.
  if (argc > 1 && (std::strcmp(argv[1], "finetune") == 0 || std::strcmp(argv[1], "pretrain-vision") == 0) &&
      std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    ::setenv("GOMP_SPINCOUNT", "10000", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: then go on as we are
  }
  CLI::App app{"paligemma.cpp: PaliGemma and PaliGemma 2 inference and fine-tuning in C++"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("paligemma.cpp 0.1.0"));
  pg::cli::Runner run = pg::cli::add_run_command(app);
  pg::cli::Runner info = pg::cli::add_info_command(app);
  pg::cli::Runner parse = pg::cli::add_parse_command(app);
  pg::cli::Runner quantize = pg::cli::add_quantize_command(app);
  pg::cli::Runner bench = pg::cli::add_bench_command(app);
  pg::cli::Runner compare = pg::cli::add_compare_command(app);
  pg::cli::Runner finetune = pg::cli::add_finetune_command(app);
  pg::cli::Runner world = pg::cli::add_world_command(app);
  pg::cli::Runner eval = pg::cli::add_eval_command(app);
  pg::cli::Runner tokenizer = pg::cli::add_tokenizer_command(app);
  pg::cli::Runner init = pg::cli::add_init_command(app);
  pg::cli::Runner resolution = pg::cli::add_resolution_command(app);
  pg::cli::Runner pretrain = pg::cli::add_pretrain_command(app);
  pg::cli::Runner vae_train = pg::cli::add_vae_train_command(app);
  pg::cli::Runner plot = pg::cli::add_plot_command(app);
  pg::cli::Runner probe = pg::cli::add_probe_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.got_subcommand("run")) return run();
    if (app.got_subcommand("info")) return info();
    if (app.got_subcommand("parse")) return parse();
    if (app.got_subcommand("quantize")) return quantize();
    if (app.got_subcommand("bench")) return bench();
    if (app.got_subcommand("compare")) return compare();
    if (app.got_subcommand("finetune")) return finetune();
    if (app.got_subcommand("world")) return world();
    if (app.got_subcommand("eval")) return eval();
    if (app.got_subcommand("tokenizer")) return tokenizer();
    if (app.got_subcommand("init")) return init();
    if (app.got_subcommand("resolution")) return resolution();
    if (app.got_subcommand("pretrain-vision")) return pretrain();
    if (app.got_subcommand("vae-train")) return vae_train();
    if (app.got_subcommand("plot")) return plot();
    if (app.got_subcommand("probe")) return probe();
  } catch (const pg::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 1;
}
