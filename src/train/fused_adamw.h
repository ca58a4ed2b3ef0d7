// One AdamW step of a torch::optim::AdamW through ATen's fused kernel (at::_fused_adamw_, what
// PyTorch's AdamW(fused=True) runs): one pass per tensor over parameter, gradient and moments
// instead of LibTorch's eight elementwise passes. The optimizer object keeps the state
// (AdamWParamState: step, exp_avg, exp_avg_sq), so checkpoints and resume are unchanged; the
// update is LibTorch's AdamW::step() up to float rounding (tests/test_train.cpp checks it).
#pragma once
#include <torch/torch.h>

namespace ewa::train {

void fused_adamw_step(torch::optim::AdamW& optimizer);

// Scales the gradients of `params` so that their joint 2-norm is at most `max_norm`, as
// torch.nn.utils.clip_grad_norm_ does in PyTorch (per-tensor norms with _foreach_norm, their norm,
// coefficient max_norm / (norm + 1e-6) clamped to 1, one _foreach_mul_), all on the device:
// LibTorch's C++ clip_grad_norm_ returns the norm as a double, which waits for the GPU every
// step. Returns the total norm (a scalar tensor on the gradients' device); undefined when no
// parameter has a gradient.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace ewa::train
