// RoutedMoE: the paper's "naive MoE" baseline, a learned top-k gate (Switch for k = 1,
// GShard for k = 2) with expert capacity and a load-balancing auxiliary loss.
//
// Gate: logits = x W_g ([D] -> [N], no bias), p = softmax(logits). Each token picks its top-k
// experts. Capacity C = ceil(capacity_factor * k * tokens / N) per expert; slots are filled in
// token order, all first choices before any second choice (GShard); a choice that finds its
// expert full is dropped (the block's residual carries the token). Output of a token:
// k = 1: p_e * expert_e(x); k = 2: the two experts weighted by p renormalised over the pair.
// Auxiliary loss (Switch): N * sum_i f_i * P_i, f_i = share of tokens whose first choice is i,
// P_i = mean gate probability of i; it equals 1 for a uniform gate.
#pragma once
#include "moe/experts.h"

namespace ewa::moe {

struct RoutingOptions {
  TORCH_ARG(int64_t, top_k) = 1;
  TORCH_ARG(double, capacity_factor) = 1.25;
  TORCH_ARG(double, eval_capacity_factor) = 2.0;
};

class RoutedMoEImpl : public ExpertsFeedForwardImpl {
 public:
  RoutedMoEImpl(const ExpertsOptions& options, const RoutingOptions& routing);

  // x [B, T, D] -> [B, T, D]; stores the auxiliary loss of this pass.
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor aux_loss() const override { return aux_loss_; }

  // Number of token choices dropped for capacity in the last forward pass.
  int64_t last_dropped() const { return last_dropped_.defined() ? last_dropped_.item<int64_t>() : 0; }
  // First-choice expert of every token of the last forward pass: int64, x's shape without D.
  const torch::Tensor& last_choice() const { return last_choice_; }

  int64_t capacity(int64_t tokens) const;

  torch::nn::Linear gate{nullptr};

 private:
  RoutingOptions routing_;
  torch::Tensor aux_loss_;
  torch::Tensor last_dropped_;  // int64 scalar on the layer's device (read back only when asked)
  torch::Tensor last_choice_;
};
TORCH_MODULE(RoutedMoE);

}  // namespace ewa::moe
