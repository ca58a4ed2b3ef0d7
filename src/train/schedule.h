// Learning-rate schedule: linear warmup to optim.lr, then cosine decay to optim.min_lr.
#pragma once
#include "config/config.h"

namespace ewa::train {

// Learning rate for optimizer step `step` (0-based) of `total_steps`, with
// warmup = round(warmup_epochs * steps_per_epoch) steps.
double lr_at(const OptimConfig& cfg, int64_t step, int64_t steps_per_epoch, int64_t total_steps);

}  // namespace ewa::train
