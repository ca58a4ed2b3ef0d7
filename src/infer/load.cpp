#include "infer/load.h"

#include <cmath>
#include <map>

#include "common/error.h"
#include "config/model_kinds.h"
#include "io/pretrained.h"
#include "models/registry.h"
#include "train/setup.h"

namespace ewa::infer {

Config resolve_for_weights(Config cfg, const io::StateDict& weights) {
  const auto sd = io::normalize_keys(weights.tensors);
  const ModelKind& kind = model_kind(cfg);
  const bool vit = kind.input == ModelInput::Images, seg = kind.is_segmenter();
  std::map<std::string, nlohmann::json> found;
  if (seg) {  // parts from the last head layer, categories from the label embedding
    if (const auto* t = sd.find("convs3.weight"); t && cfg.model.num_classes == 0) found["model.num_classes"] = t->size(0);
    if (const auto* t = sd.find("label_conv.0.weight"); t && t->dim() >= 2 && cfg.model.num_categories == 0)
      found["model.num_categories"] = t->size(1);
  } else if (cfg.model.num_classes == 0) {
    const std::string prefix = vit ? "head." : "cls_head_finetune.";
    for (const auto& item : sd)
      if (item.key().rfind(prefix, 0) == 0 && item.value().dim() == 2) found["model.num_classes"] = item.value().size(0);
  }
  if (cfg.model.in_chans == 0) {
    const std::string key = vit ? "patch_embed.proj.weight" : "encoder.first_conv.0.weight";
    if (const auto* t = sd.find(key); t && t->dim() >= 2) found["model.in_chans"] = t->size(1);
  }
  if (vit && cfg.model.img_size == 0) {
    if (const auto* t = sd.find("pos_embed"); t && t->dim() == 3)
      found["model.img_size"] = static_cast<int64_t>(std::lround(std::sqrt(double(t->size(1) - 1)))) * cfg.model.patch_size;
  }
  return found.empty() ? cfg : cfg.with(found);
}

std::pair<std::shared_ptr<models::ClassifierImpl>, io::LoadReport> load_classifier(const Config& cfg,
                                                                                  const io::StateDict& weights,
                                                                                  const std::string& path) {
  auto model = models::build_model(cfg);
  auto report = io::load_pretrained(*model, weights, io::LoadOptions{}, path);
  model->eval();
  return {model, report};
}

std::pair<models::PointSeg, io::LoadReport> load_segmenter(const Config& cfg, const io::StateDict& weights,
                                                           const std::string& path) {
  models::PointSeg model(cfg);
  auto report = io::load_pretrained(*model, weights, io::LoadOptions{}, path);
  model->eval();
  return {model, report};
}


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
    cfg = config_from_keys(weights.config, overrides, "checkpoint " + weights_path);
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
  c.device = train::select_device(c.cfg.train.device);
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
  s.device = train::select_device(s.cfg.train.device);
  s.model->to(s.device);
  return s;
}

}  // namespace ewa::infer
