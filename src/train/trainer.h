// Training and evaluation of image classifiers (the 2D ViT path). Progress goes through a
// callback; the library never prints.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "config/config.h"
#include "datasets/batch_source.h"
#include "models/classifier.h"
#include "train/metrics.h"

namespace ewa::train {

using Reporter = std::function<void(const std::string& line)>;

struct TrainOptions {
  std::string resume;  // checkpoint to resume from; empty = fresh run
};

struct TrainResult {
  std::string run_dir;
  ClassificationMetrics test;      // final epoch, test split
  ClassificationMetrics val;       // final epoch, validation split (count 0 when none)
  int64_t best_val_epoch = 0;      // epoch of best.pt (0 when no validation split)
  int64_t steps = 0;
  double seconds = 0;
};

// Loads the dataset of cfg.data (images or point clouds) with its train / val / test sources.
data::TaskData load_task(const Config& cfg);

// Resolves model sizes from the dataset (model.img_size/in_chans/num_classes = 0) and
// checks given ones against it; returns the updated config.
Config resolve_for_dataset(Config cfg, const data::TaskData& task);

// Picks the device of train.device ("auto": cuda when available).
torch::Device select_device(const std::string& device);

// Full training run into <train.runs_dir>/<name> (see docs/guide.md for its files).
TrainResult train_classifier(Config cfg, const TrainOptions& options, const Reporter& report);

// Accuracy and loss of `model` (eval mode) on `source`. votes > 1: logits averaged over one clean
// and votes - 1 augmented passes (test-time voting).
ClassificationMetrics evaluate(models::ClassifierImpl& model, data::BatchSource& source, int64_t num_classes,
                               torch::Device device, int64_t votes = 1);

}  // namespace ewa::train
