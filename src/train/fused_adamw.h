// One AdamW step of a torch::optim::AdamW through ATen's fused kernel (at::_fused_adamw_, what
// PyTorch's AdamW(fused=True) runs): one pass per tensor over parameter, gradient and moments
// instead of LibTorch's eight elementwise passes. The optimizer object keeps the state
// (AdamWParamState: step, exp_avg, exp_avg_sq), so checkpoints and resume are unchanged; the
// update is LibTorch's AdamW::step() up to float rounding (tests/test_train.cpp checks it).
#pragma once
#include <torch/torch.h>

namespace ewa::train {

void fused_adamw_step(torch::optim::AdamW& optimizer);

}  // namespace ewa::train
