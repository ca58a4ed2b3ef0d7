// Reading and writing weights in the formats users bring: one reader entry point for training
// (--init / finetune.init), evaluation and conversion.
//   .pt .pth .ckpt .bin  torch.save zip archives (Python's torch.save, and ewa's own checkpoints,
//                        which are the same format); tensors saved on a GPU are loaded on the CPU.
//   .safetensors         read natively (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL).
// For a torch.save file the state dict is found at the top level under "model" (ewa), "base_model"
// (Point-MAE / Point-BERT), "state_dict" or "model_state", or the top level itself when it maps
// names to tensors.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

namespace ewa::io {

struct StateDict {
  torch::OrderedDict<std::string, torch::Tensor> tensors;  // on the CPU, in file order
  std::string origin;        // e.g. "ewa checkpoint (kind train)", "torch.save dict, key 'base_model'", "safetensors"
  nlohmann::json config;     // ewa checkpoints: their resolved config; null otherwise
  int64_t step = 0, epoch = 0;  // ewa checkpoints: optimizer steps and completed epochs
  std::vector<std::string> class_names;  // ewa checkpoints that carry them; empty otherwise
};

// Throws ewa::Error naming the file for a missing, truncated or unrecognised file.
StateDict read_state_dict(const std::string& path);

// torch.save-compatible zip: {key: {name: tensor}, "epoch": epoch} (key "base_model" as Point-MAE /
// Point-BERT's classifiers, "model_state_dict" as Point-MAE's segmentation checkpoints); Python's
// torch.load reads it and `model.load_state_dict(ckpt[key])` works. Written atomically.
void write_torch_state_dict(const std::string& path, const torch::OrderedDict<std::string, torch::Tensor>& tensors,
                            int64_t epoch = 0, const std::string& key = "base_model");

// .safetensors with optional string metadata, written atomically.
void write_safetensors(const std::string& path, const torch::OrderedDict<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
torch::OrderedDict<std::string, torch::Tensor> read_safetensors(const std::string& path);

}  // namespace ewa::io
