// Models for inference from any weights file (an ewa checkpoint, or an official / timm / converted
// file with a config): the config a file is read with, and the loaded classifier or part
// segmenter on its device. What eval, predict, show, gallery, export and convert start from.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "infer/segment.h"
#include "io/pretrained.h"
#include "io/state_dict.h"
#include "models/classifier.h"
#include "models/point_seg.h"
#include "models/point_transformer.h"

namespace ewa::infer {

// Fills model.num_classes and model.in_chans left at 0 from the weights (the classification head's
// last Linear, the first embedding layer), so a classifier can be built for an imported file
// without a dataset.
Config resolve_for_weights(Config cfg, const io::StateDict& weights);

// Builds cfg's classifier and loads `weights` into it strictly: every tensor the model has must be
// in the file with its shape (head included). Returns the model in eval mode and the report.
std::pair<std::shared_ptr<models::ClassifierImpl>, io::LoadReport> load_classifier(const Config& cfg,
                                                                                  const io::StateDict& weights,
                                                                                  const std::string& path);

// Builds cfg's point_seg (sizes left at 0 filled from the weights, resolve_for_weights) and
// loads `weights` into it strictly; eval mode.
std::pair<models::PointSeg, io::LoadReport> load_segmenter(const Config& cfg, const io::StateDict& weights,
                                                           const std::string& path);


// The config of a weights file: its own (ewa checkpoints) with `overrides` (--set), or
// `config_path` when given (required for official / timm files, which carry none; a config of
// another model kind than the file's keys imply is refused), resolved for the file
// (resolve_for_weights: channels, classes where the file has a head).
Config config_for_weights(const std::string& weights_path, const io::StateDict& weights, const std::string& config_path,
                          const std::vector<std::string>& overrides);

// A point classifier on cfg.train.device: what predict, show and gallery run.
struct PointClassifier {
  Config cfg;  // resolved for the weights
  std::shared_ptr<models::ClassifierImpl> model;
  models::PointTransformerImpl* points = nullptr;
  torch::Device device = torch::kCPU;
  std::vector<std::string> class_names;  // from the checkpoint (empty for official files)
};
// `config` as config_for_weights gives it. A model that is not a point classifier stops with
// "<path>: <refusal>; this is a <name> model".
PointClassifier load_point_classifier(const std::string& path, const io::StateDict& weights, const Config& config,
                                      const std::string& refusal);

// A part segmenter (Point-MAE's segmentation network: an ewa checkpoint, or Point-MAE's
// segmentation .pth with its config) on cfg.train.device, with its part names (from the checkpoint).
struct PointSegmenter {
  Config cfg;
  models::PointSeg model{nullptr};
  PartNaming naming;
  torch::Device device = torch::kCPU;
  io::LoadReport report;  // how the weights were loaded (printed for files without an ewa config)
};
PointSegmenter load_point_segmenter(const std::string& path, const io::StateDict& weights, const Config& config);

}  // namespace ewa::infer
