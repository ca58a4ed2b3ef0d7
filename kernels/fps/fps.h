// farthest_point_sample: iterative farthest point sampling (PointNet++ / Point-MAE centers).
//
//   points: [B, N, 3] float32, CPU or CUDA (any strides; made contiguous internally).
//   S:      number of samples, 1 <= S <= N.
//   start:  index of the first sample in every cloud, 0 <= start < N (default 0, as
//           pointnet2_ops and pytorch3d without random_start_point). farthest_point_sample_seeded
//           draws it uniformly per cloud from a seed instead.
// Returns int64 [B, S] indices into N. Sample k+1 is the point whose squared Euclidean distance
// to the nearest already chosen sample is largest; ties go to the lowest index. With S = N the
// result is a permutation of 0..N-1; duplicate points are chosen last (their distance is 0).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace ewa::kernels {

at::Tensor farthest_point_sample(const at::Tensor& points, int64_t S, int64_t start = 0);
at::Tensor farthest_point_sample_seeded(const at::Tensor& points, int64_t S, uint64_t seed);

// CPU twin for one cloud: xyz [n, 3] row-major, writes s indices to out.
void farthest_point_sample_cpu(const float* xyz, int64_t n, int64_t s, int64_t start, int64_t* out);
#ifdef EWA_WITH_CUDA
// starts: int64 [B] on the device.
void farthest_point_sample_cuda(const at::Tensor& points, const at::Tensor& starts, at::Tensor& out);
#endif

}  // namespace ewa::kernels
