// ewa eval: accuracy of a checkpoint (ewa's own, or an imported official / timm file) on the
// test (or validation) split, under one evaluation protocol (docs/protocols.md).
#include "apps/commands.h"
#include "common/error.h"
#include "common/precision.h"
#include "config/model_kinds.h"
#include "datasets/registry.h"
#include "eval/parts.h"
#include "eval/protocols.h"
#include "infer/load.h"
#include "train/setup.h"

namespace ewa::app {

namespace {

struct Args {
  std::string checkpoint, config, split = "test";
  std::vector<std::string> set;
  ProtocolArgs protocol;
};

// A part-segmentation checkpoint: instance and class mIoU, accuracy and the per-category table,
// evaluated as the training epochs do (docs/protocols.md, section 6).
void eval_parts(const Args& a, const io::StateDict& weights, Config cfg) {
  refuse_protocol_for_parts(a.protocol, a.checkpoint);
  auto task = datasets::load_task(cfg, data::use_for_split(a.split));
  cfg = train::resolve_for_dataset(cfg, task);
  auto seg = load_point_segmenter(a.checkpoint, weights, cfg);
  if (weights.config.is_null()) print_line(seg.report.table());
  data::BatchSource& source = data::split_source(task, a.split);
  source.place(seg.device);
  double loss = 0;
  const auto m = eval::evaluate_segmentation(*seg.model, source, task, seg.device, &loss);
  const auto per_category = m.per_category();
  for (const auto& item : per_category.items()) {
    char row[160];
    std::snprintf(row, sizeof row, "  %-12s mIoU %.4f (%lld shapes)", item.key().c_str(), item.value()["miou"].get<double>(),
                  static_cast<long long>(item.value()["shapes"].get<int64_t>()));
    print_line(row);
  }
  char rest[512];
  std::snprintf(rest, sizeof rest, " loss %.4f (%lld shapes, %s model, %s)", loss, static_cast<long long>(m.shapes()),
                mlp_kind_name(cfg.moe.kind), eval::segmentation_protocol_label(cfg).c_str());
  print_line(a.checkpoint + " " + a.split + ": " + m.text() + rest);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a checkpoint: overall and mean per-class accuracy");
  cmd->add_option("checkpoint", args->checkpoint,
                  "Weights: last.pt, best.pt, a converted dense model, or an official Point-MAE / Point-BERT classifier .pth "
                  "(then --config names the model and data)")
      ->required();
  cmd->add_option("-c,--config", args->config, "Build the model from this config instead of the checkpoint's own");
  cmd->add_option("--set", args->set, "Override a config key, e.g. --set data.root=/data/fmnist (repeatable)");
  add_split_option(cmd, args->split);
  add_protocol_options(cmd, args->protocol, /*repeats=*/true);
  cmd->callback([args] {
    const auto weights = io::read_state_dict(args->checkpoint);
    Config cfg = config_for_weights(args->checkpoint, weights, args->config, args->set);
    const ModelKind& kind = model_kind(cfg);
    if (kind.is_segmenter()) return eval_parts(*args, weights, cfg);
    if (!kind.is_classifier())
      fail(args->checkpoint + ": eval measures classifiers and part segmenters; this is a " + kind.name + " checkpoint (" +
           kind.summary + "), whose test figures are in its run's log.jsonl and metrics.json");
    const auto protocol = protocol_from(args->protocol, cfg);
    auto task = datasets::load_task(cfg, data::use_for_split(args->split));
    cfg = train::resolve_for_dataset(cfg, task);
    const auto device = train::select_device(cfg.train.device);
    auto [model, report] = infer::load_classifier(cfg, weights, args->checkpoint);
    if (weights.config.is_null()) print_line(report.table());
    model->to(device);
    data::BatchSource& source = data::split_source(task, args->split);
    source.place(device);
    eval::ProtocolResult r;
    {
      AutocastGuard autocast(device, cfg.train.precision == "bf16");  // --set train.precision=bf16
      r = eval::evaluate_protocol(*model, source, cfg.model.num_classes, device, protocol);
    }
    const auto& m = r.metrics;
    char rest[512];
    std::snprintf(rest, sizeof rest, " loss %.4f (%lld samples, %s model, %s)", m.loss, (long long)m.count,
                  mlp_kind_name(cfg.moe.kind), protocol.label().c_str());
    const std::string line = args->checkpoint + " " + args->split + ": " + r.text() + rest;
    print_line(line);
  });
}

}  // namespace ewa::app
