// expert_average: the fused CPU kernel against a naive Eq. (6) loop on fresh random inputs.
#include <gtest/gtest.h>

#include "kernels/expert_average/expert_average.h"

#include <torch/torch.h>

namespace {

// Eq. (6) literally: W_i <- (1 - beta) W_i + sum_{j != i} beta / (N - 1) W_j.
torch::Tensor naive_eq6(const torch::Tensor& w, double beta) {
  const int64_t n = w.size(0);
  auto out = torch::empty_like(w);
  for (int64_t i = 0; i < n; ++i) {
    auto acc = (1.0 - beta) * w[i];
    for (int64_t j = 0; j < n; ++j)
      if (j != i) acc = acc + beta / double(n - 1) * w[j];
    out[i] = acc;
  }
  return out;
}

TEST(ExpertAverageKernel, MatchesNaiveEquation6OnRandomInputs) {
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    for (int64_t n : {2, 3, 4, 7}) {
      auto w = torch::randn({n, 5, 13}, dtype);
      const double beta = torch::rand({1}).item<double>() * double(n - 1) / double(n);
      auto expected = naive_eq6(w, beta);
      ewa::kernels::expert_average_(w, beta * double(n) / double(n - 1));
      const double tol = dtype == torch::kFloat ? 1e-5 : 1e-12;
      EXPECT_TRUE(torch::allclose(w, expected, tol, tol)) << "n=" << n << " beta=" << beta;
    }
  }
}

TEST(ExpertAverageKernel, RejectsBadArguments) {
  auto one = torch::randn({1, 4});
  EXPECT_THROW(ewa::kernels::expert_average_(one, 0.5), c10::Error);
  auto strided = torch::randn({4, 3}).t();
  EXPECT_FALSE(strided.is_contiguous());
  EXPECT_THROW(ewa::kernels::expert_average_(strided, 0.5), c10::Error);
  auto w = torch::randn({3, 4});
  EXPECT_THROW(ewa::kernels::expert_average_(w, 1.5), c10::Error);
  auto ints = torch::ones({3, 4}, torch::kInt);
  EXPECT_THROW(ewa::kernels::expert_average_(ints, 0.5), c10::Error);
}

TEST(ExpertAverageKernel, BumpsTheVersionCounterAsInPlaceOpsDo) {
  // The update writes through raw pointers; autograd must still see it: one version per call, and
  // a backward through a graph that saved the old values is refused, as after torch's own in-place ops.
  auto w = torch::randn({3, 4}, torch::requires_grad());
  auto loss = (w * w).sum();  // saves w for its gradient
  const auto version = w._version();
  {
    torch::NoGradGuard no_grad;
    ewa::kernels::expert_average_(w, 0.5);
  }
  EXPECT_EQ(w._version(), version + 1);
  EXPECT_THROW(loss.backward(), c10::Error);
  auto bad = torch::randn({1, 4});
  const auto bad_version = bad._version();
  EXPECT_THROW(ewa::kernels::expert_average_(bad, 0.5), c10::Error);
  EXPECT_EQ(bad._version(), bad_version);  // a refused call changes nothing
}

TEST(ExpertAverageKernel, LambdaOneSetsEveryExpertToExactlyTheMean) {
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    auto w = torch::randn({3, 7, 5}, dtype);
    auto mean = w.sum(0) * (1.0 / 3.0);  // the kernel's own order: sum, then times 1/N
    ewa::kernels::expert_average_(w, 1.0);
    for (int64_t i = 0; i < 3; ++i) EXPECT_TRUE(torch::equal(w[i], w[0])) << "expert " << i;
    EXPECT_TRUE(torch::allclose(w[0], mean, 1e-6, 1e-6));
  }
}

TEST(ExpertAverageKernel, RunsOnEveryDevicePresent) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto w = torch::randn({4, 1000}, torch::kDouble);
  auto expected = w.clone();
  ewa::kernels::expert_average_(expected, 0.4);
  auto g = w.cuda();
  ewa::kernels::expert_average_(g, 0.4);
  EXPECT_TRUE(torch::allclose(g.cpu(), expected, 1e-12, 1e-12));
}

// Tensors of different shapes, N, dtypes and lambdas, as a model's EWA layers hand them over.
std::vector<torch::Tensor> mixed_experts() {
  return {torch::randn({4, 384, 96}), torch::randn({4, 384}), torch::randn({2, 7}, torch::kDouble),
          torch::randn({3, 1}), torch::randn({4, 96, 384}), torch::randn({5, 33, 3})};
}

TEST(ExpertAverageKernel, ManyAtOnceEqualsOneAtATimeBitForBit) {
  auto many = mixed_experts();
  std::vector<torch::Tensor> one;
  for (const auto& t : many) one.push_back(t.clone());
  const std::vector<double> lambdas = {0.3, 0.3, 1.0, 0.0, 0.75, 0.125};
  const auto versions = many[0]._version();
  ewa::kernels::expert_average_many_(many, lambdas);
  for (size_t i = 0; i < one.size(); ++i) {
    ewa::kernels::expert_average_(one[i], lambdas[i]);
    EXPECT_TRUE(torch::equal(many[i], one[i])) << "tensor " << i;
  }
  EXPECT_GT(many[0]._version(), versions);
}

TEST(ExpertAverageKernel, ManyChecksEveryTensorBeforeChangingAny) {
  auto many = mixed_experts();
  std::vector<torch::Tensor> before;
  for (const auto& t : many) before.push_back(t.clone());
  std::vector<double> lambdas(many.size(), 0.5);
  lambdas.back() = 1.5;  // the last one is refused
  EXPECT_THROW(ewa::kernels::expert_average_many_(many, lambdas), c10::Error);
  many.push_back(torch::randn({1, 4}));  // N = 1
  lambdas = std::vector<double>(many.size(), 0.5);
  EXPECT_THROW(ewa::kernels::expert_average_many_(many, lambdas), c10::Error);
  EXPECT_THROW(ewa::kernels::expert_average_many_(many, std::vector<double>(2, 0.5)), c10::Error);  // count mismatch
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(many[i], before[i])) << "tensor " << i;
}

TEST(ExpertAverageKernel, ManyAtOnceOnEveryDevicePresent) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  // More float tensors than one launch takes, plus a double one (which goes through the single kernel).
  std::vector<torch::Tensor> cpu, gpu, single;
  std::vector<double> lambdas;
  for (int i = 0; i < ewa::kernels::kExpertAverageBatch + 9; ++i) {
    cpu.push_back(torch::randn({2 + i % 3, 17 + 5 * i}, i == 3 ? torch::kDouble : torch::kFloat));
    lambdas.push_back(i % 7 == 0 ? 1.0 : 0.05 * (i % 10));
  }
  for (const auto& t : cpu) {
    gpu.push_back(t.cuda());
    single.push_back(t.cuda());
  }
  ewa::kernels::expert_average_many_(gpu, lambdas);
  ewa::kernels::expert_average_many_(cpu, lambdas);
  for (size_t i = 0; i < cpu.size(); ++i) {
    ewa::kernels::expert_average_(single[i], lambdas[i]);
    EXPECT_TRUE(torch::equal(gpu[i], single[i])) << "tensor " << i << ": one launch differs from the single kernel";
    EXPECT_TRUE(torch::allclose(gpu[i].cpu(), cpu[i], 1e-6, 1e-6)) << "tensor " << i << ": GPU differs from the CPU twin";
  }
}

}  // namespace
