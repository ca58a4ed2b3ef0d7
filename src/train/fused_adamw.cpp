#include "train/fused_adamw.h"

#include <ATen/ops/_fused_adamw.h>

namespace ewa::train {

void fused_adamw_step(torch::optim::AdamW& optimizer) {
  torch::NoGradGuard no_grad;
  for (auto& group : optimizer.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
    std::vector<int64_t> step_numbers;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;  // as AdamW::step(): no gradient, no update
      TORCH_CHECK(!p.grad().is_sparse(), "AdamW does not support sparse gradients");
      auto& slot = optimizer.state()[p.unsafeGetTensorImpl()];
      if (!slot) {  // the state AdamW::step() would create
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        if (o.amsgrad()) s->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(s);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avgs.push_back(s.exp_avg());
      exp_avg_sqs.push_back(s.exp_avg_sq());
      if (o.amsgrad()) max_exp_avg_sqs.push_back(s.max_exp_avg_sq());
      // This step's number, counted before the update (as torch.optim.AdamW does before its kernel).
      s.step(s.step() + 1);
      step_numbers.push_back(s.step());
    }
    if (params.empty()) continue;
    // The kernel takes each step number as a float scalar tensor on the parameter's device. The
    // usual case (one device, every tensor at the same step) fills them with one launch.
    bool uniform = true;
    for (size_t i = 1; i < params.size(); ++i)
      uniform = uniform && step_numbers[i] == step_numbers[0] && params[i].device() == params[0].device();
    if (uniform) {
      auto all = torch::full({int64_t(params.size())}, double(step_numbers[0]), params[0].options().dtype(torch::kFloat));
      steps = all.unbind(0);
    } else {
      for (size_t i = 0; i < params.size(); ++i)
        steps.push_back(torch::full({}, double(step_numbers[i]), params[i].options().dtype(torch::kFloat)));
    }
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, o.lr(), std::get<0>(o.betas()),
                      std::get<1>(o.betas()), o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false);
  }
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return {};
  auto norms = at::_foreach_norm(grads, 2);
  auto total = torch::stack(norms).norm(2);
  auto coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  at::_foreach_mul_(grads, coef);
  return total;
}

}  // namespace ewa::train
