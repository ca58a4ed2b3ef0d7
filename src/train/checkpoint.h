// Checkpoints: one file written atomically (temporary file, fsync, rename), in torch's
// pickle/zip format, so Python's torch.load reads it as a dict:
//   "format": "ewa-checkpoint-1", "kind": "train" | "dense",
//   "config": resolved config (JSON text), "step", "epoch" (completed epochs),
//   "model": {parameter or buffer name: tensor}  (timm-style names, e.g. blocks.1.mlp.w1),
//   "optimizer": bytes of torch's optimizer archive (train checkpoints),
//   "rng_cpu": torch's default CPU generator state (train checkpoints),
//   "rng_cuda": the default CUDA generator state of every visible GPU (train checkpoints
//     written where CUDA is available), so a GPU run resumes with the same random stream,
//   "class_names": the dataset's class names, in label order (when known),
//   "progress": JSON text of where a train checkpoint stands within its epoch (absent = at an epoch
//     end): "position" (batches of epoch `epoch` already done), the epoch's running sums
//     ("epoch_loss", "epoch_correct", "epoch_seen", "has_accuracy") and the best validation score
//     so far ("best_val", "best_val_epoch"), so a run resumed mid-epoch continues exactly.
#pragma once
#include <optional>
#include <string>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

namespace ewa::train {

struct Checkpoint {
  std::string kind = "train";
  nlohmann::json config;
  int64_t step = 0, epoch = 0;
  torch::OrderedDict<std::string, torch::Tensor> model;
  std::string optimizer;                // serialized optimizer archive; empty when absent
  std::optional<torch::Tensor> rng_cpu;
  std::vector<torch::Tensor> rng_cuda;   // one state per GPU; empty without CUDA
  std::vector<std::string> class_names;  // empty when unknown (older checkpoints)
  nlohmann::json progress = nlohmann::json::object();  // see above; empty when absent
};

// Parameters and buffers of `model` by name, detached, on the CPU.
torch::OrderedDict<std::string, torch::Tensor> state_dict(torch::nn::Module& model);

// Captures model, optimizer and RNG state.
Checkpoint make_checkpoint(torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                           const nlohmann::json& config, int64_t step, int64_t epoch);

// Writes atomically: on failure `path` keeps its old content and ewa::Error names the path.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);

// Reads a checkpoint; ewa::Error names the path when it is missing or not an ewa checkpoint.
Checkpoint read_checkpoint(const std::string& path);

// Copies ckpt.model into `model`. Every parameter and buffer must be present with the same
// shape and the checkpoint must hold nothing else; otherwise ewa::Error lists the differences.
void load_model_state(torch::nn::Module& model, const Checkpoint& ckpt, const std::string& path);

// Restores optimizer state and the CPU generator.
void load_training_state(torch::optim::Optimizer& optimizer, const Checkpoint& ckpt, const std::string& path);

}  // namespace ewa::train
