// ewa eval: accuracy of a checkpoint (ewa's own, or an imported official / timm file) on the
// test (or validation) split, under one evaluation protocol (docs/protocols.md).
#include "apps/commands.h"
#include "common/error.h"
#include "common/precision.h"
#include "train/evaluation.h"
#include "train/trainer.h"
#include "datasets/registry.h"

namespace ewa::app {

void add_eval_command(CLI::App& app) {
  struct Args {
    std::string checkpoint, config, split = "test", protocol;
    std::vector<std::string> set;
    int64_t views = 0, repeats = 0;
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
  cmd->add_option("--protocol", args->protocol,
                  "single (one pass), tta (logits of 1 clean + data.votes - 1 augmented passes averaged) or vote (the "
                  "official vote: eval.vote_views views, repeated eval.vote_repeats times; max, mean and sd reported); "
                  "default: tta when data.votes > 1, else single")
      ->check(CLI::IsMember({"single", "tta", "vote"}));
  cmd->add_option("--views", args->views, "vote: views per cloud (default: the config's eval.vote_views)")->check(at_least(1));
  cmd->add_option("--repeats", args->repeats, "vote: repeats of the whole vote (default: the config's eval.vote_repeats)")
      ->check(at_least(1));
  cmd->callback([args] {
    const auto weights = io::read_state_dict(args->checkpoint);
    Config cfg = config_for_weights(args->checkpoint, weights, args->config, args->set);
    if (args->views > 0) cfg = cfg.with({{"eval.vote_views", args->views}});
    if (args->repeats > 0) cfg = cfg.with({{"eval.vote_repeats", args->repeats}});
    const auto protocol = args->protocol.empty() ? train::epoch_protocol(cfg)
                                                 : train::protocol_named(args->protocol, cfg, "--protocol");
    auto task = data::load_task(cfg);
    cfg = train::resolve_for_dataset(cfg, task);
    const auto device = train::select_device(cfg.train.device);
    auto [model, report] = train::load_classifier(cfg, weights, args->checkpoint);
    if (weights.config.is_null()) print_line(report.table());
    model->to(device);
    data::BatchSource* source = args->split == "val" ? task.val.get() : task.test.get();
    if (!source) fail("--split val: the config has no validation split (data.val_fraction is 0)");
    source->place(device);
    train::ProtocolResult r;
    {
      AutocastGuard autocast(device, cfg.train.precision == "bf16");  // --set train.precision=bf16
      r = train::evaluate_protocol(*model, *source, cfg.model.num_classes, device, protocol);
    }
    const auto& m = r.metrics;
    char line[1024];
    if (protocol.kind == train::EvalProtocol::Kind::Vote)
      std::snprintf(line, sizeof line, "%s %s: vote OA %.4f (max over %zu repeats; mean %.4f +- %.4f sd) mAcc %.4f loss %.4f (%lld samples, %s model, %s)",
                    args->checkpoint.c_str(), args->split.c_str(), r.max, r.repeat_accuracy.size(), r.mean, r.std,
                    m.mean_class_accuracy, m.loss, (long long)m.count, mlp_kind_name(cfg.moe.kind), protocol.label().c_str());
    else
      std::snprintf(line, sizeof line, "%s %s: OA %.4f mAcc %.4f loss %.4f (%lld samples, %s model, %s)",
                    args->checkpoint.c_str(), args->split.c_str(), m.overall_accuracy, m.mean_class_accuracy, m.loss,
                    (long long)m.count, mlp_kind_name(cfg.moe.kind), protocol.label().c_str());
    print_line(line);
  });
}

}  // namespace ewa::app
