// RupMoE: Mixture of Experts with random uniform partition routing (docs/method.md).
//
// Training: per forward pass all B*T tokens (class token included) are shuffled by a fresh
// random permutation (from the layer's own generator once seed_partitions gave it one, as the
// training loop does every step; else torch's default generator) and split into
// N contiguous chunks whose sizes differ by at most one; expert i processes chunk i. Compute
// per token equals the dense FFN. Evaluation: the FFN with the experts' mean weights, identical
// to the converted dense model.
#pragma once
#include <optional>

#include <ATen/core/Generator.h>

#include "moe/experts.h"

namespace ewa::moe {

// Chunk sizes of the partition of m tokens into n experts: the first m % n chunks get one
// token more. Sizes differ by at most one and sum to m.
std::vector<int64_t> rup_chunk_sizes(int64_t m, int64_t n);

class RupMoEImpl : public ExpertsFeedForwardImpl {
 public:
  explicit RupMoEImpl(const ExpertsOptions& options);

  // x [B, T, D] -> [B, T, D].
  torch::Tensor forward(const torch::Tensor& x) override;

  // Training-mode forward with a given partition: `perm` [B*T] int64 is a permutation of the
  // flattened tokens; positions of perm in chunk i (rup_chunk_sizes) go to expert i.
  torch::Tensor forward_partitioned(const torch::Tensor& x, const torch::Tensor& perm) const;

  // The partitions of the coming forward passes from a CPU generator of this seed (the
  // partition stream: a run's dropout and data draws do not depend on whether the model has
  // RupMoE layers).
  void seed_partitions(uint64_t seed);

 private:
  std::optional<at::Generator> generator_;
};
TORCH_MODULE(RupMoE);

}  // namespace ewa::moe
