// Learning-rate schedules (optim.schedule):
//   step_cosine: linear warmup to the peak over optim.warmup_epochs, then cosine decay to
//     optim.min_lr, updated every optimizer step;
//   timm_epoch: timm 0.4.5's CosineLRScheduler as Point-MAE and Point-BERT build and step it
//     (tools/builder.py: t_initial = epochs, lr_min = 1e-6, warmup_lr_init = 1e-6, warmup_t =
//     initial_epochs, cycle_limit 1; runner: scheduler.step(epoch) after every epoch). Constructing
//     it sets the rate to warmup_lr_init, so epoch 0 runs at warmup_lr_init and epoch e >= 1 at
//     f(e - 1) with f(t) = warmup_lr_init + t (peak - warmup_lr_init) / warmup_t for t < warmup_t,
//     min_lr + (peak - min_lr) (1 + cos(pi t / t_initial)) / 2 for t < t_initial, min_lr after.
#pragma once
#include "config/config.h"

namespace ewa::train {

// Learning rate of optimizer step `step` (0-based) of `total_steps` (`epochs` epochs of
// `steps_per_epoch` steps) for a parameter group trained at `scale` times optim.lr. step_cosine
// scales its whole curve; timm_epoch, as timm with groups of different initial rates, runs its
// formula with peak = scale * optim.lr (warmup_lr_init and min_lr stay as they are).
double lr_at(const OptimConfig& cfg, int64_t step, int64_t steps_per_epoch, int64_t total_steps, int64_t epochs,
             double scale = 1.0);

// timm's CosineLRScheduler._get_lr(t) for t_initial = `t_initial` (the f above).
double timm_cosine_lr(const OptimConfig& cfg, double peak, double t, int64_t t_initial);

}  // namespace ewa::train
