// group_points: gathers neighbourhoods and expresses them relative to their centers
// (Point-BERT / Point-MAE grouping after FPS + kNN).
//
//   points:  [B, N, C] float32, C >= 3 (xyz first; extra channels such as normals are copied)
//   idx:     [B, S, K] int64 in [0, N), e.g. from knn(centers, points, K); checked on the CPU
//            before the work, asserted inside the CUDA kernel (a device-side assert)
//   centers: [B, S, 3] float32
// Returns [B, S, K, C]: out[b, s, k, c] = points[b, idx[b, s, k], c] - (c < 3 ? centers[b, s, c] : 0).
// No gradient flows (the inputs are data, not parameters).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace ewa::kernels {

at::Tensor group_points(const at::Tensor& points, const at::Tensor& idx, const at::Tensor& centers);

// CPU twin for one cloud: p [n, c], idx [s, k], centers [s, 3] -> out [s, k, c].
void group_points_cpu(const float* p, int64_t n, int64_t c, const int64_t* idx, int64_t s, int64_t k,
                      const float* centers, float* out);
#ifdef EWA_WITH_CUDA
void group_points_cuda(const at::Tensor& points, const at::Tensor& idx, const at::Tensor& centers, at::Tensor& out);
#endif

}  // namespace ewa::kernels
