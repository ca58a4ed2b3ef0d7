// Argument checks and dispatch for farthest_point_sample (see fps.h).
#include "kernels/fps/fps.h"

#include "kernels/fps/fps_fast.h"

#include <algorithm>
#include <random>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace ewa::kernels {
namespace {

void check_points(const at::Tensor& points, int64_t S) {
  TORCH_CHECK(points.defined() && points.dim() == 3 && points.size(2) == 3,
              "farthest_point_sample: argument 'points' must be [B, N, 3], got ", points.sizes());
  TORCH_CHECK(points.scalar_type() == at::kFloat, "farthest_point_sample: argument 'points' must be float32, got ",
              points.scalar_type());
  TORCH_CHECK(S >= 1 && S <= points.size(1), "farthest_point_sample: S must be in [1, N = ", points.size(1), "], got ", S);
}

at::Tensor run(const at::Tensor& points, int64_t S, const at::Tensor& starts_cpu, FpsRule rule = FpsRule::Exact) {
  const int64_t B = points.size(0), N = points.size(1);
  auto out = at::empty({B, S}, points.options().dtype(at::kLong));
  if (points.is_cuda()) {
#ifdef EWA_WITH_CUDA
    auto p = points.contiguous();
    // Page-locked and asynchronous: a copy from pageable memory would wait for the GPU's queue.
    farthest_point_sample_cuda(p, starts_cpu.pin_memory().to(points.device(), /*non_blocking=*/true), out, rule);
    return out;
#else
    TORCH_CHECK(false, "farthest_point_sample: ewa was built without CUDA; got a CUDA tensor");
#endif
  }
  auto p = points.contiguous();
  const float* base = p.data_ptr<float>();
  int64_t* o = out.data_ptr<int64_t>();
  const int64_t* st = starts_cpu.data_ptr<int64_t>();
  // Clouds in parallel; a batch smaller than the thread count gives each cloud its share of the
  // threads (one large cloud uses every core).
  const int64_t threads = at::get_num_threads();
  const int per_cloud = static_cast<int>(std::max<int64_t>(1, threads / B));
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      farthest_point_sample_fast(base + b * N * 3, N, S, st[b], rule == FpsRule::Pointnet2, per_cloud, o + b * S);
  });
  return out;
}

}  // namespace

at::Tensor farthest_point_sample(const at::Tensor& points, int64_t S, int64_t start, FpsRule rule) {
  check_points(points, S);
  TORCH_CHECK(start >= 0 && start < points.size(1), "farthest_point_sample: start must be in [0, N), got ", start);
  TORCH_CHECK(rule == FpsRule::Exact || start == 0, "farthest_point_sample: FpsRule::Pointnet2 always starts at point 0");
  return run(points, S, at::full({points.size(0)}, start, at::kLong), rule);
}

at::Tensor farthest_point_sample_seeded(const at::Tensor& points, int64_t S, uint64_t seed) {
  check_points(points, S);
  const int64_t B = points.size(0), N = points.size(1);
  auto starts = at::empty({B}, at::kLong);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, N - 1);
  int64_t* st = starts.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) st[b] = pick(rng);
  return run(points, S, starts);
}

}  // namespace ewa::kernels
