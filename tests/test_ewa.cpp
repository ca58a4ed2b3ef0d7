// EWA averaging, schedules and collapse: the oracles of docs/method.md.
#include <gtest/gtest.h>

#include <map>

#include "common/error.h"
#include "moe/ewa.h"
#include "moe/routed_moe.h"
#include "moe/rup_moe.h"

namespace {
using ewa::moe::ExpertsOptions;

ewa::moe::RupMoE random_rup(int64_t n) {
  ewa::moe::RupMoE m(ExpertsOptions(6, 10, n));
  torch::NoGradGuard g;
  for (auto& p : m->parameters()) p.normal_();
  return m;
}

TEST(Ewa, PreservesTheExpertMeanAndShrinksDeviationsByOneMinusLambda) {
  for (int64_t n : {2, 3, 4, 8}) {
    auto m = random_rup(n);
    const double beta = 0.9 * double(n - 1) / double(n) * torch::rand({1}).item<double>();
    const double lambda = beta * double(n) / double(n - 1);
    std::vector<torch::Tensor> before;
    for (const auto& p : m->expert_parameters()) before.push_back(p.detach().clone());
    ASSERT_EQ(ewa::moe::ewa_average(*m, beta), 1);
    auto after = m->expert_parameters();
    for (size_t k = 0; k < before.size(); ++k) {
      auto mean_b = before[k].mean(0, true), mean_a = after[k].mean(0, true);
      EXPECT_TRUE(torch::allclose(mean_a, mean_b, 1e-5, 1e-6)) << "mean moved, n=" << n;
      EXPECT_TRUE(torch::allclose(after[k] - mean_a, (1.0 - lambda) * (before[k] - mean_b), 1e-5, 1e-6))
          << "deviation not scaled by 1 - lambda, n=" << n;
    }
  }
}

TEST(Ewa, AveragesEveryParameterOfTheExpertsAndNothingElse) {
  // Iterates the module's own named parameters (not expert_parameters(), the list under test), so
  // a parameter that EWA forgot would show up: every expert tensor [N, ...] keeps its mean and
  // shrinks its deviations by 1 - lambda; the routed gate is left alone.
  const int64_t n = 4;
  const double beta = 0.45, lambda = beta * double(n) / double(n - 1);
  ewa::moe::RupMoE rup(ExpertsOptions(6, 10, n));
  ewa::moe::RoutedMoE routed(ExpertsOptions(6, 10, n), ewa::moe::RoutingOptions());
  for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(rup.ptr().get()), static_cast<torch::nn::Module*>(routed.ptr().get())}) {
    {
      torch::NoGradGuard g;
      for (auto& p : m->parameters()) p.normal_();
    }
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : m->named_parameters()) before[p.key()] = p.value().detach().clone();
    ASSERT_GE(before.size(), 4u);
    ASSERT_EQ(ewa::moe::ewa_average(*m, beta), 1);
    int64_t averaged = 0;
    for (const auto& p : m->named_parameters()) {
      const auto& old = before.at(p.key());
      if (p.key().rfind("gate", 0) == 0) {
        EXPECT_TRUE(torch::equal(p.value(), old)) << p.key() << " is not an expert parameter but changed";
        continue;
      }
      ++averaged;
      ASSERT_EQ(p.value().size(0), n) << p.key();
      auto mean_b = old.mean(0, true), mean_a = p.value().mean(0, true);
      EXPECT_TRUE(torch::allclose(mean_a, mean_b, 1e-5, 1e-6)) << p.key() << ": mean moved";
      EXPECT_TRUE(torch::allclose(p.value() - mean_a, (1.0 - lambda) * (old - mean_b), 1e-5, 1e-6))
          << p.key() << ": not averaged";
    }
    EXPECT_EQ(averaged, 4);  // w1, b1, w2, b2
  }
}

