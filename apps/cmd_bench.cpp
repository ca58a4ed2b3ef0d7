// ewa bench: performance measurements (results recorded in docs/benchmarks.md).
#include <fstream>

#include "apps/commands.h"
#include "bench/train_step.h"
#include "common/error.h"
#include "common/runtime.h"

namespace ewa::app {

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  struct Args {
    std::string config = "configs/fmnist_vit_ewa.json";
    std::vector<std::string> set;
    bench::TrainStepOptions options;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = bench->add_subcommand("train-step",
                                    "ms per training step of one ViT with dense MLPs, RupMoE + EWA and RoutedMoE, interleaved in one run");
  cmd->add_option("-c,--config", args->config, "Config that defines the model")->capture_default_str();
  cmd->add_option("--set", args->set, "Override a config key (repeatable)");
  cmd->add_option("--batch-size", args->options.batch_size, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", args->options.warmup, "Untimed steps per variant")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--steps", args->options.steps, "Timed steps per variant and round")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--rounds", args->options.rounds, "Rounds (variants alternate within a round)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->callback([args] {
    Config cfg = load_config(args->config, args->set);
    const bool cifar = cfg.data.dataset.rfind("cifar", 0) == 0;
    if (cfg.model.img_size == 0) cfg.model.img_size = cifar ? 32 : 28;
    if (cfg.model.in_chans == 0) cfg.model.in_chans = cifar ? 3 : 1;
    if (cfg.model.num_classes == 0) cfg.model.num_classes = cfg.data.dataset == "cifar100" ? 100 : 10;
    if (cfg.moe.blocks.empty())  // a dense base config: put the MoE variants in every other block
      for (int64_t i = 1; i < cfg.model.depth; i += 2) cfg.moe.blocks.push_back(i);
    if (cfg.train.threads > 0) init_threads(static_cast<int>(cfg.train.threads));
    char head[256];
    std::snprintf(head, sizeof head, "train-step: %s, D=%lld depth=%lld, %zu MoE blocks of N=%lld, batch %lld, %d threads",
                  args->config.c_str(), (long long)cfg.model.embed_dim, (long long)cfg.model.depth, cfg.moe.blocks.size(),
                  (long long)cfg.moe.num_experts, (long long)args->options.batch_size, at::get_num_threads());
    print_line(head);
    auto rows = bench::bench_train_step(cfg, args->options);
    print_line(bench::train_step_markdown(rows));
  });
}

}  // namespace ewa::app
