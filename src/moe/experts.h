// N expert FFNs held as stacked parameters and evaluated with batched matmuls over experts.
// Shared by RupMoE and RoutedMoE; EWA (ewa.h) and the collapse to a dense Mlp work on this
// base class, so they serve both MoE kinds.
#pragma once
#include <torch/torch.h>

#include "nn/layers.h"

namespace ewa::moe {

struct ExpertsOptions {
  ExpertsOptions(int64_t dim, int64_t hidden, int64_t num_experts) : dim_(dim), hidden_(hidden), num_experts_(num_experts) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, hidden);
  TORCH_ARG(int64_t, num_experts);
  TORCH_ARG(double, drop) = 0.0;
};

class ExpertsFeedForwardImpl : public nn::FeedForwardImpl {
 public:
  explicit ExpertsFeedForwardImpl(const ExpertsOptions& options);

  // Expert i is fc2_i(GELU(fc1_i(x))) with fc1_i.weight = w1[i] and so on:
  torch::Tensor w1;  // [N, hidden, dim]
  torch::Tensor b1;  // [N, hidden]
  torch::Tensor w2;  // [N, dim, hidden]
  torch::Tensor b2;  // [N, dim]

  // Expert by expert, each of w1/b1 and w2/b2 as the Linear layer it stands for.
  void init_stacked_(nn::InitRule rule) override;

  int64_t num_experts() const { return options_.num_experts(); }
  const ExpertsOptions& options() const { return options_; }

  // The parameters that EWA averages: every parameter of the experts, weights and biases.
  std::vector<torch::Tensor> expert_parameters() const { return {w1, b1, w2, b2}; }

  // All experts at once: xe [N, C, dim] (C tokens per expert) -> [N, C, dim].
  torch::Tensor experts_forward(const torch::Tensor& xe) const;

  // The dense FFN whose weights are the expert means, on x [..., dim]. This is the converted
  // model (docs/method.md, collapse).
  torch::Tensor mean_forward(const torch::Tensor& x) const;

 protected:
  ExpertsOptions options_;
};

}  // namespace ewa::moe
