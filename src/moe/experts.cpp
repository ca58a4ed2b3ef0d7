#include "moe/experts.h"

namespace ewa::moe {
namespace F = torch::nn::functional;

ExpertsFeedForwardImpl::ExpertsFeedForwardImpl(const ExpertsOptions& o) : options_(o) {
  TORCH_CHECK(o.num_experts() >= 2, "MoE: num_experts must be >= 2, got ", o.num_experts());
  const int64_t n = o.num_experts(), d = o.dim(), h = o.hidden();
  w1 = register_parameter("w1", torch::empty({n, h, d}));
  b1 = register_parameter("b1", torch::empty({n, h}));
  w2 = register_parameter("w2", torch::empty({n, d, h}));
  b2 = register_parameter("b2", torch::empty({n, d}));
  // Each expert starts independently as a fresh Mlp's torch::nn::Linear layers would; the model
  // applies its own rule afterwards (nn::apply_init -> init_stacked_).
  init_stacked_(nn::InitRule::TorchDefault);
}

void ExpertsFeedForwardImpl::init_stacked_(nn::InitRule rule) {
  nn::init_linear_(w1, b1, rule);
  nn::init_linear_(w2, b2, rule);
}

torch::Tensor ExpertsFeedForwardImpl::experts_forward(const torch::Tensor& xe) const {
  auto h = torch::baddbmm(b1.unsqueeze(1), xe, w1.transpose(1, 2));  // [N, C, hidden]
  h = F::dropout(torch::gelu(h), F::DropoutFuncOptions().p(options_.drop()).training(is_training()));
  auto y = torch::baddbmm(b2.unsqueeze(1), h, w2.transpose(1, 2));  // [N, C, dim]
  return F::dropout(y, F::DropoutFuncOptions().p(options_.drop()).training(is_training()));
}

torch::Tensor ExpertsFeedForwardImpl::mean_forward(const torch::Tensor& x) const {
  auto h = torch::gelu(torch::linear(x, w1.mean(0), b1.mean(0)));
  h = F::dropout(h, F::DropoutFuncOptions().p(options_.drop()).training(is_training()));
  auto y = torch::linear(h, w2.mean(0), b2.mean(0));
  return F::dropout(y, F::DropoutFuncOptions().p(options_.drop()).training(is_training()));
}

}  // namespace ewa::moe
