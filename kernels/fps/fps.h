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
//
// FpsRule::Pointnet2 reproduces pointnet2_ops' furthest_point_sample, which Point-MAE and
// Point-BERT group with (start at point 0 always): a point with x^2 + y^2 + z^2 <= 1e-3 (within
// 0.0316 of the origin) is never chosen after the first sample, and ties go the way its block
// reduction resolves them: the points are dealt to T = min(largest power of two <= N, 512)
// threads (point k to thread k mod T), each thread keeps its first best point, and the threads'
// bests are folded pairwise (t with t + T/2, ..., t with t + 1), the lower position winning ties.
// A cloud whose points all lie within that ball gets index 0 for every sample (as the official
// kernel).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace ewa::kernels {

enum class FpsRule { Exact, Pointnet2 };

at::Tensor farthest_point_sample(const at::Tensor& points, int64_t S, int64_t start = 0, FpsRule rule = FpsRule::Exact);
at::Tensor farthest_point_sample_seeded(const at::Tensor& points, int64_t S, uint64_t seed);

// CPU twin for one cloud: xyz [n, 3] row-major, writes s indices to out.
void farthest_point_sample_cpu(const float* xyz, int64_t n, int64_t s, int64_t start, int64_t* out);
// CPU twin of FpsRule::Pointnet2 for one cloud (start 0).
void farthest_point_sample_pointnet2_cpu(const float* xyz, int64_t n, int64_t s, int64_t* out);
// The thread count T of FpsRule::Pointnet2 for a cloud of n points.
int64_t pointnet2_fps_threads(int64_t n);
#ifdef EWA_WITH_CUDA
// starts: int64 [B] on the device.
void farthest_point_sample_cuda(const at::Tensor& points, const at::Tensor& starts, at::Tensor& out, FpsRule rule);
#endif

}  // namespace ewa::kernels
