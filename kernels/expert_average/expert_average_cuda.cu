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

// Many tensors in one launch: the element columns of every tensor laid end to end; a thread finds
// its tensor by the running column offsets (at most kExpertAverageBatch, passed by value).
struct ManyArgs {
  float* data[kExpertAverageBatch];
  int64_t n_experts[kExpertAverageBatch];
  int64_t inner[kExpertAverageBatch];
  int64_t first_column[kExpertAverageBatch + 1];
  float lambda[kExpertAverageBatch];
  int count;
};

__global__ void expert_average_many_kernel(const ManyArgs args) {
  const int64_t total = args.first_column[args.count];
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < total; c += stride) {
    int t = 0;
    while (c >= args.first_column[t + 1]) ++t;
    float* data = args.data[t];
    const int64_t n = args.n_experts[t], inner = args.inner[t], k = c - args.first_column[t];
    const float lambda = args.lambda[t];
    // The arithmetic of expert_average_kernel<float>, so both give the same bits.
    float sum = 0.f;
    for (int64_t i = 0; i < n; ++i) sum += data[i * inner + k];
    const float mean = sum / static_cast<float>(n);
    for (int64_t i = 0; i < n; ++i) {
      float& w = data[i * inner + k];
      w = lambda == 1.f ? mean : w - lambda * (w - mean);
    }
  }
}

}  // namespace

void expert_average_many_cuda(std::vector<at::Tensor>& experts, const std::vector<double>& lambdas) {
  TORCH_CHECK(!experts.empty() && experts.size() <= size_t(kExpertAverageBatch),
              "expert_average_many_cuda: 1 to ", kExpertAverageBatch, " tensors, got ", experts.size());
  ManyArgs args{};
  args.count = static_cast<int>(experts.size());
  args.first_column[0] = 0;
  for (int t = 0; t < args.count; ++t) {
    auto& e = experts[t];
    TORCH_CHECK(e.is_cuda() && e.scalar_type() == at::kFloat && e.device() == experts[0].device(),
                "expert_average_many_cuda: float32 tensors of one GPU");
    args.data[t] = e.data_ptr<float>();
    args.n_experts[t] = e.size(0);
    args.inner[t] = e.numel() / e.size(0);
    args.lambda[t] = static_cast<float>(lambdas[t]);
    args.first_column[t + 1] = args.first_column[t] + args.inner[t];
  }
  const int64_t total = args.first_column[args.count];
  if (total == 0) return;
  const c10::cuda::CUDAGuard device_guard(experts[0].device());
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, 65535);
  expert_average_many_kernel<<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(args);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

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
