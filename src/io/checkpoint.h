// The one codec of ewa's checkpoints: a torch.save zip archive (io/torch_pickle.h) holding a dict,
// so Python's torch.load(path) reads it with its default weights_only=True:
//   "format": "ewa-checkpoint-2" ("ewa-checkpoint-1" is still read), "kind": "train" | "dense",
//   "config": resolved config (JSON text), "step", "epoch" (completed epochs),
//   "model": {parameter or buffer name: tensor}  (timm-style names, e.g. blocks.1.mlp.w1),
//   "model_train": with model EMA (train.ema_decay > 0) "model" holds the EMA weights, the ones the
//     run evaluates and every command uses, and this the raw training weights (train checkpoints),
//   "optimizer": AdamW's state as PyTorch's optimizer.state_dict() lays it out (train
//     checkpoints): {"state": {index: {"step": int, "exp_avg": tensor, "exp_avg_sq": tensor}},
//     "param_groups": [{"lr", "betas", "eps", "weight_decay", "amsgrad", "params": [indices]}]},
//     parameters numbered in group order; plain tensors and numbers, read by our own reader only,
//   "rng_cpu": torch's default CPU generator state (train checkpoints),
//   "rng_cuda": the default CUDA generator state of every visible GPU (train checkpoints
//     written where CUDA is available), so a GPU run resumes with the same random stream,
//   "class_names": the dataset's class names, in label order (when known),
//   "progress": JSON text of where a train checkpoint stands within its epoch (absent = at an epoch
//     end): "position" (batches of epoch `epoch` already done), the epoch's running sums
//     ("epoch_loss", "epoch_correct", "epoch_seen", "has_accuracy") and the best scores so far
//     ("best_val", "best_val_epoch", "best_test" ...), so a run resumed mid-epoch continues exactly.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "io/torch_pickle.h"

namespace ewa::io {

struct Checkpoint {
  std::string kind = "train";
  nlohmann::json config;
  int64_t step = 0, epoch = 0;
  torch::OrderedDict<std::string, torch::Tensor> model;
  torch::OrderedDict<std::string, torch::Tensor> model_train;  // model EMA: the raw weights; else empty
  PyRef optimizer;                       // see above; null when absent
  bool legacy_optimizer = false;         // ewa-checkpoint-1: LibTorch's optimizer archive (not read)
  std::optional<torch::Tensor> rng_cpu;
  std::vector<torch::Tensor> rng_cuda;   // one state per GPU; empty without CUDA
  std::vector<std::string> class_names;  // empty when unknown
  nlohmann::json progress = nlohmann::json::object();  // see above; empty when absent
};

// Writes atomically: on failure `path` keeps its old content and ewa::Error names the path.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);

// Decodes a checkpoint from the top-level value of a torch.save file. strict: every required
// field present with its type (ewa::Error naming `path` and the field otherwise); lenient (weights
// import): the fields that are there and well-formed, nothing required but the model.
Checkpoint decode_checkpoint(const PyRef& root, const std::string& path, bool strict);
// True when the top-level value is one of ours (its "format" names an ewa checkpoint).
bool is_ewa_checkpoint(const PyRef& root);

// Reads and strictly decodes; ewa::Error names the path when it is missing or not an ewa checkpoint.
Checkpoint read_checkpoint(const std::string& path);

}  // namespace ewa::io
