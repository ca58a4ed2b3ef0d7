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
#include "data/batch_source.h"

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

// A cloud with fewer than `needed` points (data.num_points) is a one-line error naming it (`what`).
void require_points(int64_t points, int64_t needed, const std::string& what);

// Centres on the centroid and divides by the largest distance to it (xyz channels only).
// Throws ewa::Error naming `what` for an empty cloud, NaN/inf coordinates or a single repeated point.
torch::Tensor normalize_unit_sphere(const torch::Tensor& cloud, const std::string& what);

// Points sampled from a mesh surface (.off) when it feeds a model of cfg.num_points points.
int64_t mesh_sample_points(const DataConfig& cfg);

// Normalises and FPS-orders one cloud [P, C] to `keep` points (pipeline fixed); `what` names it
// in errors (a cloud with fewer than `keep` points is an error).
torch::Tensor prepare_cloud(const torch::Tensor& cloud, int64_t keep, const std::string& what);

// Points an evaluation cloud is stored with: max(data.num_points, data.fps_points resolved), so
// that the single pass (the first num_points) and the vote (a random num_points of the first
// fps_points) read the same stored FPS order.
int64_t eval_points(const DataConfig& cfg);

// One cloud [P, C] as the evaluation splits store it and `ewa predict` reads a file: [keep, C]
// (keep <= P), the first `keep` points of its FPS order after the pipeline's preparation (see
// above); `seed` draws the random FPS start of a data.source_points reduction.
torch::Tensor eval_cloud(const torch::Tensor& cloud, const DataConfig& cfg, int64_t keep, uint64_t seed, const std::string& what);

// The first `keep` points (at most S) of pointnet2_ops' FPS from point 0 of each cloud
// [N, S, C] -> [N, keep, C]: how stored training clouds are read for evaluation (a validation
// split carved from them, the SVM probe's training features), as the official misc.fps.
torch::Tensor fps_prefix(const torch::Tensor& clouds, int64_t keep);

// A stored training cloud of `keep` points under data.pipeline: fixed = normalised, the first
// `keep` of its FPS order; resample = reduced to `keep` points by FPS from a seeded random start
// when it has more (the official .dat preprocessing), then normalised.
torch::Tensor train_cloud(const torch::Tensor& cloud, const DataConfig& cfg, int64_t keep, uint64_t seed,
                          const std::string& what);

// Point-MAE's training augmentation on a batch [B, P, C] (any device; drawn from the CPU
// generator): per-cloud anisotropic scale in [scale_low, scale_high] and translation in
// [-translate, translate] on xyz; optional rotation about the y axis (normals rotate too) and
// clipped Gaussian jitter.
torch::Tensor augment_points(const torch::Tensor& points, const DataConfig& cfg);

// The model input of `view` (batch_source.h) from stored clouds [B, S, C] on `device`: one
// implementation for the batches of training and evaluation and for `ewa predict`. `fps_ordered`:
// the clouds are in FPS order from point 0 (evaluation storage, and every split under the fixed
// pipeline), so a single pass reads their first num_points; otherwise (training clouds at source
// resolution under resample) View::Plain and View::Augmented take fps_prefix first.
torch::Tensor view_of_clouds(const torch::Tensor& stored, View view, const DataConfig& cfg, torch::Device device,
                             bool fps_ordered = true);

}  // namespace ewa::data
