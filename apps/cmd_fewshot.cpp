// ewa fewshot: the 10 folds of a few-shot task, trained one after the other, with mean +- sd.
#include <cstdio>

#include "apps/commands.h"
#include "common/error.h"
#include "datasets/point_datasets.h"
#include "datasets/registry.h"
#include "tasks/fewshot.h"

namespace ewa::app {

void add_fewshot_command(CLI::App& app) {
  struct Args {
    std::string config, init;
    std::vector<std::string> set;
    int64_t way = 0, shot = 0;
    std::vector<int64_t> folds = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "fewshot", "Few-shot classification: train every fold of a released ModelNet40 few-shot task, report mean +- sd");
  cmd->add_option("-c,--config", args->config, "A modelnet_fewshot config (configs/fewshot_5w10s_pointmae.json, ...)")->required();
  cmd->add_option("--way", args->way, "Classes of the task (released: 5 or 10; default: the config's data.way)")->check(at_least(1));
  cmd->add_option("--shot", args->shot, "Training clouds per class (released: 10 or 20; default: the config's data.shot)")
      ->check(at_least(1));
  cmd->add_option("--folds", args->folds, "Folds to run")->capture_default_str()->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  cmd->add_option("--init", args->init, "Pretrained weights to fine-tune every fold from (sets finetune.init)");
  cmd->add_option("--set", args->set, "Override a config key (repeatable)");
  cmd->callback([args] {
    auto set = args->set;
    if (!args->init.empty()) set.push_back("finetune.init=" + args->init);
    if (args->way > 0) set.push_back("data.way=" + std::to_string(args->way));
    if (args->shot > 0) set.push_back("data.shot=" + std::to_string(args->shot));
    set.push_back("data.fold=" + std::to_string(args->folds.empty() ? 0 : args->folds.front()));  // each fold sets its own
    Config cfg = load_config(args->config, set);
    // Every fold's file before the first training step (a missing fold 9 is found before fold 0 trains).
    if (cfg.data.dataset == "modelnet_fewshot")
      for (const int64_t fold : args->folds) datasets::fewshot_fold_file(cfg.with({{"data.fold", fold}}).data);
    const auto s = tasks::run_fewshot(cfg, cfg.data.way, cfg.data.shot, args->folds, datasets::load_task, print_line);
    char line[512];
    std::snprintf(line, sizeof line,
                  "%lld-way %lld-shot over %zu folds: final epoch OA %.2f +- %.2f, best epoch on test OA %.2f +- %.2f "
                  "(%%, mean +- sample sd, ddof 1; ddof 0: %.2f and %.2f; best epoch selected on each fold's test clouds, as "
                  "the maintainers report; single pass)",
                  (long long)s.way, (long long)s.shot, s.folds.size(), 100 * s.final_oa.mean, 100 * s.final_oa.sd,
                  100 * s.best_oa.mean, 100 * s.best_oa.sd, 100 * s.final_oa.sd_population, 100 * s.best_oa.sd_population);
    print_line(line);
  });
}

}  // namespace ewa::app
