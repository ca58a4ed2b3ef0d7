// Argument checks and device dispatch for expert_average (see expert_average.h).
#include "kernels/expert_average/expert_average.h"

#include <c10/core/TensorImpl.h>
#include <c10/util/Exception.h>

namespace ewa::kernels {

void expert_average_(at::Tensor& experts, double lambda) {
  TORCH_CHECK(experts.defined(), "expert_average_: argument 'experts' is undefined");
  TORCH_CHECK(experts.dim() >= 1 && experts.size(0) >= 2,
              "expert_average_: argument 'experts' must be [N, ...] with N >= 2, got ", experts.sizes());
  TORCH_CHECK(experts.is_contiguous(), "expert_average_: argument 'experts' must be contiguous");
  TORCH_CHECK(lambda >= 0.0 && lambda <= 1.0, "expert_average_: lambda must be in [0, 1], got ", lambda);
  const int64_t n = experts.size(0);
  const int64_t inner = experts.numel() / n;
  // As every in-place op: a graph that saved the old values must not backpropagate through them.
  experts.unsafeGetTensorImpl()->bump_version();
  if (experts.is_cuda()) {
#ifdef EWA_WITH_CUDA
    expert_average_cuda(experts, lambda);
    return;
#else
    TORCH_CHECK(false, "expert_average_: ewa was built without CUDA; got a CUDA tensor");
#endif
  }
  TORCH_CHECK(experts.device().is_cpu(), "expert_average_: unsupported device ", experts.device());
  switch (experts.scalar_type()) {
    case at::kFloat:
      expert_average_cpu<float>(experts.data_ptr<float>(), n, inner, static_cast<float>(lambda));
      break;
    case at::kDouble:
      expert_average_cpu<double>(experts.data_ptr<double>(), n, inner, lambda);
      break;
    default:
      TORCH_CHECK(false, "expert_average_: argument 'experts' must be float32 or float64, got ",
                  experts.scalar_type());
  }
}

}  // namespace ewa::kernels
