// Experts Weights Averaging (docs/method.md): the averaging step, the share-rate schedule, and the
// collapse of MoE layers into dense FFNs.
#pragma once
#include <torch/torch.h>

#include "config/config.h"
#include "moe/experts.h"

namespace ewa::moe {

// Every MoE layer (RupMoE or RoutedMoE) of `model`, in registration order.
std::vector<std::shared_ptr<ExpertsFeedForwardImpl>> moe_layers(torch::nn::Module& model);

// Seeds the partitions of every RupMoE layer of `model` (layer i: derive_seed(seed, kPartition, i)).
void seed_partitions(torch::nn::Module& model, uint64_t seed);

// lambda = beta * N / (N - 1): the factor by which one step shrinks expert deviations.
double shrink_factor(double beta, int64_t num_experts);

// Eq. (6) on every expert parameter of every MoE layer of `model`, in place, without autograd:
//   W_i <- (1 - beta) W_i + sum_{j != i} beta / (N - 1) W_j.
// Call after optimizer.step(). Throws ewa::Error if beta is outside [0, (N-1)/N].
// Returns the number of MoE layers averaged.
int64_t ewa_average(torch::nn::Module& model, double beta);

// Share rate beta at optimizer step `step` (counted from 1) of a run of `total_steps`:
// constant, or a linear / cosine ramp from 0 to share_rate over ramp_steps (0 = total_steps);
// 0 after until_step (Early EWA) and whenever EWA is disabled.
double share_rate_at(const EwaConfig& cfg, int64_t step, int64_t total_steps);

// The dense counterpart of a MoE model's parameters: every MoE layer at path P becomes a dense
// Mlp with P.fc1.weight = mean_i w1[i], P.fc1.bias = mean_i b1[i], P.fc2.* likewise; a routed
// layer's gate is dropped; everything else is copied. Keys and shapes are those of the same
// model built with moe.kind = "dense".
torch::OrderedDict<std::string, torch::Tensor> collapse_to_dense(torch::nn::Module& model);

}  // namespace ewa::moe
