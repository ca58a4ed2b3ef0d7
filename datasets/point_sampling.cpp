#include "datasets/point_sampling.h"

#include "common/device_copy.h"
#include "common/error.h"
#include "kernels/fps/fps.h"

namespace ewa::data {

int64_t official_fps_points(int64_t num_points) {
  switch (num_points) {
    case 1024: return 1200;
    case 2048: return 2400;
    case 4096: return 4800;
    case 8192: return 8192;
    default: return 0;
  }
}

int64_t fps_points_of(const DataConfig& cfg) {
  return cfg.fps_points > 0 ? cfg.fps_points : official_fps_points(cfg.num_points);
}

int64_t require_fps_points(const DataConfig& cfg, const std::string& needed_by) {
  const int64_t p = fps_points_of(cfg);
  if (p == 0)
    fail("data.fps_points: " + needed_by + " draws data.num_points = " + std::to_string(cfg.num_points) +
         " of the first fps_points FPS points, and Point-MAE has no value for " + std::to_string(cfg.num_points) +
         " points (1024 -> 1200, 2048 -> 2400, 4096 -> 4800, 8192 -> 8192): set data.fps_points");
  return p;
}

ResampleDraw draw_resample(int64_t B, int64_t S, int64_t num_points, int64_t fps_points) {
  TORCH_CHECK(num_points <= S, "resample: num_points ", num_points, " exceeds the ", S, " stored points");
  ResampleDraw d;
  d.fps_points = std::min(std::max(fps_points, num_points), S);
  if (d.fps_points < S) {
    d.starts = torch::randint(S, {B}, torch::kLong);
    d.columns = torch::randperm(d.fps_points, torch::kLong).narrow(0, 0, num_points);
  } else {
    d.columns = torch::rand({B, S}).argsort(/*dim=*/int64_t(1)).narrow(1, 0, num_points);
  }
  return d;
}

namespace {
// rows [B, K] of per-cloud indices -> clouds [B, K, C]
torch::Tensor gather_points(const torch::Tensor& clouds, const torch::Tensor& rows) {
  return clouds.gather(1, rows.unsqueeze(2).expand({rows.size(0), rows.size(1), clouds.size(2)}));
}
}  // namespace

torch::Tensor apply_resample(const torch::Tensor& clouds, const ResampleDraw& draw) {
  const int64_t B = clouds.size(0), S = clouds.size(1);
  const auto dev = clouds.device();
  if (draw.fps_points >= S) return gather_points(clouds, to_device(draw.columns, dev));
  // Swap point 0 and point starts[b] of each cloud: pointnet2_ops' FPS starts at point 0.
  auto order = torch::arange(S, torch::kLong).unsqueeze(0).repeat({B, 1});
  auto rows = torch::arange(B, torch::kLong);
  order.index_put_({rows, draw.starts}, torch::zeros({B}, torch::kLong));
  order.select(1, 0).copy_(draw.starts);
  order = to_device(order, dev);
  auto swapped = gather_points(clouds, order);
  auto xyz = swapped.narrow(2, 0, 3).contiguous();
  auto fps = kernels::farthest_point_sample(xyz, draw.fps_points, 0, kernels::FpsRule::Pointnet2);
  return gather_points(swapped, fps.index_select(1, to_device(draw.columns, dev)));
}

torch::Tensor resample_for_training(const torch::Tensor& clouds, int64_t num_points, int64_t fps_points) {
  return apply_resample(clouds, draw_resample(clouds.size(0), clouds.size(1), num_points, fps_points));
}

torch::Tensor vote_view(const torch::Tensor& fps_ordered, int64_t num_points, int64_t fps_points) {
  const int64_t p = std::min(std::max(fps_points, num_points), fps_ordered.size(1));
  TORCH_CHECK(num_points <= p, "vote_view: num_points ", num_points, " exceeds the ", p, " FPS points given");
  auto columns = torch::randperm(p, torch::kLong).narrow(0, 0, num_points);
  columns = to_device(columns, fps_ordered.device());
  return fps_ordered.index_select(1, columns);
}

}  // namespace ewa::data
