// CUDA knn (see knn.h): one thread per query keeps its K best candidates sorted by insertion
// (stable, so equal distances keep increasing index); the points of the cloud stream through
// shared memory in tiles. Explicit round-to-nearest arithmetic keeps distances identical to the
// CPU twin.
#include "kernels/knn/knn.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>

namespace ewa::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = 512;

__global__ void knn_kernel(const float* __restrict__ query, const float* __restrict__ points, int64_t S, int64_t N,
                           int K, int64_t* __restrict__ idx, float* __restrict__ dist) {
  __shared__ float tile[kTile * 3];
  const int64_t b = blockIdx.y;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const bool active = i < S;
  const float* q = query + (b * S + (active ? i : 0)) * 3;
  const float qx = q[0], qy = q[1], qz = q[2];
  points += b * N * 3;
  float best_d[kKnnCudaMaxK];
  int64_t best_i[kKnnCudaMaxK];
  int count = 0;
  for (int64_t base = 0; base < N; base += kTile) {
    const int len = static_cast<int>(min(static_cast<int64_t>(kTile), N - base));
    for (int t = threadIdx.x; t < len * 3; t += kThreads) tile[t] = points[base * 3 + t];
    __syncthreads();
    if (active) {
      for (int t = 0; t < len; ++t) {
        const float dx = __fsub_rn(tile[3 * t], qx), dy = __fsub_rn(tile[3 * t + 1], qy), dz = __fsub_rn(tile[3 * t + 2], qz);
        const float d = __fadd_rn(__fadd_rn(__fmul_rn(dx, dx), __fmul_rn(dy, dy)), __fmul_rn(dz, dz));
        if (count == K && !(d < best_d[K - 1])) continue;
        int pos = count < K ? count++ : K - 1;
        while (pos > 0 && best_d[pos - 1] > d) {
          best_d[pos] = best_d[pos - 1];
          best_i[pos] = best_i[pos - 1];
          --pos;
        }
        best_d[pos] = d;
        best_i[pos] = base + t;
      }
    }
    __syncthreads();
  }
  if (!active) return;
  for (int t = 0; t < K; ++t) {
    idx[(b * S + i) * K + t] = best_i[t];
    dist[(b * S + i) * K + t] = best_d[t];
  }
}

}  // namespace

void knn_cuda(const at::Tensor& query, const at::Tensor& points, at::Tensor& idx, at::Tensor& dist) {
  const c10::cuda::CUDAGuard device_guard(query.device());  // launch on the tensors' GPU
  const int64_t B = query.size(0), S = query.size(1), N = points.size(1);
  const int K = static_cast<int>(idx.size(2));
  if (B == 0 || S == 0) return;
  const dim3 grid(static_cast<unsigned>((S + kThreads - 1) / kThreads), static_cast<unsigned>(B));
  knn_kernel<<<grid, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(query.data_ptr<float>(), points.data_ptr<float>(), S, N,
                                                                     K, idx.data_ptr<int64_t>(), dist.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace ewa::kernels
