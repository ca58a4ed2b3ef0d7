#include "train/schedule.h"

#include <algorithm>
#include <cmath>

namespace ewa::train {

double timm_cosine_lr(const OptimConfig& cfg, double peak, double t, int64_t t_initial) {
  const double warmup = cfg.warmup_epochs;
  if (t < warmup) return cfg.warmup_lr_init + t * (peak - cfg.warmup_lr_init) / warmup;
  // cycle i = t // t_initial; with cycle_limit 1 only cycle 0 follows the cosine.
  if (std::floor(t / double(t_initial)) >= 1) return cfg.min_lr;
  return cfg.min_lr + 0.5 * (peak - cfg.min_lr) * (1 + std::cos(M_PI * t / double(t_initial)));
}

double lr_at(const OptimConfig& cfg, int64_t step, int64_t steps_per_epoch, int64_t total_steps, int64_t epochs,
             double scale) {
  if (cfg.schedule == "timm_epoch") {
    const double peak = cfg.lr * scale;
    const int64_t epoch = step / std::max<int64_t>(1, steps_per_epoch);
    if (epoch == 0) return cfg.warmup_epochs > 0 ? cfg.warmup_lr_init : peak;
    return timm_cosine_lr(cfg, peak, double(epoch - 1), cfg.cosine_epochs > 0 ? cfg.cosine_epochs : epochs);
  }
  const int64_t warmup = std::min<int64_t>(total_steps, std::llround(cfg.warmup_epochs * double(steps_per_epoch)));
  double lr;
  if (step < warmup) {
    lr = cfg.lr * double(step + 1) / double(warmup);
  } else {
    const int64_t decay = std::max<int64_t>(1, total_steps - warmup);
    const double t = std::clamp(double(step - warmup) / double(decay), 0.0, 1.0);
    lr = cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + std::cos(M_PI * t));
  }
  return lr * scale;
}

}  // namespace ewa::train
