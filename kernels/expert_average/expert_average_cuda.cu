// CUDA kernel for expert_average (see expert_average.h): one thread per element column k,
// which reads the N experts' values once into registers-sized passes: mean, then update.
#include "kernels/expert_average/expert_average.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace ewa::kernels {
namespace {

template <typename T>
__global__ void expert_average_kernel(T* __restrict__ data, int64_t n_experts, int64_t inner, T lambda) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < inner; k += stride) {
    T sum = T(0);
    for (int64_t i = 0; i < n_experts; ++i) sum += data[i * inner + k];
    const T mean = sum / static_cast<T>(n_experts);
    for (int64_t i = 0; i < n_experts; ++i) {
      T& w = data[i * inner + k];
      w = lambda == T(1) ? mean : w - lambda * (w - mean);  // lambda 1: exactly the mean, as the CPU twin
    }
  }
}

}  // namespace

void expert_average_cuda(at::Tensor& experts, double lambda) {
  const int64_t n = experts.size(0);
  const int64_t inner = experts.numel() / n;
  if (inner == 0) return;
  const c10::cuda::CUDAGuard device_guard(experts.device());  // launch on the tensor's GPU, not the current one
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((inner + kThreads - 1) / kThreads, 65535);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  if (experts.scalar_type() == at::kFloat) {
    expert_average_kernel<float><<<blocks, kThreads, 0, stream>>>(experts.data_ptr<float>(), n, inner,
                                                                  static_cast<float>(lambda));
  } else if (experts.scalar_type() == at::kDouble) {
    expert_average_kernel<double><<<blocks, kThreads, 0, stream>>>(experts.data_ptr<double>(), n, inner, lambda);
  } else {
    TORCH_CHECK(false, "expert_average_: argument 'experts' must be float32 or float64, got ",
                experts.scalar_type());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace ewa::kernels
