// Training, fine-tuning and evaluation of classifiers (point-cloud transformer and 2D ViT): the
// classification Task of the one training loop (train/loop.h), made by classification_maker
// (train/run_task.h), and the helpers every task shares (sizes from the dataset, the device,
// fine-tuning starts).
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "config/config.h"
#include "data/batch_source.h"
#include "io/pretrained.h"
#include "models/classifier.h"
#include "train/loop.h"
#include "train/evaluation.h"
#include "train/metrics.h"

namespace ewa::train {

// Resolves model sizes from the dataset (model.img_size/in_chans/num_classes = 0) and
// checks given ones against it (a head with more outputs than the dataset has classes is
// allowed: the official few-shot configs); returns the updated config.
Config resolve_for_dataset(Config cfg, const data::TaskData& task);

// Picks the device of train.device ("auto": cuda when available). A rank of a job with several
// processes takes GPU LOCAL_RANK; a job with a rank that has no GPU of its own stops with one
// error on every rank (Group::require_gpu_per_rank) before NCCL is set up.
torch::Device select_device(const std::string& device, dist::Group* group = nullptr);

// Loads cfg.finetune.init into `model` (head fresh when its shape differs); returns the report
// whose table() the trainer prints.
io::LoadReport init_from_pretrained(models::ClassifierImpl& model, const Config& cfg);
// The load behind every fine-tuning start (classifier and segmenter): cfg.finetune.init into
// `model`, finetune.allow_missing honoured (and named in the error for missing tensors), the
// tensors `may_be_fresh` accepts left at their initialisation when the file lacks them.
io::LoadReport load_finetune_init(torch::nn::Module& model, const Config& cfg,
                                  const std::function<bool(const std::string&)>& may_be_fresh);

// Fills model.num_classes and model.in_chans left at 0 from the weights (the classification head's
// last Linear, the first embedding layer), so a classifier can be built for an imported file
// without a dataset.
Config resolve_for_weights(Config cfg, const io::StateDict& weights);

// Builds cfg's classifier and loads `weights` into it strictly: every tensor the model has must be
// in the file with its shape (head included). Returns the model in eval mode and the report.
std::pair<std::shared_ptr<models::ClassifierImpl>, io::LoadReport> load_classifier(const Config& cfg,
                                                                                  const io::StateDict& weights,
                                                                                  const std::string& path);

// The classifier a run of `cfg` starts from (before finetune.init), as run_task builds it: torch's
// default generator seeded with train.seed, each block's FFN on its own stream (common/random.h),
// so configs that differ only in their MoE settings start from the same shared weights.
std::shared_ptr<models::ClassifierImpl> initial_model(const Config& cfg);
}  // namespace ewa::train
