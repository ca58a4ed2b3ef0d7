// CUDA farthest_point_sample (see fps.h): one block per cloud; every thread keeps the nearest-
// sample distance of a strided slice of the points in global scratch memory, and a shared-memory
// argmax reduction picks the next sample. Products and sums use explicit round-to-nearest
// intrinsics so no FMA contraction makes results differ from the CPU twin.
#include "kernels/fps/fps.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>

namespace ewa::kernels {
namespace {

constexpr int kThreads = 512;

__device__ __forceinline__ float sq_dist(float ax, float ay, float az, float bx, float by, float bz) {
  const float dx = __fsub_rn(ax, bx), dy = __fsub_rn(ay, by), dz = __fsub_rn(az, bz);
  return __fadd_rn(__fadd_rn(__fmul_rn(dx, dx), __fmul_rn(dy, dy)), __fmul_rn(dz, dz));
}

// pointnet2: FpsRule::Pointnet2 (skip points near the origin; the launch uses its thread count,
// and ties keep the lower position in the fold, whatever the point index).
__global__ void fps_kernel(const float* __restrict__ points, int64_t n, int64_t s, const int64_t* __restrict__ starts,
                           float* __restrict__ nearest, int64_t* __restrict__ out, bool pointnet2) {
  __shared__ float best_d[kThreads];
  __shared__ int64_t best_i[kThreads];
  const int64_t b = blockIdx.x;
  const int tid = threadIdx.x;
  points += b * n * 3;
  nearest += b * n;
  out += b * s;
  const int threads = blockDim.x;
  for (int64_t j = tid; j < n; j += threads) nearest[j] = pointnet2 ? 1e10f : INFINITY;
  int64_t current = starts[b];
  if (tid == 0) out[0] = current;
  __syncthreads();
  for (int64_t k = 1; k < s; ++k) {
    const float cx = points[current * 3], cy = points[current * 3 + 1], cz = points[current * 3 + 2];
    float bd = -1.0f;
    int64_t bi = 0;
    for (int64_t j = tid; j < n; j += threads) {
      const float px = points[j * 3], py = points[j * 3 + 1], pz = points[j * 3 + 2];
      if (pointnet2 && __fadd_rn(__fadd_rn(__fmul_rn(px, px), __fmul_rn(py, py)), __fmul_rn(pz, pz)) <= 1e-3) continue;
      const float d = fminf(sq_dist(px, py, pz, cx, cy, cz), nearest[j]);
      nearest[j] = d;
      if (d > bd) {
        bd = d;
        bi = j;
      }
    }
    best_d[tid] = bd;
    best_i[tid] = bi;
    __syncthreads();
    for (int stride = threads / 2; stride > 0; stride >>= 1) {
      if (tid < stride) {
        const float od = best_d[tid + stride];
        const int64_t oi = best_i[tid + stride];
        if (od > best_d[tid] || (!pointnet2 && od == best_d[tid] && oi < best_i[tid])) {
          best_d[tid] = od;
          best_i[tid] = oi;
        }
      }
      __syncthreads();
    }
    current = best_i[0];
    if (tid == 0) out[k] = current;
    __syncthreads();
  }
}

}  // namespace

void farthest_point_sample_cuda(const at::Tensor& points, const at::Tensor& starts, at::Tensor& out, FpsRule rule) {
  const c10::cuda::CUDAGuard device_guard(points.device());  // launch on the tensors' GPU
  const int64_t B = points.size(0), N = points.size(1), S = out.size(1);
  if (B == 0) return;
  auto nearest = at::empty({B, N}, points.options());
  const bool pointnet2 = rule == FpsRule::Pointnet2;
  const int threads = pointnet2 ? static_cast<int>(pointnet2_fps_threads(N)) : kThreads;
  fps_kernel<<<B, threads, 0, at::cuda::getCurrentCUDAStream()>>>(points.data_ptr<float>(), N, S, starts.data_ptr<int64_t>(),
                                                                nearest.data_ptr<float>(), out.data_ptr<int64_t>(), pointnet2);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace ewa::kernels
