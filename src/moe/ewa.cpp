#include "moe/ewa.h"

#include <cmath>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/random.h"
#include "kernels/expert_average/expert_average.h"
#include "moe/rup_moe.h"

namespace ewa::moe {

std::vector<std::shared_ptr<ExpertsFeedForwardImpl>> moe_layers(torch::nn::Module& model) {
  std::vector<std::shared_ptr<ExpertsFeedForwardImpl>> layers;
  for (const auto& m : model.modules(/*include_self=*/true))
    if (auto e = std::dynamic_pointer_cast<ExpertsFeedForwardImpl>(m)) layers.push_back(e);
  return layers;
}

void seed_partitions(torch::nn::Module& model, uint64_t seed) {
  uint64_t i = 0;
  for (const auto& layer : moe_layers(model)) {
    if (auto* rup = dynamic_cast<RupMoEImpl*>(layer.get())) rup->seed_partitions(derive_seed(seed, Stream::kPartition, i));
    ++i;
  }
}

double shrink_factor(double beta, int64_t num_experts) {
  return beta * static_cast<double>(num_experts) / static_cast<double>(num_experts - 1);
}

int64_t ewa_average(torch::nn::Module& model, double beta) {
  torch::NoGradGuard guard;
  int64_t count = 0;
  // Every expert tensor of every layer in one call: one kernel launch on a GPU.
  std::vector<torch::Tensor> tensors;
  std::vector<double> lambdas;
  for (const auto& layer : moe_layers(model)) {
    const int64_t n = layer->num_experts();
    const double beta_max = double(n - 1) / double(n);
    if (!(beta >= 0.0 && beta <= beta_max + 1e-12)) {
      std::ostringstream os;
      os << "ewa_average: share rate must be in [0, " << beta_max << "] for " << n << " experts, got " << beta;
      fail(os.str());
    }
    const double lambda = std::min(1.0, shrink_factor(beta, n));
    if (lambda == 0.0) continue;
    for (auto p : layer->expert_parameters()) {
      tensors.push_back(p);
      lambdas.push_back(lambda);
    }
    ++count;
  }
  if (!tensors.empty()) kernels::expert_average_many_(tensors, lambdas);
  return count;
}

double share_rate_at(const EwaConfig& cfg, int64_t step, int64_t total_steps) {
  if (!cfg.enabled) return 0.0;
  if (cfg.until_step >= 0 && step > cfg.until_step) return 0.0;
  if (cfg.schedule == "constant") return cfg.share_rate;
  const int64_t ramp = cfg.ramp_steps > 0 ? cfg.ramp_steps : std::max<int64_t>(1, total_steps);
  const double t = std::clamp(static_cast<double>(step) / static_cast<double>(ramp), 0.0, 1.0);
  if (cfg.schedule == "linear") return cfg.share_rate * t;
  if (cfg.schedule == "cosine") return cfg.share_rate * 0.5 * (1.0 - std::cos(M_PI * t));
  fail("ewa.schedule: unknown schedule '" + cfg.schedule + "'");
}

torch::OrderedDict<std::string, torch::Tensor> collapse_to_dense(torch::nn::Module& model) {
  torch::NoGradGuard guard;
  torch::OrderedDict<std::string, torch::Tensor> out;
  std::set<std::string> moe_prefixes;
  for (const auto& item : model.named_modules("", /*include_self=*/false)) {
    if (auto e = std::dynamic_pointer_cast<ExpertsFeedForwardImpl>(item.value())) {
      const std::string p = item.key() + ".";
      moe_prefixes.insert(p);
      out.insert(p + "fc1.weight", e->w1.mean(0).clone());
      out.insert(p + "fc1.bias", e->b1.mean(0).clone());
      out.insert(p + "fc2.weight", e->w2.mean(0).clone());
      out.insert(p + "fc2.bias", e->b2.mean(0).clone());
    }
  }
  auto inside_moe = [&](const std::string& key) {
    for (const auto& p : moe_prefixes)
      if (key.rfind(p, 0) == 0) return true;
    return false;
  };
  for (const auto& item : model.named_parameters())
    if (!inside_moe(item.key())) out.insert(item.key(), item.value().detach().clone());
  for (const auto& item : model.named_buffers())
    if (!inside_moe(item.key())) out.insert(item.key(), item.value().detach().clone());
  return out;
}

}  // namespace ewa::moe
