// Training and fine-tuning of classifiers (point-cloud transformer and 2D ViT): the classification
// Task of the one training loop (train/loop.h), made by classification_maker (tasks/run_task.h).
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "config/config.h"
#include "data/batch_source.h"
#include "io/pretrained.h"
#include "models/classifier.h"
#include "train/loop.h"
#include "eval/protocols.h"
#include "eval/metrics.h"

namespace ewa::tasks {

// Loads cfg.finetune.init into `model` (head fresh when its shape differs); returns the report
// whose table() the trainer prints.
io::LoadReport init_from_pretrained(models::ClassifierImpl& model, const Config& cfg);
// The classifier a run of `cfg` starts from (before finetune.init), as run_task builds it: torch's
// default generator seeded with train.seed, each block's FFN on its own stream (common/random.h),
// so configs that differ only in their MoE settings start from the same shared weights.
std::shared_ptr<models::ClassifierImpl> initial_model(const Config& cfg);

}  // namespace ewa::tasks