TEST(Ewa, HandComputedTwoAndThreeExperts) {
  // N = 2, beta = 0.25: W1 = 0.75*1 + 0.25*3 = 1.5, W2 = 0.75*3 + 0.25*1 = 2.5.
  ewa::moe::RupMoE two(ExpertsOptions(1, 1, 2));
  {
    torch::NoGradGuard g;
    two->w1.copy_(torch::tensor({1.0f, 3.0f}).view({2, 1, 1}));
  }
  ewa::moe::ewa_average(*two, 0.25);
  EXPECT_FLOAT_EQ(two->w1[0].item<float>(), 1.5f);
  EXPECT_FLOAT_EQ(two->w1[1].item<float>(), 2.5f);
  // N = 3, beta = 0.3, W = (0, 3, 6): 0.7*0 + 0.15*9 = 1.35; 0.7*3 + 0.15*6 = 3.0; 0.7*6 + 0.15*3 = 4.65.
  ewa::moe::RupMoE three(ExpertsOptions(1, 1, 3));
  {
    torch::NoGradGuard g;
    three->b2.copy_(torch::tensor({0.0f, 3.0f, 6.0f}).view({3, 1}));
  }
  ewa::moe::ewa_average(*three, 0.3);
  EXPECT_NEAR(three->b2[0].item<float>(), 1.35f, 1e-6);
  EXPECT_NEAR(three->b2[1].item<float>(), 3.0f, 1e-6);
  EXPECT_NEAR(three->b2[2].item<float>(), 4.65f, 1e-6);
}

TEST(Ewa, MaximalShareRateCollapsesToTheMeanAndLargerIsRejected) {
  auto m = random_rup(4);
  auto mean = m->w2.detach().mean(0).clone();
  ewa::moe::ewa_average(*m, 0.75);
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(torch::equal(m->w2[i], m->w2[0]));  // identical, not merely close
    EXPECT_TRUE(torch::allclose(m->w2[i], mean, 1e-5, 1e-6));
  }
  EXPECT_THROW(ewa::moe::ewa_average(*m, 0.76), ewa::Error);
  EXPECT_THROW(ewa::moe::ewa_average(*m, -0.1), ewa::Error);
}

TEST(Ewa, AveragesRoutedExpertsButNotTheGate) {
  ewa::moe::RoutedMoE m(ExpertsOptions(6, 8, 3), ewa::moe::RoutingOptions());
  auto gate = m->gate->weight.detach().clone();
  auto spread = (m->w1 - m->w1.mean(0, true)).abs().max().item<double>();
  ewa::moe::ewa_average(*m, 0.6);  // lambda = 0.9
  EXPECT_TRUE(torch::equal(m->gate->weight, gate));
  EXPECT_NEAR((m->w1 - m->w1.mean(0, true)).abs().max().item<double>(), 0.1 * spread, 1e-6);
}

TEST(Ewa, ShareRateSchedules) {
  ewa::EwaConfig c;
  c.share_rate = 0.4;
  EXPECT_DOUBLE_EQ(ewa::moe::share_rate_at(c, 1, 100), 0.4);
  EXPECT_DOUBLE_EQ(ewa::moe::share_rate_at(c, 100, 100), 0.4);
  c.schedule = "linear";
  EXPECT_DOUBLE_EQ(ewa::moe::share_rate_at(c, 50, 100), 0.2);
  EXPECT_DOUBLE_EQ(ewa::moe::share_rate_at(c, 100, 100), 0.4);
  c.ramp_steps = 10;
  EXPECT_DOUBLE_EQ(ewa::moe::share_rate_at(c, 5, 100), 0.2);
  EXPECT_DOUBLE_EQ(ewa::moe::share_rate_at(c, 50, 100), 0.4);
  c.schedule = "cosine";
  c.ramp_steps = 0;
  EXPECT_NEAR(ewa::moe::share_rate_at(c, 50, 100), 0.2, 1e-12);
  EXPECT_NEAR(ewa::moe::share_rate_at(c, 25, 100), 0.4 * (1 - std::cos(M_PI / 4)) / 2, 1e-12);
  c.schedule = "constant";
  c.until_step = 30;  // Early EWA
  EXPECT_DOUBLE_EQ(ewa::moe::share_rate_at(c, 30, 100), 0.4);
  EXPECT_DOUBLE_EQ(ewa::moe::share_rate_at(c, 31, 100), 0.0);
  c.enabled = false;
  EXPECT_DOUBLE_EQ(ewa::moe::share_rate_at(c, 1, 100), 0.0);
}

}  // namespace
