// expert_average: the Experts Weights Averaging update (docs/method.md; the paper's Eq. 6), fused and in place.
//
//   experts: [N, ...] floating tensor, N >= 2 stacked copies of one parameter (one per expert).
//   lambda:  shrink factor in [0, 1]; with share rate beta, lambda = beta * N / (N - 1).
//
// For every element position k, with M_k = mean_i experts[i, k]:
//   experts[i, k] <- experts[i, k] - lambda * (experts[i, k] - M_k)
// which equals Eq. (6): W_i <- (1 - beta) W_i + sum_{j != i} beta / (N - 1) W_j.
// The expert mean is unchanged; every deviation from it shrinks by (1 - lambda); lambda = 1
// (beta = (N-1)/N) sets every expert to exactly the mean. The update writes through raw
// pointers, so it bumps the tensor's version counter as torch's in-place ops do: autograd then
// refuses a backward through a graph that saved the old values.
//
// CPU and CUDA tensors (float32 or float64, contiguous) are accepted; a CUDA tensor in a build
// without CUDA fails at call time with "built without CUDA".
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace ewa::kernels {

void expert_average_(at::Tensor& experts, double lambda);

// The same update on many tensors at once (every expert parameter of every EWA layer of a
// model, each with its own N and lambda): on a GPU the float32 tensors of one device take one
// kernel launch (up to kExpertAverageBatch tensors per launch) instead of one per tensor; on the
// CPU each goes through the CPU twin. Every tensor is checked as expert_average_ checks it,
// before any is changed. Results equal expert_average_ on each tensor, bit for bit.
void expert_average_many_(std::vector<at::Tensor>& experts, const std::vector<double>& lambdas);
constexpr int kExpertAverageBatch = 64;

// The twins, over a contiguous row-major [n_experts, inner] buffer.
template <typename T>
void expert_average_cpu(T* data, int64_t n_experts, int64_t inner, T lambda);
#ifdef EWA_WITH_CUDA
void expert_average_cuda(at::Tensor& experts, double lambda);
// float32 CUDA tensors of one device, at most kExpertAverageBatch of them.
void expert_average_many_cuda(std::vector<at::Tensor>& experts, const std::vector<double>& lambdas);
#endif

}  // namespace ewa::kernels
