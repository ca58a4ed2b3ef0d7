// Argument checks and dispatch for group_points (see group.h).
#include "kernels/group/group.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace ewa::kernels {

at::Tensor group_points(const at::Tensor& points, const at::Tensor& idx, const at::Tensor& centers) {
  TORCH_CHECK(points.defined() && points.dim() == 3 && points.size(2) >= 3,
              "group_points: argument 'points' must be [B, N, C] with C >= 3, got ", points.sizes());
  TORCH_CHECK(idx.defined() && idx.dim() == 3 && idx.size(0) == points.size(0),
              "group_points: argument 'idx' must be [B, S, K] with the batch of 'points', got ", idx.sizes());
  TORCH_CHECK(centers.defined() && centers.dim() == 3 && centers.size(0) == idx.size(0) && centers.size(1) == idx.size(1) &&
                  centers.size(2) == 3,
              "group_points: argument 'centers' must be [B, S, 3] matching 'idx', got ", centers.sizes());
  TORCH_CHECK(points.scalar_type() == at::kFloat && centers.scalar_type() == at::kFloat,
              "group_points: 'points' and 'centers' must be float32");
  TORCH_CHECK(idx.scalar_type() == at::kLong, "group_points: argument 'idx' must be int64");
  TORCH_CHECK(points.device() == idx.device() && points.device() == centers.device(),
              "group_points: arguments are on different devices");
  const int64_t B = points.size(0), N = points.size(1), C = points.size(2), S = idx.size(1), K = idx.size(2);
  // On the CPU the indices are checked here; on a GPU the kernel asserts them (reading them back
  // first would stall the host on every training step).
  if (idx.numel() > 0 && !idx.is_cuda()) {
    TORCH_CHECK(idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < N,
                "group_points: argument 'idx' has indices outside [0, N = ", N, ")");
  }
  auto out = at::empty({B, S, K, C}, points.options());
  auto p = points.contiguous(), i = idx.contiguous(), c = centers.contiguous();
  if (points.is_cuda()) {
#ifdef EWA_WITH_CUDA
    group_points_cuda(p, i, c, out);
    return out;
#else
    TORCH_CHECK(false, "group_points: ewa was built without CUDA; got a CUDA tensor");
#endif
  }
  const float* pb = p.data_ptr<float>();
  const int64_t* ib = i.data_ptr<int64_t>();
  const float* cb = c.data_ptr<float>();
  float* ob = out.data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      group_points_cpu(pb + b * N * C, N, C, ib + b * S * K, S, K, cb + b * S * 3, ob + b * S * K * C);
  });
  return out;
}

}  // namespace ewa::kernels
