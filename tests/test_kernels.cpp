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

}  // namespace
