// ewa bench: performance measurements (results recorded in docs/benchmarks.md).
#include <ctime>
#include <fstream>

#include <torch/version.h>

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
    std::string record;
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
  cmd->add_option("--record", args->record,
                  "Also append the table, the exact command and the machine to this Markdown file (docs/benchmarks.md)");
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
    const std::string table = bench::train_step_markdown(rows);
    print_line(table);
    if (!args->record.empty()) {
      std::string command = "ewa bench train-step --config " + args->config;
      for (const auto& o : args->set) command += " --set " + o;
      const auto& o = args->options;
      command += " --batch-size " + std::to_string(o.batch_size) + " --warmup " + std::to_string(o.warmup) + " --steps " +
                 std::to_string(o.steps) + " --rounds " + std::to_string(o.rounds);
      std::string cpu = "unknown CPU";
      std::ifstream info("/proc/cpuinfo");
      for (std::string line; std::getline(info, line);)
        if (line.rfind("model name", 0) == 0) {
          cpu = line.substr(line.find(':') + 2);
          break;
        }
      char date[32];
      const std::time_t now = std::time(nullptr);
      std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
      std::ofstream out(args->record, std::ios::app);
      if (!out) fail("--record " + args->record + ": cannot open for appending");
      out << "\n### train-step, " << date << "\n\n`" << command << "`\n\n" << head << "; " << cpu << ", LibTorch "
          << TORCH_VERSION << "\n\n" << table;
      if (!out) fail("--record " + args->record + ": write failed");
    }
  });
}

}  // namespace ewa::app
