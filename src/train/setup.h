// What every task's run and every command shares before a model exists: the run's config, the
// sizes a dataset settles, the device, and the fine-tuning start from finetune.init.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "config/config.h"
#include "data/batch_source.h"
#include "dist/dist.h"
#include "io/pretrained.h"

namespace ewa::io {
struct Checkpoint;
}

namespace ewa::train {

// The config of a training or pretraining run: `config_path` with --set overrides, or, when it is
// empty and `checkpoint` is given (--resume, --reconstruct), the checkpoint's own config with the
// overrides (config_from_keys, as a file's); `name` (when not empty) renames the run. Applies
// train.threads. `read` (optional) receives the checkpoint when it was read for its config, for
// the run to reuse.
Config run_config(const std::string& config_path, const std::string& checkpoint, const std::vector<std::string>& overrides,
                  const std::string& name, std::shared_ptr<const io::Checkpoint>* read = nullptr);

// Resolves model sizes from the dataset (model.img_size/in_chans/num_classes = 0) and
// checks given ones against it (a head with more outputs than the dataset has classes is
// allowed: the official few-shot configs); returns the updated config.
Config resolve_for_dataset(Config cfg, const data::TaskData& task);

// Picks the device of train.device ("auto": cuda when available). A rank of a job with several
// processes takes GPU LOCAL_RANK; a job with a rank that has no GPU of its own stops with one
// error on every rank (Group::require_gpu_per_rank) before NCCL is set up.
torch::Device select_device(const std::string& device, dist::Group* group = nullptr);

// The load behind every fine-tuning start (classifier and segmenter): cfg.finetune.init into
// `model`, finetune.allow_missing honoured (and named in the error for missing tensors), the
// tensors `may_be_fresh` accepts left at their initialisation when the file lacks them.
io::LoadReport load_finetune_init(torch::nn::Module& model, const Config& cfg,
                                  const std::function<bool(const std::string&)>& may_be_fresh);

}  // namespace ewa::train
