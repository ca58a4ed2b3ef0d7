// Point-MAE's evaluation: the reconstruction loss with fixed masks (what pretraining reports
// every epoch) and the views of a cloud (visible, masked, predicted) that `ewa show --color mae`
// draws and `ewa pretrain --reconstruct` writes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/batch_source.h"
#include "models/point_mae.h"

namespace ewa::eval {

// The seed of the fixed masks of every evaluation and reconstruction.
constexpr uint64_t kMaeEvalMaskSeed = 20220711;

// Mean reconstruction loss of `model` over `source` with masks drawn from a fixed seed (the same
// masks every epoch); torch's default generator is restored afterwards.
double reconstruction_loss(models::PointMaeImpl& model, data::BatchSource& source, torch::Device device);

// Point-MAE's view of one cloud: the points of the visible groups, the true points of the masked
// groups and the model's prediction of them (all [*, 3], absolute coordinates).
struct MaeView {
  torch::Tensor input, visible, masked, predicted;
};
// The views of a batch `points` [B, P, C] with masks drawn from the fixed evaluation seed (torch's
// default generator is restored afterwards); the model is put in eval mode and restored.
std::vector<MaeView> mae_views(models::PointMaeImpl& model, const torch::Tensor& points, torch::Device device);

// Writes the reconstructions of the first `count` clouds of `source` into `dir` as ASCII PLY:
// <i>_input.ply (the cloud), <i>_visible.ply (points of the visible groups), <i>_predicted.ply
// (predicted points of the masked groups) and <i>_combined.ply (visible grey + predicted red).
// Returns the number written.
int64_t write_reconstructions(models::PointMaeImpl& model, data::BatchSource& source, int64_t count,
                              const std::string& dir, torch::Device device);

}  // namespace ewa::eval
