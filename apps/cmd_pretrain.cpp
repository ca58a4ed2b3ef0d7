// ewa pretrain: Point-MAE masked-autoencoder pretraining of a point-cloud transformer, or Point-BERT's
// two stages (the dVAE tokenizer, then masked point modelling on it).
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/runtime.h"
#include "config/model_kinds.h"
#include "datasets/registry.h"
#include "eval/mae_views.h"
#include "models/point_mae.h"
#include "tasks/run_task.h"
#include "train/checkpoint.h"
#include "train/setup.h"

namespace ewa::app {

void add_pretrain_command(CLI::App& app) {
  struct Args {
    std::string config, name, resume, reconstruct, out;
    int64_t count = 8;
    std::vector<std::string> set;
    DistArgs dist;
    bool force = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "pretrain", "Pretrain a point-cloud transformer (labels ignored) into runs/<name>/: Point-MAE's masked autoencoder, or "
                  "Point-BERT's dVAE tokenizer (stage 1) and masked point modelling on it (stage 2)");
  cmd->add_option("-c,--config", args->config, "JSON config with model.name = point_mae (configs/*_pretrain*.json), point_bert_dvae (Point-BERT's "
                  "dVAE tokenizer, configs/*_dvae.json) or point_bert (stage 2, configs/*_pointbert.json, pretrain.tokenizer)");
  cmd->add_option("--set", args->set, "Override a config key, e.g. --set pretrain.mask_type=block (repeatable)");
  cmd->add_option("--name", args->name, "Run name (overrides the config's name)");
  cmd->add_option("--resume", args->resume, "Continue from this checkpoint (runs/NAME/last.pt)");
  cmd->add_option("--reconstruct", args->reconstruct,
                  "Instead of training: write reconstructions of the test clouds with this pretraining checkpoint");
  cmd->add_option("-o,--output", args->out, "--reconstruct: output directory (default: <checkpoint dir>/reconstructions)");
  cmd->add_option("-n,--count", args->count, "--reconstruct: number of test clouds")->capture_default_str();
  cmd->add_flag("--force", args->force, "--reconstruct: write into --output even when it holds files");
  add_dist_options(cmd, args->dist);
  cmd->callback([args] {
    const std::string from = !args->reconstruct.empty() ? args->reconstruct : args->resume;
    std::shared_ptr<const io::Checkpoint> read;
    Config cfg = train::run_config(args->config, from, args->set, args->name, &read);
    if (args->reconstruct.empty()) {
      const auto group = join_job(args->dist);
      // Point-MAE's masked autoencoder, or Point-BERT's stage 1 (the dVAE tokenizer) or stage 2.
      require_trained_by(cfg, "pretrain");
      const std::string run_dir = tasks::run_task(cfg, datasets::load_task, {args->resume, group, read}, print_line).run_dir;
      if (!group || group->is_main()) plot_finished_run(run_dir);
      return;
    }
    const std::string out = args->out.empty() ? (std::filesystem::path(from).parent_path() / "reconstructions").string() : args->out;
    check_output_dir(out, args->force, "--output");  // before anything is read or computed
    if (model_kind(cfg).task != ModelTask::PretrainMae)
      fail("checkpoint " + from + ": holds a " + cfg.model.name + ", not a Point-MAE pretraining model (--reconstruct draws "
           "its reconstructions)");
    auto data = datasets::load_task(cfg);
    cfg = train::resolve_for_dataset(cfg, data);
    const auto device = train::select_device(cfg.train.device);
    models::PointMae model(cfg);
    train::load_model_state(*model, read ? *read : train::read_checkpoint(from), from);
    model->to(device);
    const int64_t n = eval::write_reconstructions(*model, *data.test, args->count, out, device);
    const double loss = eval::reconstruction_loss(*model, *data.test, device);
    char line[512];
    std::snprintf(line, sizeof line, "wrote %lld reconstructions to %s; test Chamfer x1000 %.4f (%lld clouds, fixed masks)",
                  (long long)n, out.c_str(), 1000 * loss, (long long)data.test->size());
    print_line(line);
  });
}

}  // namespace ewa::app
