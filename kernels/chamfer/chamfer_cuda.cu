// CUDA Chamfer distance (see chamfer.h): one thread per source point scans the target cloud,
// which streams through shared memory in tiles; the strict '<' keeps the lowest index on ties and
// round-to-nearest arithmetic keeps distances identical to the CPU twin. The backward pass is one
// thread per source point with atomicAdd into the target's gradient.
#include "kernels/chamfer/chamfer.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>

namespace ewa::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 512;

__global__ void nearest_kernel(const float* __restrict__ from, int64_t n, const float* __restrict__ to, int64_t m,
                               float* __restrict__ dist, int64_t* __restrict__ idx) {
  __shared__ float tile[kTile * 3];
  const int64_t c = blockIdx.y;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const bool active = i < n;
  const float* p = from + (c * n + (active ? i : 0)) * 3;
  const float x = p[0], y = p[1], z = p[2];
  to += c * m * 3;
  float best = __int_as_float(0x7f800000);  // +inf
  int64_t best_j = 0;
  for (int64_t base = 0; base < m; base += kTile) {
    const int len = static_cast<int>(min(static_cast<int64_t>(kTile), m - base));
    for (int t = threadIdx.x; t < len * 3; t += kThreads) tile[t] = to[base * 3 + t];
    __syncthreads();
    if (active) {
      for (int t = 0; t < len; ++t) {
        const float dx = __fsub_rn(tile[3 * t], x), dy = __fsub_rn(tile[3 * t + 1], y), dz = __fsub_rn(tile[3 * t + 2], z);
        const float d = __fadd_rn(__fadd_rn(__fmul_rn(dx, dx), __fmul_rn(dy, dy)), __fmul_rn(dz, dz));
        if (d < best) {
          best = d;
          best_j = base + t;
        }
      }
    }
    __syncthreads();
  }
  if (!active) return;
  dist[c * n + i] = best;
  idx[c * n + i] = best_j;
}

__global__ void backward_kernel(const float* __restrict__ from, int64_t n, const float* __restrict__ to, int64_t m,
                                const int64_t* __restrict__ idx, const float* __restrict__ grad_dist,
                                float* __restrict__ grad_from, float* __restrict__ grad_to) {
  const int64_t c = blockIdx.y;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= n) return;
  const int64_t j = idx[c * n + i];
  const float g = 2.0f * grad_dist[c * n + i];
  for (int k = 0; k < 3; ++k) {
    const float v = g * (from[(c * n + i) * 3 + k] - to[(c * m + j) * 3 + k]);
    atomicAdd(grad_from + (c * n + i) * 3 + k, v);  // the other direction also adds here
    atomicAdd(grad_to + (c * m + j) * 3 + k, -v);
  }
}

dim3 grid_for(int64_t rows, int64_t batch) {
  return dim3(static_cast<unsigned>((rows + kThreads - 1) / kThreads), static_cast<unsigned>(batch));
}

}  // namespace

void chamfer_nearest_cuda(const at::Tensor& a, const at::Tensor& b, at::Tensor& dist_a, at::Tensor& idx_a,
                          at::Tensor& dist_b, at::Tensor& idx_b) {
  const int64_t B = a.size(0), N = a.size(1), M = b.size(1);
  if (B == 0) return;
  const c10::cuda::CUDAGuard device_guard(a.device());  // launch on the tensors' GPU
  auto stream = at::cuda::getCurrentCUDAStream();
  nearest_kernel<<<grid_for(N, B), kThreads, 0, stream>>>(a.data_ptr<float>(), N, b.data_ptr<float>(), M,
                                                          dist_a.data_ptr<float>(), idx_a.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  nearest_kernel<<<grid_for(M, B), kThreads, 0, stream>>>(b.data_ptr<float>(), M, a.data_ptr<float>(), N,
                                                          dist_b.data_ptr<float>(), idx_b.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void chamfer_backward_cuda(const at::Tensor& a, const at::Tensor& b, const at::Tensor& idx_a, const at::Tensor& idx_b,
                           const at::Tensor& grad_dist_a, const at::Tensor& grad_dist_b, at::Tensor& grad_a,
                           at::Tensor& grad_b) {
  const int64_t B = a.size(0), N = a.size(1), M = b.size(1);
  if (B == 0) return;
  const c10::cuda::CUDAGuard device_guard(a.device());  // launch on the tensors' GPU
  auto stream = at::cuda::getCurrentCUDAStream();
  backward_kernel<<<grid_for(N, B), kThreads, 0, stream>>>(a.data_ptr<float>(), N, b.data_ptr<float>(), M,
                                                           idx_a.data_ptr<int64_t>(), grad_dist_a.data_ptr<float>(),
                                                           grad_a.data_ptr<float>(), grad_b.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  backward_kernel<<<grid_for(M, B), kThreads, 0, stream>>>(b.data_ptr<float>(), M, a.data_ptr<float>(), N,
                                                           idx_b.data_ptr<int64_t>(), grad_dist_b.data_ptr<float>(),
                                                           grad_b.data_ptr<float>(), grad_a.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace ewa::kernels
