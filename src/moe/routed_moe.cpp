#include "moe/routed_moe.h"

#include <cmath>

namespace ewa::moe {

RoutedMoEImpl::RoutedMoEImpl(const ExpertsOptions& options, const RoutingOptions& routing)
    : ExpertsFeedForwardImpl(options), routing_(routing) {
  TORCH_CHECK(routing.top_k() == 1 || routing.top_k() == 2, "RoutedMoE: top_k must be 1 or 2, got ", routing.top_k());
  TORCH_CHECK(routing.top_k() <= options.num_experts(), "RoutedMoE: top_k exceeds num_experts");
  gate = register_module("gate", torch::nn::Linear(torch::nn::LinearOptions(options.dim(), options.num_experts()).bias(false)));
}

int64_t RoutedMoEImpl::capacity(int64_t tokens) const {
  const double factor = is_training() ? routing_.capacity_factor() : routing_.eval_capacity_factor();
  const double c = std::ceil(factor * routing_.top_k() * tokens / static_cast<double>(num_experts()));
  return std::max<int64_t>(1, static_cast<int64_t>(c));
}

torch::Tensor RoutedMoEImpl::forward(const torch::Tensor& x) {
  const int64_t d = x.size(-1), m = x.numel() / d, n = num_experts(), k = routing_.top_k();
  auto flat = x.reshape({m, d});
  auto probs = torch::softmax(gate(flat), -1);  // [m, n]
  auto [top_p, top_e] = probs.topk(k, -1);       // [m, k]
  if (k == 2) top_p = top_p / top_p.sum(-1, true);
  last_choice_ = top_e.select(1, 0).reshape(x.sizes().slice(0, x.dim() - 1));

  // Load-balancing loss on first choices.
  auto first = torch::one_hot(top_e.select(1, 0), n).to(probs.scalar_type());  // [m, n]
  aux_loss_ = static_cast<double>(n) * (first.mean(0) * probs.mean(0)).sum();

  // Slot of every (token, choice) in its expert's buffer; first choices fill before second.
  const int64_t cap = capacity(m);
  auto opts = top_e.options();
  auto used = torch::zeros({n}, opts);
  std::vector<torch::Tensor> slots;
  std::vector<torch::Tensor> keeps;
  torch::Tensor dropped = torch::zeros({}, opts);  // on the device: counted without a host sync
  for (int64_t j = 0; j < k; ++j) {
    auto e = top_e.select(1, j);                                  // [m]
    auto onehot = torch::one_hot(e, n);                           // [m, n] long
    auto pos = (onehot.cumsum(0) - 1 + used.unsqueeze(0)).gather(1, e.unsqueeze(1)).squeeze(1);
    used = used + onehot.sum(0);
    auto keep = pos < cap;
    dropped = dropped + (m - keep.sum());
    slots.push_back(torch::where(keep, e * cap + pos, torch::full_like(pos, n * cap)));  // n*cap = dummy
    keeps.push_back(keep);
  }
  last_dropped_ = dropped;

  // Gather tokens into [n, cap, d]; empty slots read a zero row (index m).
  auto token_of_slot = torch::full({n * cap + 1}, m, opts);
  auto tokens = torch::arange(m, opts);
  for (int64_t j = 0; j < k; ++j) token_of_slot.index_put_({slots[j]}, tokens);
  token_of_slot = token_of_slot.narrow(0, 0, n * cap);
  auto padded = torch::cat({flat, torch::zeros({1, d}, flat.options())}, 0);
  auto xe = padded.index_select(0, token_of_slot).view({n, cap, d});
  auto ye = experts_forward(xe).reshape({n * cap, d});
  ye = torch::cat({ye, torch::zeros({1, d}, ye.options())}, 0);  // dropped choices read zeros

  torch::Tensor out = torch::zeros_like(flat);
  for (int64_t j = 0; j < k; ++j) {
    auto w = top_p.select(1, j) * keeps[j].to(top_p.scalar_type());
    out = out + w.unsqueeze(1) * ye.index_select(0, slots[j]);
  }
  return out.view(x.sizes());
}

}  // namespace ewa::moe
