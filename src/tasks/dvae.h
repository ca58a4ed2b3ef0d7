// Point-BERT pretraining, stage 1: the dVAE tokenizer (models/dvae.h) as a Task of the one
// training loop (train/loop.h). Labels are ignored; every point dataset works (ShapeNet-55 upstream).
#pragma once
#include <string>

#include "config/config.h"
#include "data/batch_source.h"
#include "models/dvae.h"
#include "train/loop.h"

namespace ewa::tasks {

// The evaluation of a tokenizer over `source`, with hard codes (as upstream's validation) and the
// Gumbel noise drawn from a fixed seed (torch's default generator is restored afterwards):
//   dense_cdl1, coarse_cdl1  upstream's metric (PB:tools/runner.py validate(), lines 201-304):
//       the patches' fine (dense) and coarse points put back at their centres, the whole-cloud
//       CD-L1 (PB:extensions/chamfer_dist ChamferDistanceL1: the mean of the two directions' mean
//       Euclidean distances) against the input cloud, x 1000, averaged per category (the
//       batch's labels: ShapeNet-55's taxonomies), then over the categories; ckpt-best is the
//       lowest dense_cdl1 (consider_metric CDL1);
//   recon, kl  the training loss's terms (per-patch CD-L1 of coarse and fine, KL), sample means.
struct DvaeEvaluation {
  double dense_cdl1 = 0, coarse_cdl1 = 0, recon = 0, kl = 0;
  int64_t categories = 0;
};
DvaeEvaluation dvae_evaluation(models::DiscreteVaeImpl& model, data::BatchSource& source, torch::Device device);

}  // namespace ewa::tasks
