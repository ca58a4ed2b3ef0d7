// ewa train / ewa finetune: train a classifier from a JSON config, from scratch or from
// pretrained weights (finetune.init).
#include "apps/commands.h"
#include "common/error.h"
#include "config/model_kinds.h"
#include "datasets/registry.h"
#include "tasks/run_task.h"
#include "train/setup.h"

namespace ewa::app {
namespace {

struct TrainArgs {
  std::string config, name, resume, init;
  std::vector<std::string> set;
  bool linear_probe = false, allow_missing = false;
  double layer_decay = 0;  // 0 = as the config says
  DistArgs dist;
};

// Flags shared by train and finetune.
void add_common(CLI::App* cmd, const std::shared_ptr<TrainArgs>& args) {
  cmd->add_option("-c,--config", args->config, "JSON config file (configs/*.json); defaults when omitted");
  cmd->add_option("--set", args->set, "Override a config key, e.g. --set ewa.share_rate=0.5 (repeatable)");
  cmd->add_option("--name", args->name, "Run name (overrides the config's name)");
  cmd->add_option("--resume", args->resume,
                  "Continue from this checkpoint (e.g. runs/NAME/last.pt); its config is used when --config is omitted");
  add_dist_options(cmd, args->dist);
}

void run(const TrainArgs& a) {
  auto group = join_job(a.dist);
  std::vector<std::string> set = a.set;
  if (!a.init.empty()) set.push_back("finetune.init=" + a.init);
  if (a.linear_probe) set.push_back("finetune.freeze_encoder=true");
  if (a.allow_missing) set.push_back("finetune.allow_missing=true");
  if (a.layer_decay > 0) set.push_back("finetune.layer_decay=" + std::to_string(a.layer_decay));
  std::shared_ptr<const io::Checkpoint> resumed;
  Config cfg = train::run_config(a.config, a.resume, set, a.name, &resumed);
  require_trained_by(cfg, "train");
  const std::string run_dir = tasks::run_task(cfg, datasets::load_task, {a.resume, group, resumed}, print_line).run_dir;
  if (!group || group->is_main()) plot_finished_run(run_dir);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a classifier (point-cloud transformer or 2D ViT) from a JSON config into runs/<name>/");
  add_common(cmd, args);
  cmd->add_option("--init", args->init,
                  "Start from these weights (fine-tuning; sets finetune.init): an ewa checkpoint, an official Point-MAE / "
                  "Point-BERT .pth, or a timm .pth/.safetensors");
  cmd->callback([args] { run(*args); });

  auto fargs = std::make_shared<TrainArgs>();
  auto* ft = app.add_subcommand(
      "finetune", "Fine-tune pretrained weights into a classifier (train with --init; prints the loaded-key table)");
  add_common(ft, fargs);
  ft->add_option("--init", fargs->init,
                 "Pretrained weights: `ewa pretrain`'s last.pt, an ewa classifier, Point-MAE's pretrain.pth or a fine-tuned "
                 ".pth, Point-BERT.pth, or a timm .pth/.safetensors for vit")
      ->required();
  ft->add_flag("--linear-probe", fargs->linear_probe, "Freeze the backbone and train only the head (finetune.freeze_encoder)");
  ft->add_option("--layer-decay", fargs->layer_decay, "Layer-wise learning-rate decay in (0, 1] (finetune.layer_decay)")
      ->check(CLI::Range(0.01, 1.0));
  ft->add_flag("--allow-missing", fargs->allow_missing,
               "Start backbone tensors missing from --init fresh instead of stopping (finetune.allow_missing)");
  ft->callback([fargs] { run(*fargs); });
}

}  // namespace ewa::app
