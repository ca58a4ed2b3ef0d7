// ewa train: train a classifier from a JSON config.
#include "apps/commands.h"
#include "common/runtime.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace ewa::app {

void add_train_command(CLI::App& app) {
  struct Args {
    std::string config, name, resume;
    std::vector<std::string> set;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("train", "Train a classifier (point-cloud transformer or 2D ViT) from a JSON config into runs/<name>/");
  cmd->add_option("-c,--config", args->config, "JSON config file (configs/*.json); defaults when omitted");
  cmd->add_option("--set", args->set, "Override a config key, e.g. --set ewa.share_rate=0.5 (repeatable)");
  cmd->add_option("--name", args->name, "Run name (overrides the config's name)");
  cmd->add_option("--resume", args->resume,
                  "Continue from this checkpoint (e.g. runs/NAME/last.pt); its config is used when --config is omitted");
  cmd->callback([args] {
    Config cfg;
    if (args->config.empty() && !args->resume.empty()) {
      auto ckpt = train::read_checkpoint(args->resume);
      nlohmann::json j = resolve_config(ckpt.config, "checkpoint " + args->resume);
      for (const auto& o : args->set) apply_override(j, o);
      cfg = parse_config(j, "checkpoint " + args->resume);
    } else {
      cfg = load_config(args->config, args->set);
    }
    if (!args->name.empty()) {
      cfg.name = args->name;
      cfg.json["name"] = args->name;
    }
    if (cfg.train.threads > 0) init_threads(static_cast<int>(cfg.train.threads));
    train::train_classifier(cfg, train::TrainOptions{args->resume}, print_line);
  });
}

}  // namespace ewa::app
