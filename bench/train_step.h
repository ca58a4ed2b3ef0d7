// `ewa bench train-step`: milliseconds per training step of one model (ViT or point-cloud
// classifier: dense MLPs, RupMoE + EWA, RoutedMoE; point_mae pretraining: dense and RupMoE + EWA
// encoders), measured in one run with the variants interleaved.
#pragma once
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <torch/cuda.h>

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

// The median milliseconds of `repeats` calls of `f` after one untimed call (CUDA context,
// kernels, caches, allocator), each ended by a synchronize when `cuda`.
template <typename F>
double median_ms(int64_t repeats, bool cuda, F&& f) {
  f();
  if (cuda) torch::cuda::synchronize();
  std::vector<double> ms;
  for (int64_t r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    if (cuda) torch::cuda::synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// The median ms of `cfg`'s dense training step at `batch_size` (`repeats` timed steps after one
// untimed): what the data benchmarks compare their pipelines against.
double dense_step_ms(const Config& cfg, int64_t batch_size, int64_t repeats);

}  // namespace ewa::bench
