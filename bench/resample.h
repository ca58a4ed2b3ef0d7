// `ewa bench resample`: what the official per-step resampling (data.pipeline = resample:
// data/point_sampling.h, plus the scale-and-translate augmentation) costs per training step,
// against the training step of the model it feeds, for the official settings: ModelNet40 1k
// (8192 stored -> FPS 1200 -> 1024), ModelNet40 8k (8192 -> all 8192 in a new order), ScanObjectNN
// as Point-BERT (2048 -> FPS 1200 -> 1024) and as Point-MAE (2048 -> all 2048). The goal: under 5%.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"

namespace ewa::bench {

struct ResampleOptions {
  int64_t batch_size = 32;
  int64_t repeats = 20;     // timed resampling repeats (median)
  int64_t step_repeats = 3;  // timed training steps per model (median), after one untimed
  std::vector<std::string> settings;  // subset of "mn40-1k", "mn40-8k", "scan-pb", "scan-pm"; empty = all
};

struct ResampleRow {
  std::string setting;
  int64_t stored = 0, fps_points = 0, num_points = 0, groups = 0;
  double resample_ms = 0, step_ms = 0;
};

// `base` gives the model (a Point-MAE-size point_transformer config; num_points and num_groups are
// set per setting), the device and the arithmetic.
std::vector<ResampleRow> bench_resample(const Config& base, const ResampleOptions& options);

std::string resample_markdown(const std::vector<ResampleRow>& rows);

}  // namespace ewa::bench
