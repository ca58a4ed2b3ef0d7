// CUDA group_points (see group.h): one thread per output element.
#include "kernels/group/group.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>

namespace ewa::kernels {
namespace {

__global__ void group_kernel(const float* __restrict__ points, const int64_t* __restrict__ idx,
                             const float* __restrict__ centers, int64_t N, int64_t C, int64_t S, int64_t K, int64_t total,
                             float* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total; e += stride) {
    const int64_t ch = e % C;
    const int64_t row = e / C;            // (b, s, k) flattened
    const int64_t bs = row / K;           // (b, s) flattened
    const int64_t b = bs / S;
    const int64_t i = idx[row];
    CUDA_KERNEL_ASSERT(i >= 0 && i < N && "group_points: argument 'idx' has indices outside [0, N)");
    const float v = points[(b * N + i) * C + ch];
    out[e] = ch < 3 ? v - centers[bs * 3 + ch] : v;
  }
}

}  // namespace

void group_points_cuda(const at::Tensor& points, const at::Tensor& idx, const at::Tensor& centers, at::Tensor& out) {
  const c10::cuda::CUDAGuard device_guard(points.device());  // launch on the tensors' GPU
  const int64_t total = out.numel();
  if (total == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, 65535);
  group_kernel<<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      points.data_ptr<float>(), idx.data_ptr<int64_t>(), centers.data_ptr<float>(), points.size(1), points.size(2),
      idx.size(1), idx.size(2), total, out.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace ewa::kernels
