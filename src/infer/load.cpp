#include "infer/load.h"

#include "common/error.h"
#include "config/model_kinds.h"
#include "io/pretrained.h"
#include "train/segmentation.h"
#include "train/trainer.h"

namespace ewa::train {

Config config_for_weights(const std::string& weights_path, const io::StateDict& weights, const std::string& config_path,
                          const std::vector<std::string>& overrides) {
  Config cfg;
  if (weights.config.is_null()) {  // an official or timm file: the model its keys imply
    const auto implied = io::implied_model(weights);
    const std::string holds = implied.name.empty() ? std::string("weights of no model ewa knows by their names")
                                                   : implied.what + " (model.name " + implied.name + ")";
    if (config_path.empty())
      fail(weights_path + ": holds no ewa config (" + weights.origin + "), only " + holds + ": pass --config with its sizes" +
           (implied.example.empty() ? std::string() : ", e.g. --config " + implied.example));
    cfg = load_config(config_path, overrides);
    if (!implied.name.empty()) {
      const ModelKind& kind = model_kind(implied.name);
      const bool has_variants = kind.variants.size() > 1;  // the variant is part of what the file holds
      if (&model_kind(cfg) != &kind || (has_variants && cfg.model.variant != implied.variant))
        fail(weights_path + ": holds " + holds + ", but config " + config_path + " describes a " + cfg.model.name +
             (model_kind(cfg).variants.size() > 1 ? " (" + cfg.model.variant + ")" : std::string()) +
             ": pass a config of its kind, e.g. --config " + implied.example +
             (kind.task == ModelTask::PretrainMae || kind.task == ModelTask::PretrainBert
                  ? "; a classifier is made from it by `ewa finetune --init " + weights_path + " --config <classifier config>`"
                  : std::string()));
    }
  } else if (!config_path.empty()) {
    cfg = load_config(config_path, overrides);
  } else {
    nlohmann::json j = resolve_config(weights.config, "checkpoint " + weights_path);
    for (const auto& o : overrides) apply_override(j, o);
    cfg = parse_config(j, "checkpoint " + weights_path);
  }
  return resolve_for_weights(cfg, weights);  // channels and classes where the file shows them
}

PointClassifier load_point_classifier(const std::string& path, const io::StateDict& weights, const Config& config,
                                      const std::string& refusal) {
  PointClassifier c;
  c.cfg = config;
  if (!model_kind(c.cfg).is_point_classifier()) fail(path + ": " + refusal + "; this is a " + c.cfg.model.name + " model");
  c.model = load_classifier(c.cfg, weights, path).first;
  c.points = dynamic_cast<models::PointTransformerImpl*>(c.model.get());
  c.class_names = weights.class_names;
  c.device = select_device(c.cfg.train.device);
  c.model->to(c.device);
  return c;
}

PointSegmenter load_point_segmenter(const std::string& path, const io::StateDict& weights, const Config& config) {
  PointSegmenter s;
  s.cfg = config;
  if (!model_kind(s.cfg).is_segmenter())
    fail(path + ": not a part-segmentation model (point_seg); this is a " + s.cfg.model.name);
  if (s.cfg.model.in_chans == 0) s.cfg = s.cfg.with({{"model.in_chans", 3}});
  std::tie(s.model, s.report) = load_segmenter(s.cfg, weights, path);
  s.naming = shapenet_part_naming(weights.class_names);
  s.device = select_device(s.cfg.train.device);
  s.model->to(s.device);
  return s;
}

}  // namespace ewa::train
