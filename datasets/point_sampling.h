// Point-MAE / Point-BERT's point sampling, as their runners do it (docs/protocols.md;
// PROTOCOLS.md 1.3 and 1.6):
//   a training step (data.pipeline = "resample"): the stored points of every cloud shuffled, FPS
//     (pointnet2_ops' rule) to P = data.fps_points, then one random subset of data.num_points of
//     the P FPS ranks, the same columns for every cloud of the batch;
//   a view of the official vote: one random subset of num_points of the first P points of each
//     test cloud's FPS order (again the same columns for the batch).
// Augmentation (scale and translate) is the caller's. Random draws come from torch's default CPU
// generator (so a checkpoint's generator state resumes them exactly) and are moved to the clouds'
// device; the FPS runs there (our CUDA kernel on a GPU).
#pragma once
#include <torch/torch.h>

#include "config/config.h"

namespace ewa::data {

// Point-MAE's point_all for num_points: 1024 -> 1200, 2048 -> 2400, 4096 -> 4800, 8192 -> 8192;
// 0 for any other count (upstream raises NotImplementedError there).
int64_t official_fps_points(int64_t num_points);

// data.fps_points resolved: the configured value, else the official one, else 0.
int64_t fps_points_of(const DataConfig& cfg);

// fps_points_of(cfg), or an ewa::Error naming data.fps_points and `needed_by` when it is 0.
int64_t require_fps_points(const DataConfig& cfg, const std::string& needed_by);

// The random choices of one resampled training batch of B clouds of S points.
struct ResampleDraw {
  int64_t fps_points = 0;  // P, clamped to S
  torch::Tensor starts;    // int64 [B]: the shuffle, as the point FPS starts from (P < S)
  torch::Tensor columns;   // int64 [num_points]: FPS ranks (P < S), or per-cloud orders [B, num_points] (P = S)
};

// Draws the shuffle and the subset for B clouds of S points. With P >= S the FPS of every point
// is a permutation, so a random num_points of its ranks is a uniformly random ordered subset of
// each cloud: drawn directly as `columns` [B, num_points] (the same distribution, without FPS).
ResampleDraw draw_resample(int64_t B, int64_t S, int64_t num_points, int64_t fps_points);

// clouds [B, S, C] (xyz first; CPU or CUDA) -> [B, num_points, C] by `draw`. The shuffle is
// applied by starting the FPS at point starts[b] (swapped to position 0, pointnet2_ops' start):
// the same FPS as after a random permutation, up to how exact distance ties are broken.
torch::Tensor apply_resample(const torch::Tensor& clouds, const ResampleDraw& draw);

// draw_resample + apply_resample.
torch::Tensor resample_for_training(const torch::Tensor& clouds, int64_t num_points, int64_t fps_points);

// One vote view: fps_ordered [B, >= P, C] (the first P points of each cloud's FPS order) ->
// [B, num_points, C], one random subset of num_points of the P ranks for the batch (P clamped to
// the points given).
torch::Tensor vote_view(const torch::Tensor& fps_ordered, int64_t num_points, int64_t fps_points);

}  // namespace ewa::data
