// ewa bench: performance measurements (results recorded in docs/benchmarks.md).
#include <ctime>
#include <fstream>

#include <torch/version.h>

#include "apps/commands.h"
#include "bench/input.h"
#include "bench/point_ops.h"
#include "bench/resample.h"
#include "bench/train_step.h"
#include "common/error.h"
#include "common/precision.h"
#include "common/runtime.h"
#include "config/datasets.h"
#include "config/model_kinds.h"
#include "datasets/registry.h"
#include "kernels/common/simd.h"
#include "train/setup.h"

namespace ewa::app {
namespace {

// Appends a dated section with the exact command, the machine and the table to `path`.
void record(const std::string& path, const std::string& title, const std::string& command, const std::string& header,
            const std::string& table) {
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  std::ofstream out(path, std::ios::app);
  if (!out) fail("--record " + path + ": cannot open for appending");
  out << "\n### " << title << ", " << date << "\n\n`" << command << "`\n\n" << header << "; " << cpu_model_name()
      << ", LibTorch " << TORCH_VERSION << "\n\n" << table;
  if (!out) fail("--record " + path + ": write failed");
}

void add_train_step_bench(CLI::App* bench) {
  struct Args {
    std::string config = "configs/fmnist_vit_ewa.json";
    std::vector<std::string> set;
    std::string record;
    bench::TrainStepOptions options;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = bench->add_subcommand("train-step",
                                    "ms per training step of one model (ViT, point classifier, point_mae pretraining, or Point-BERT's point_bert_dvae / point_bert stages) with dense "
                                    "MLPs, RupMoE + EWA and RoutedMoE, interleaved in one run");
  cmd->add_option("-c,--config", args->config, "Config that defines the model")->capture_default_str();
  cmd->add_option("--set", args->set, "Override a config key (repeatable)");
  cmd->add_option("--batch-size", args->options.batch_size, "Batch size")->capture_default_str()->check(at_least(1));
  cmd->add_option("--warmup", args->options.warmup, "Untimed steps per variant")->capture_default_str()->check(at_least(0));
  cmd->add_option("--steps", args->options.steps, "Timed steps per variant and round")->capture_default_str()->check(at_least(1));
  cmd->add_option("--rounds", args->options.rounds, "Rounds (variants alternate within a round)")->capture_default_str()->check(at_least(1));
  cmd->add_option("--variants", args->options.variants, "Only these variants (default: all)")
      ->check(CLI::IsMember({"dense", "rup+ewa", "routed"}));
  cmd->add_option("--record", args->record,
                  "Also append the table, the exact command and the machine to this Markdown file (docs/benchmarks.md)");
  cmd->callback([args] {
    Config cfg = load_config(args->config, args->set);
    // Sizes the dataset would give, without reading it (config/datasets.cpp).
    const DatasetInfo& info = dataset_info(cfg.data.dataset);
    std::map<std::string, nlohmann::json> sizes;
    if (cfg.model.img_size == 0 && !info.point_cloud) sizes["model.img_size"] = info.folder ? cfg.data.image_size : info.img_size;
    if (cfg.model.num_classes == 0 && info.folder && info.num_classes == 0)
      fail("model.num_classes: " + cfg.data.dataset + " has as many classes as its folder, and the benchmark does not read "
           "it: set model.num_classes (--set model.num_classes=N)");
    if (cfg.model.in_chans == 0) sizes["model.in_chans"] = info.point_cloud ? (cfg.data.use_normals ? 6 : 3) : info.in_chans;
    if (cfg.model.num_classes == 0) sizes["model.num_classes"] = info.num_classes > 0 ? info.num_classes : cfg.data.way;
    if (cfg.model.num_categories == 0 && info.segmentation) sizes["model.num_categories"] = info.num_categories;
    cfg = cfg.with(sizes);  // (a dense base config's MoE variants take moe.blocks as it stands, every other block by default)
    if (cfg.train.threads > 0) init_threads(static_cast<int>(cfg.train.threads));
    char head[512];
    const auto device = train::select_device(cfg.train.device);
    char model[160];
    if (!model_kind(cfg).transformer) {  // the dVAE: no transformer, so no MoE variants
      std::snprintf(model, sizeof model, "dVAE tokenizer, %lld tokens", (long long)cfg.pretrain.num_tokens);
    } else {  // a dense config has no MoE blocks of its own: its MoE variants take moe.blocks' rule
      std::snprintf(model, sizeof model, "D=%lld depth=%lld, MoE variants: %zu blocks of N=%lld", (long long)cfg.model.embed_dim,
                    (long long)cfg.model.depth, cfg.with({{"moe.kind", "rup"}}).moe.blocks.size(), (long long)cfg.moe.num_experts);
    }
    std::snprintf(head, sizeof head, "train-step: %s, %s, batch %lld, %d threads, %s, %s", args->config.c_str(), model,
                  (long long)args->options.batch_size, at::get_num_threads(), device.str().c_str(),
                  precision_description(cfg.train.precision, device).c_str());
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
      for (const auto& v : o.variants) command += " --variants " + v;
      record(args->record, "train-step", command, head, table);
    }
  });
}

void add_resample_bench(CLI::App* bench) {
  struct ResampleArgs {
    std::string config = "configs/finetune_modelnet40_pointmae_dense.json";
    std::vector<std::string> set;
    std::string record;
    bench::ResampleOptions options;
  };
  auto rs = std::make_shared<ResampleArgs>();
  auto* rs_cmd = bench->add_subcommand(
      "resample", "The official per-step resampling (shuffle, FPS, random subset, augmentation) against the training step it feeds");
  rs_cmd->add_option("-c,--config", rs->config, "Config of the model (Point-MAE size)")->capture_default_str();
  rs_cmd->add_option("--set", rs->set, "Override a config key (repeatable), e.g. --set train.device=cuda");
  rs_cmd->add_option("--batch-size", rs->options.batch_size, "Clouds per step")->capture_default_str()->check(at_least(1));
  rs_cmd->add_option("--repeats", rs->options.repeats, "Timed resampling repeats (median)")->capture_default_str()->check(at_least(1));
  rs_cmd->add_option("--step-repeats", rs->options.step_repeats, "Timed training steps per model (median)")
      ->capture_default_str()
      ->check(at_least(1));
  rs_cmd->add_option("--settings", rs->options.settings, "Only these settings (default: all)")
      ->check(CLI::IsMember({"mn40-1k", "mn40-8k", "scan-pb", "scan-pm"}));
  rs_cmd->add_option("--record", rs->record, "Also append the table, the exact command and the machine to this Markdown file");
  rs_cmd->callback([rs] {
    Config cfg = load_config(rs->config, rs->set);
    if (cfg.model.in_chans == 0) cfg = cfg.with({{"model.in_chans", 3}});
    if (cfg.model.num_classes == 0) cfg = cfg.with({{"model.num_classes", 40}});
    if (cfg.train.threads > 0) init_threads(static_cast<int>(cfg.train.threads));
    const auto device = train::select_device(cfg.train.device);
    char head[512];
    std::snprintf(head, sizeof head, "resample: %s, D=%lld depth=%lld, batch %lld, %d threads, %s, %s, SIMD %s", rs->config.c_str(),
                  (long long)cfg.model.embed_dim, (long long)cfg.model.depth, (long long)rs->options.batch_size,
                  at::get_num_threads(), device.str().c_str(), precision_description(cfg.train.precision, device).c_str(),
                  kernels::simd::name(kernels::simd::level()));
    print_line(head);
    const std::string table = bench::resample_markdown(bench::bench_resample(cfg, rs->options));
    print_line(table);
    if (!rs->record.empty()) {
      std::string command = "ewa bench resample --config " + rs->config;
      for (const auto& o : rs->set) command += " --set " + o;
      const auto& o = rs->options;
      command += " --batch-size " + std::to_string(o.batch_size) + " --repeats " + std::to_string(o.repeats) +
                 " --step-repeats " + std::to_string(o.step_repeats);
      for (const auto& v : o.settings) command += " --settings " + v;
      if (kernels::simd::level() != kernels::simd::supported())
        command = std::string("EWA_SIMD=") + kernels::simd::name(kernels::simd::level()) + " " + command;
      record(rs->record, "resample", command, head, table);
    }
  });
}

void add_ops_bench(CLI::App* bench) {
  struct OpsArgs {
    bench::PointOpsOptions options;
    std::string record;
  };
  auto ops = std::make_shared<OpsArgs>();
  auto* ops_cmd = bench->add_subcommand(
      "ops", "Our FPS, kNN and grouping (CPU, and CUDA on a GPU) against plain LibTorch formulations and, when built with "
             "Open3D, its FarthestPointDownSample and KD-tree search");
  ops_cmd->add_option("--sizes", ops->options.sizes, "Cloud sizes (points)")->capture_default_str();
  ops_cmd->add_option("--k", ops->options.k, "Neighbours per query")->capture_default_str()->check(at_least(1));
  ops_cmd->add_option("--repeats", ops->options.repeats, "Timed repeats (median reported)")->capture_default_str()->check(at_least(1));
  ops_cmd->add_option("--record", ops->record, "Also append the table, the exact command and the machine to this Markdown file");
  ops_cmd->callback([ops] {
    for (auto n : ops->options.sizes)
      if (n < 64) fail("--sizes: every size must be at least 64 points, got " + std::to_string(n));
    const int threads = at::get_num_threads();
    const std::string head = "ops: FPS to min(1024, N/8) samples, kNN (k = " + std::to_string(ops->options.k) +
                             ") of those samples, median of " + std::to_string(ops->options.repeats) + " runs, " +
                             std::to_string(threads) + " threads, SIMD " +
                             kernels::simd::name(kernels::simd::level()) + " (of " +
                             kernels::simd::name(kernels::simd::supported()) + " on this CPU)";
    print_line(head);
    const std::string table = bench::point_ops_markdown(bench::bench_point_ops(ops->options));
    print_line(table);
    if (!ops->record.empty()) {
      std::string command = "ewa bench ops --k " + std::to_string(ops->options.k) + " --repeats " + std::to_string(ops->options.repeats) + " --sizes";
      for (auto n : ops->options.sizes) command += " " + std::to_string(n);
      if (kernels::simd::level() != kernels::simd::supported())
        command = std::string("EWA_SIMD=") + kernels::simd::name(kernels::simd::level()) + " " + command;
      record(ops->record, "ops", command, head, table);
    }
  });
}

void add_input_bench(CLI::App* bench) {
  struct InputArgs {
    std::string config;
    std::vector<std::string> set;
    std::string record;
    bench::InputOptions options;
  };
  auto in = std::make_shared<InputArgs>();
  auto* cmd = bench->add_subcommand(
      "input", "Images (or clouds) per second of a config's training data pipeline against what its training step consumes");
  cmd->add_option("-c,--config", in->config, "Config of the run (its dataset, batch size, augmentation and model)")->required();
  cmd->add_option("--set", in->set, "Override a config key (repeatable)");
  cmd->add_option("--batches", in->options.batches, "Timed training batches per thread count (median)")
      ->capture_default_str()
      ->check(at_least(1));
  cmd->add_option("--threads", in->options.threads, "Thread counts to build batches with (default: the run's, then 1)");
  cmd->add_option("--step-repeats", in->options.step_repeats, "Timed training steps (median)")->capture_default_str()->check(at_least(1));
  cmd->add_option("--record", in->record, "Also append the table, the exact command and the machine to this Markdown file");
  cmd->callback([in] {
    const Config cfg = load_config(in->config, in->set);
    if (cfg.train.threads > 0) init_threads(static_cast<int>(cfg.train.threads));
    const auto device = train::select_device(cfg.train.device);
    char head[512];
    std::snprintf(head, sizeof head, "input: %s, %s (%s), batch %lld, %d threads, %s, %s", in->config.c_str(), cfg.data.dataset.c_str(),
                  cfg.data.root.c_str(), (long long)cfg.data.batch_size, at::get_num_threads(), device.str().c_str(),
                  precision_description(cfg.train.precision, device).c_str());
    print_line(head);
    const std::string table = bench::input_markdown(bench::bench_input(cfg, datasets::load_task, in->options));
    print_line(table);
    if (!in->record.empty()) {
      std::string command = "ewa bench input --config " + in->config;
      for (const auto& o : in->set) command += " --set " + o;
      command += " --batches " + std::to_string(in->options.batches) + " --step-repeats " + std::to_string(in->options.step_repeats);
      for (const auto t : in->options.threads) command += " --threads " + std::to_string(t);
      record(in->record, "input", command, head, table);
    }
  });
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  add_train_step_bench(bench);
  add_resample_bench(bench);
  add_ops_bench(bench);
  add_input_bench(bench);
}

}  // namespace ewa::app
