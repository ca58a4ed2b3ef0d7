// ewa eval: accuracy of a checkpoint (ewa's own, or an imported official / timm file) on the
// test (or validation) split.
#include "apps/commands.h"
#include "common/error.h"
#include "common/precision.h"
#include "train/trainer.h"

namespace ewa::app {

void add_eval_command(CLI::App& app) {
  struct Args {
    std::string checkpoint, config, split = "test";
    std::vector<std::string> set;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a checkpoint: overall and mean per-class accuracy");
  cmd->add_option("checkpoint", args->checkpoint,
                  "Weights: last.pt, best.pt, a converted dense model, or an official Point-MAE / Point-BERT classifier .pth "
                  "(then --config names the model and data)")
      ->required();
  cmd->add_option("-c,--config", args->config, "Build the model from this config instead of the checkpoint's own");
  cmd->add_option("--set", args->set, "Override a config key, e.g. --set data.root=/data/fmnist (repeatable)");
  cmd->add_option("--split", args->split, "Split to evaluate")->check(CLI::IsMember({"test", "val"}))->capture_default_str();
  cmd->callback([args] {
    const auto weights = io::read_state_dict(args->checkpoint);
    Config cfg = config_for_weights(args->checkpoint, weights, args->config, args->set);
    auto task = train::load_task(cfg);
    cfg = train::resolve_for_dataset(cfg, task);
    const auto device = train::select_device(cfg.train.device);
    auto [model, report] = train::load_classifier(cfg, weights, args->checkpoint);
    if (weights.config.is_null()) print_line(report.table());
    model->to(device);
    data::BatchSource* source = args->split == "val" ? task.val.get() : task.test.get();
    if (!source) fail("--split val: the config has no validation split (data.val_fraction is 0)");
    const int64_t votes = cfg.data.votes;
    train::ClassificationMetrics m;
    {
      AutocastGuard autocast(device, cfg.train.precision == "bf16");  // --set train.precision=bf16
      m = train::evaluate(*model, *source, task.num_classes, device, votes);
    }
    char line[512];
    std::snprintf(line, sizeof line, "%s %s: OA %.4f mAcc %.4f loss %.4f (%lld samples, %s model, %s)",
                  args->checkpoint.c_str(), args->split.c_str(), m.overall_accuracy, m.mean_class_accuracy, m.loss,
                  (long long)m.count, mlp_kind_name(cfg.moe.kind),
                  votes > 1 ? ("voting over " + std::to_string(votes) + " passes").c_str() : "single pass, no voting");
    print_line(line);
  });
}

}  // namespace ewa::app
