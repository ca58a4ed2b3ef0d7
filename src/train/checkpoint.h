// Checkpoints of training runs: what goes into one (model, optimizer, generators) and how it is
// put back. The file format and its one reader and writer: io/checkpoint.h.
#pragma once
#include <string>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"

namespace ewa::train {

using io::Checkpoint;
using io::read_checkpoint;
using io::save_checkpoint;

// Parameters and buffers of `model` by name, detached, on the CPU.
torch::OrderedDict<std::string, torch::Tensor> state_dict(torch::nn::Module& model);

// Captures model, optimizer and RNG state.
Checkpoint make_checkpoint(torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                           const nlohmann::json& config, int64_t step, int64_t epoch);

// Copies ckpt.model into `model`. Every parameter and buffer must be present with the same
// shape and the checkpoint must hold nothing else; otherwise ewa::Error lists the differences.
void load_model_state(torch::nn::Module& model, const Checkpoint& ckpt, const std::string& path);

// Restores AdamW's state (its groups' settings, each parameter's step and moments) and the
// generators; ewa::Error naming `path` when the state does not fit the optimizer's parameters.
void load_training_state(torch::optim::AdamW& optimizer, const Checkpoint& ckpt, const std::string& path);

}  // namespace ewa::train
