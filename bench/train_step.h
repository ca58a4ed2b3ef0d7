// `ewa bench train-step`: milliseconds per training step of one model (ViT or point-cloud
// classifier: dense MLPs, RupMoE + EWA, RoutedMoE; point_mae pretraining: dense and RupMoE + EWA
// encoders), measured in one run with the variants interleaved.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"

namespace ewa::bench {

struct TrainStepOptions {
  int64_t warmup = 5;    // untimed steps per variant before measuring
  int64_t steps = 20;    // timed steps per variant and round
  int64_t rounds = 3;    // rounds; variants alternate inside each round
  int64_t batch_size = 128;
  std::vector<std::string> variants;  // subset of "dense", "rup+ewa", "routed"; empty = all
};

struct TrainStepRow {
  std::string variant;
  int64_t params = 0;
  double ms_median = 0, ms_min = 0, ratio_to_dense = 0;
};

// `base` gives the model (its moe.kind is overridden per variant), the device (train.device) and
// the arithmetic (train.precision); inputs are random images or clouds of the model's size, so no
// dataset is read.
std::vector<TrainStepRow> bench_train_step(const Config& base, const TrainStepOptions& options);

std::string train_step_markdown(const std::vector<TrainStepRow>& rows);

}  // namespace ewa::bench
