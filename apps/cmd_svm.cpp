// ewa svm: the linear SVM probe of a pretrained point encoder (Point-BERT's protocol).
#include <cstdio>

#include "apps/commands.h"
#include "common/error.h"
#include "common/fs.h"
#include "datasets/registry.h"
#include "eval/svm_probe.h"

namespace ewa::app {

void add_svm_command(CLI::App& app) {
  struct Args {
    std::string weights, config;
    std::vector<std::string> set;
    eval::SvmOptions options;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "svm", "Linear SVM probe of a pretrained point encoder: frozen features of the train and test clouds, liblinear");
  cmd->add_option("weights", args->weights,
                  "Encoder weights: ewa pretraining or classifier checkpoint, official Point-MAE / Point-BERT .pth")
      ->required();
  cmd->add_option("-c,--config", args->config,
                  "Config of the encoder and the dataset (configs/svm_modelnet40_pointbert.json, configs/svm_modelnet40_pointmae.json)")
      ->required();
  cmd->add_option("--set", args->set, "Override a config key (repeatable), e.g. --set data.root=/data/modelnet40_normal_resampled");
  cmd->add_option("--feature", args->options.feature,
                  "cls_max ([class token, max over groups]), max_mean ([max, mean] over groups, for encoders without a "
                  "class token such as Point-MAE's pretraining) or pb_cls_head (Point-BERT's cls_head projection, its "
                  "protocol's feature); default: pb_cls_head for a point_bert config, else cls_max")
      ->check(CLI::IsMember({"cls_max", "max_mean", "pb_cls_head"}));
  cmd->add_option("--c", args->options.c, "SVM regularisation C (LinearSVC's default 1)")->capture_default_str();
  cmd->add_option("--tolerance", args->options.tolerance, "liblinear's stopping tolerance (LinearSVC's tol)")->capture_default_str();
  cmd->add_option("--batch-size", args->options.batch_size, "Clouds per forward pass")->capture_default_str()->check(at_least(1));
  cmd->add_option("--write-features", args->options.write_features,
                  "Also write PREFIX_train.txt and PREFIX_test.txt (liblinear / libsvm text) for other tools");
  cmd->add_flag("--force", args->force, "Replace the --write-features files when they exist");
  cmd->callback([args] {
    if (!args->options.write_features.empty()) {
      const auto& p = args->options.write_features;
      check_outputs({{p + "_train.txt", args->weights}, {p + "_test.txt", args->weights}}, {args->weights}, args->force,
                    "--write-features");
    }
    if (!(args->options.c > 0)) fail("--c: expected a positive number, got " + std::to_string(args->options.c));
    if (!(args->options.tolerance > 0)) fail("--tolerance: expected a positive number, got " + std::to_string(args->options.tolerance));
    const Config cfg = load_config(args->config, args->set);
    const auto r = eval::svm_probe(cfg, args->weights, args->options, datasets::load_task, print_line);
    char line[512];
    std::snprintf(line, sizeof line, "%s: SVM test accuracy %.4f (%lld training, %lld test clouds, %lld-d features; %s)",
                  args->weights.c_str(), r.accuracy, (long long)r.train_count, (long long)r.test_count, (long long)r.dims,
                  r.label.c_str());
    print_line(line);
  });
}

}  // namespace ewa::app
