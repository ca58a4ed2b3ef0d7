#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace ewa::train {

double lr_at(const OptimConfig& cfg, int64_t step, int64_t steps_per_epoch, int64_t total_steps) {
  const int64_t warmup = std::min<int64_t>(total_steps, std::llround(cfg.warmup_epochs * double(steps_per_epoch)));
  if (step < warmup) return cfg.lr * double(step + 1) / double(warmup);
  const int64_t decay = std::max<int64_t>(1, total_steps - warmup);
  const double t = std::clamp(double(step - warmup) / double(decay), 0.0, 1.0);
  return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + std::cos(M_PI * t));
}

}  // namespace ewa::train
