#include "moe/rup_moe.h"

#include <ATen/CPUGeneratorImpl.h>

namespace ewa::moe {
namespace F = torch::nn::functional;

// ---- RupMoE ----

std::vector<int64_t> rup_chunk_sizes(int64_t m, int64_t n) {
  std::vector<int64_t> sizes(n, m / n);
  for (int64_t i = 0; i < m % n; ++i) ++sizes[i];
  return sizes;
}

RupMoEImpl::RupMoEImpl(const ExpertsOptions& options) : ExpertsFeedForwardImpl(options) {}

torch::Tensor RupMoEImpl::forward(const torch::Tensor& x) {
  if (!is_training()) return mean_forward(x);
  const int64_t m = x.numel() / x.size(-1);
  auto perm = generator_ ? torch::randperm(m, *generator_, torch::kLong).to(x.device(), /*non_blocking=*/true)
                        : torch::randperm(m, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
  return forward_partitioned(x, perm);
}

void RupMoEImpl::seed_partitions(uint64_t seed) {
  if (!generator_) generator_ = at::make_generator<at::CPUGeneratorImpl>(seed);
  generator_->set_current_seed(seed);
}

torch::Tensor RupMoEImpl::forward_partitioned(const torch::Tensor& x, const torch::Tensor& perm) const {
  const int64_t d = x.size(-1), m = x.numel() / d, n = num_experts();
  TORCH_CHECK(perm.dim() == 1 && perm.size(0) == m, "RupMoE: perm must be [", m, "], got ", perm.sizes());
  auto flat = x.reshape({m, d});
  const int64_t cap = (m + n - 1) / n;  // longest chunk
  const int64_t rem = m % n;
  torch::Tensor out_rows;  // [m, d] in permuted order
  if (rem == 0) {
    auto xe = flat.index_select(0, perm).view({n, cap, d});
    out_rows = experts_forward(xe).reshape({m, d});
  } else {
    // Chunks of size cap-1 get one padding row so all experts run in one batched matmul;
    // the padding (token 0, a dummy) is dropped again before scattering back.
    auto opts = perm.options();
    auto slot = torch::arange(n * cap, opts).view({n, cap});
    auto expert = torch::arange(n, opts).unsqueeze(1);
    auto col = torch::arange(cap, opts).unsqueeze(0);
    auto valid = (col < cap - 1) | (expert < rem);                  // [n, cap]
    auto start = torch::where(expert < rem, expert * cap, rem * cap + (expert - rem) * (cap - 1));
    auto pos = (start + col).clamp_max(m - 1);                       // position in perm
    auto token = torch::where(valid, perm.index({pos}), torch::zeros_like(pos));
    auto xe = flat.index_select(0, token.flatten()).view({n, cap, d});
    auto valid_slots = slot.masked_select(valid);                    // chunk order = perm order
    out_rows = experts_forward(xe).reshape({n * cap, d}).index_select(0, valid_slots);
  }
  // Row r of out_rows belongs to token perm[r]; invert the permutation with one gather.
  auto inverse = torch::empty_like(perm).scatter_(0, perm, torch::arange(m, perm.options()));
  return out_rows.index_select(0, inverse).view(x.sizes());
}

}  // namespace ewa::moe
