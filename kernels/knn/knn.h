// knn: the K nearest points of every query point (brute force, exact).
//
//   query:  [B, S, 3] float32
//   points: [B, N, 3] float32 (same device), 1 <= K <= N
// Returns {indices int64 [B, S, K], squared distances float32 [B, S, K]}, each row sorted by
// increasing distance, ties by increasing index. A query that is itself in `points` finds itself
// first (distance 0). CUDA supports K <= 128.
#pragma once

#include <cstdint>
#include <tuple>

#include <ATen/core/Tensor.h>

namespace ewa::kernels {

std::tuple<at::Tensor, at::Tensor> knn(const at::Tensor& query, const at::Tensor& points, int64_t K);

// CPU twin for one cloud: q [s, 3], p [n, 3]; writes idx and dist [s, k].
void knn_cpu(const float* q, int64_t s, const float* p, int64_t n, int64_t k, int64_t* idx, float* dist);
// knn() itself runs the fast CPU paths of knn_fast.h (SIMD brute force for small clouds, a voxel
// grid for large ones), which give the same answers.
#ifdef EWA_WITH_CUDA
constexpr int64_t kKnnCudaMaxK = 128;
void knn_cuda(const at::Tensor& query, const at::Tensor& points, at::Tensor& idx, at::Tensor& dist);
#endif

}  // namespace ewa::kernels
