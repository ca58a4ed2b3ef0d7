// Chamfer distance between two point sets, the reconstruction loss of Point-MAE pretraining.
//
//   a: [B, N, 3] float32, b: [B, M, 3] float32 (same device; CPU or CUDA), N, M >= 1.
//
// chamfer_nearest(a, b) -> {dist_a [B, N], idx_a [B, N] int64, dist_b [B, M], idx_b [B, M]}:
//   dist_a[b, i] = min_j |a[b, i] - b[b, j]|^2 (squared Euclidean), idx_a the j attaining it
//   (lowest j on ties); dist_b, idx_b the same from b to a. No gradient.
// chamfer_distance_l2(a, b) -> scalar = mean(dist_a) + mean(dist_b), means over every element
//   of the batch: Point-MAE's ChamferDistanceL2 (its pretraining loss, "cdl2").
// chamfer_distance_l1(a, b) -> scalar = (mean(sqrt(dist_a)) + mean(sqrt(dist_b))) / 2: Point-MAE's
//   ChamferDistanceL1; distances are clamped at 1e-12 before the square root so that an exact
//   match has a finite gradient (the official code gives NaN there).
// Both are differentiable with respect to a and b: the gradient flows through the chosen nearest
// neighbours (d dist_a[i] / d a_i = 2 (a_i - b_j), d / d b_j = -2 (a_i - b_j), j = idx_a[i]), as in
// the official CUDA extension.
#pragma once

#include <cstdint>
#include <tuple>

#include <ATen/core/Tensor.h>

namespace ewa::kernels {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> chamfer_nearest(const at::Tensor& a, const at::Tensor& b);
at::Tensor chamfer_distance_l2(const at::Tensor& a, const at::Tensor& b);
at::Tensor chamfer_distance_l1(const at::Tensor& a, const at::Tensor& b);

// CPU twins for one cloud pair (row-major xyz):
// nearest: for every point of `from` [n, 3], its nearest point in `to` [m, 3] -> dist [n], idx [n].
void chamfer_nearest_cpu(const float* from, int64_t n, const float* to, int64_t m, float* dist, int64_t* idx);
// backward of one direction: grad_from[i] += 2 g[i] (from_i - to_j), grad_to[j] -= 2 g[i] (from_i - to_j),
// j = idx[i]. grad_from [n, 3] and grad_to [m, 3] are accumulated into.
void chamfer_backward_cpu(const float* from, int64_t n, const float* to, const int64_t* idx, const float* grad_dist,
                          float* grad_from, float* grad_to);
#ifdef EWA_WITH_CUDA
// Both directions: dist_a, idx_a, dist_b, idx_b preallocated [B, N] / [B, M].
void chamfer_nearest_cuda(const at::Tensor& a, const at::Tensor& b, at::Tensor& dist_a, at::Tensor& idx_a,
                          at::Tensor& dist_b, at::Tensor& idx_b);
// grad_a, grad_b zero-initialised [B, N, 3] / [B, M, 3]; accumulates both directions.
void chamfer_backward_cuda(const at::Tensor& a, const at::Tensor& b, const at::Tensor& idx_a, const at::Tensor& idx_b,
                           const at::Tensor& grad_dist_a, const at::Tensor& grad_dist_b, at::Tensor& grad_a,
                           at::Tensor& grad_b);
#endif

}  // namespace ewa::kernels
