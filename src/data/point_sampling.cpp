#include "data/point_sampling.h"

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

// A cloud with fewer than `needed` points (data.num_points) is a one-line error naming it.
void require_points(int64_t points, int64_t needed, const std::string& what) {
  if (points < needed)
    fail(what + ": has " + std::to_string(points) + " points, fewer than data.num_points = " + std::to_string(needed));
}

namespace {

// The cloud normalised into the unit sphere under data.normalize, else as it is once its
// coordinates are checked finite.
torch::Tensor normalized_or_checked(const torch::Tensor& c, const DataConfig& cfg, const std::string& what) {
  if (cfg.normalize) return normalize_unit_sphere(c, what);
  if (!torch::isfinite(c).all().item<bool>()) fail(what + ": contains NaN or infinite coordinates");
  return c.contiguous();
}

}  // namespace

// A stored training cloud of `keep` points under data.pipeline (see point_datasets.h): fixed =
// normalised, the first `keep` of its FPS order; resample = reduced to `keep` points by FPS from
// a seeded random start when it has more (the official .dat preprocessing), then normalised.
torch::Tensor train_cloud(const torch::Tensor& cloud, const DataConfig& cfg, int64_t keep, uint64_t seed,
                          const std::string& what) {
  if (cfg.pipeline == "fixed" && cfg.normalize) return prepare_cloud(cloud, keep, what);
  require_points(cloud.size(0), keep, what);
  auto c = cloud.to(torch::kFloat);
  if (c.size(0) > keep || cfg.pipeline == "fixed") {
    auto xyz = c.narrow(1, 0, 3).unsqueeze(0).contiguous();
    c = c.index_select(0, cfg.pipeline == "fixed" ? kernels::farthest_point_sample(xyz, keep)[0]
                                                  : kernels::farthest_point_sample_seeded(xyz, keep, seed)[0]);
  }
  return normalized_or_checked(c, cfg, what);
}

int64_t mesh_sample_points(const DataConfig& cfg) { return std::max<int64_t>(cfg.num_points * 2, 2048); }

torch::Tensor normalize_unit_sphere(const torch::Tensor& cloud, const std::string& what) {
  if (cloud.dim() != 2 || cloud.size(0) == 0 || cloud.size(1) < 3) fail(what + ": empty point cloud (no points)");
  if (!torch::isfinite(cloud).all().item<bool>()) fail(what + ": contains NaN or infinite coordinates");
  auto out = cloud.to(torch::kFloat).clone();
  auto xyz = out.narrow(1, 0, 3);
  xyz.sub_(xyz.mean(0, true));
  const double radius = xyz.norm(2, 1).max().item<double>();
  if (!(radius > 0)) fail(what + ": degenerate point cloud (all points coincide)");
  xyz.div_(radius);
  return out;
}

torch::Tensor prepare_cloud(const torch::Tensor& cloud, int64_t keep, const std::string& what) {
  auto c = normalize_unit_sphere(cloud, what);
  require_points(c.size(0), keep, what);
  auto order = kernels::farthest_point_sample(c.narrow(1, 0, 3).unsqueeze(0).contiguous(), keep)[0];
  return c.index_select(0, order);
}

int64_t eval_points(const DataConfig& cfg) { return std::max(cfg.num_points, fps_points_of(cfg)); }

torch::Tensor fps_prefix(const torch::Tensor& clouds, int64_t keep) {
  keep = std::min(keep, clouds.size(1));
  auto order = kernels::farthest_point_sample(clouds.narrow(2, 0, 3).contiguous(), keep, 0, kernels::FpsRule::Pointnet2);
  return clouds.gather(1, order.unsqueeze(2).expand({clouds.size(0), keep, clouds.size(2)}));
}

torch::Tensor eval_cloud(const torch::Tensor& cloud, const DataConfig& cfg, int64_t keep, uint64_t seed, const std::string& what) {
  require_points(cloud.size(0), cfg.num_points, what);
  if (cfg.pipeline == "fixed") return train_cloud(cloud, cfg, std::min(keep, cloud.size(0)), seed, what);
  // As the official test clouds: reduced to data.source_points by FPS from a random start when
  // larger (the .dat files, whose point 0 is that start), else in the file's order; normalised;
  // then the first `keep` of pointnet2_ops' FPS from point 0 (validate()'s misc.fps).
  const auto c = cfg.source_points > 0 && cloud.size(0) > cfg.source_points
                     ? train_cloud(cloud, cfg, cfg.source_points, seed, what)
                     : normalized_or_checked(cloud.to(torch::kFloat), cfg, what);
  keep = std::min(keep, c.size(0));
  auto order = kernels::farthest_point_sample(c.narrow(1, 0, 3).unsqueeze(0).contiguous(), keep, 0,
                                              kernels::FpsRule::Pointnet2)[0];
  return c.index_select(0, order);
}

torch::Tensor augment_points(const torch::Tensor& points, const DataConfig& cfg) {
  const int64_t B = points.size(0);
  const auto dev = points.device();
  auto out = points.clone();
  auto xyz = out.narrow(2, 0, 3);
  if (cfg.rotate_up) {
    auto theta = torch::rand({B}) * (2 * M_PI);
    auto c = torch::cos(theta), s = torch::sin(theta);
    auto z = torch::zeros({B}), o = torch::ones({B});
    // rotation about y: x' = c x + s z, z' = -s x + c z
    auto rot = to_device(torch::stack({c, z, -s, z, o, z, s, z, c}, 1).view({B, 3, 3}), dev);
    for (int64_t ch = 0; ch + 3 <= out.size(2); ch += 3) {
      auto part = out.narrow(2, ch, 3);
      part.copy_(torch::bmm(part, rot));
    }
  }
  auto scale = torch::rand({B, 1, 3}) * (cfg.scale_high - cfg.scale_low) + cfg.scale_low;
  auto shift = (torch::rand({B, 1, 3}) * 2 - 1) * cfg.translate;
  xyz.mul_(to_device(scale, dev)).add_(to_device(shift, dev));
  if (cfg.jitter > 0) xyz.add_(to_device((torch::randn(xyz.sizes()) * cfg.jitter).clamp(-5 * cfg.jitter, 5 * cfg.jitter), dev));
  return out;
}

torch::Tensor view_of_clouds(const torch::Tensor& stored, View view, const DataConfig& cfg, torch::Device device,
                             bool fps_ordered) {
  const int64_t n = cfg.num_points;
  torch::Tensor x;
  if (view == View::VoteView) {
    const int64_t p = require_fps_points(cfg, "the official vote (eval protocol vote)");
    x = vote_view(fps_ordered ? to_device(stored, device) : fps_prefix(to_device(stored, device), p), n, p);
  } else if (view == View::Training && cfg.pipeline == "resample") {
    x = resample_for_training(to_device(stored, device), n, fps_points_of(cfg));
  } else if (!fps_ordered) {
    x = fps_prefix(to_device(stored, device), n);
  } else {
    x = to_device(stored.narrow(1, 0, n).contiguous(), device);
  }
  return view == View::Plain ? x : augment_points(x, cfg);
}

}  // namespace ewa::data
