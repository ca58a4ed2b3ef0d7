// RupMoE and RoutedMoE against naive per-token reference loops on fresh random inputs.
#include <gtest/gtest.h>

#include "moe/routed_moe.h"
#include "moe/rup_moe.h"

namespace {
using ewa::moe::ExpertsOptions;

// Expert e on one token row x [D], the slow way.
torch::Tensor expert_on_token(const ewa::moe::ExpertsFeedForwardImpl& m, int64_t e, const torch::Tensor& x) {
  auto h = torch::gelu(torch::matmul(m.w1[e], x) + m.b1[e]);
  return torch::matmul(m.w2[e], h) + m.b2[e];
}

// Reference RupMoE output: token perm[p] goes to the expert whose chunk holds position p.
torch::Tensor naive_rup(const ewa::moe::RupMoEImpl& m, const torch::Tensor& x, const torch::Tensor& perm) {
  const int64_t d = x.size(-1), tokens = x.numel() / d;
  auto flat = x.reshape({tokens, d});
  const auto sizes = ewa::moe::rup_chunk_sizes(tokens, m.num_experts());
  std::vector<torch::Tensor> rows(tokens);
  int64_t pos = 0;
  for (int64_t e = 0; e < m.num_experts(); ++e)
    for (int64_t k = 0; k < sizes[e]; ++k, ++pos) {
      const int64_t t = perm[pos].item<int64_t>();
      rows[t] = expert_on_token(m, e, flat[t]);
    }
  return torch::stack(rows).view(x.sizes());
}

ewa::moe::RupMoE make_rup(int64_t d, int64_t h, int64_t n) {
  ewa::moe::RupMoE m(ExpertsOptions(d, h, n));
  torch::NoGradGuard g;
  for (auto& p : m->parameters()) p.normal_(0, 0.5);
  return m;
}

TEST(RupMoE, ChunkSizesDifferByAtMostOneAndSumToTokens) {
  for (int64_t m : {0, 1, 5, 16, 17, 1000, 1001}) {
    for (int64_t n : {2, 3, 4, 7}) {
      auto s = ewa::moe::rup_chunk_sizes(m, n);
      ASSERT_EQ(int64_t(s.size()), n);
      EXPECT_EQ(std::accumulate(s.begin(), s.end(), int64_t(0)), m);
      EXPECT_LE(*std::max_element(s.begin(), s.end()) - *std::min_element(s.begin(), s.end()), 1);
    }
  }
}

TEST(RupMoE, ForwardAndGradientsMatchNaivePerTokenLoop) {
  for (auto [b, t, n] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, 8, 4}, {3, 7, 4}, {1, 5, 3}, {2, 9, 2}}) {
    auto fast = make_rup(6, 10, n);
    auto slow = make_rup(6, 10, n);
    {
      torch::NoGradGuard g;
      for (size_t i = 0; i < fast->parameters().size(); ++i) slow->parameters()[i].copy_(fast->parameters()[i]);
    }
    auto x = torch::randn({b, t, 6});
    auto x1 = x.clone().requires_grad_(true), x2 = x.clone().requires_grad_(true);
    auto perm = torch::randperm(b * t, torch::kLong);
    auto y1 = fast->forward_partitioned(x1, perm);
    auto y2 = naive_rup(*slow, x2, perm);
    ASSERT_TRUE(torch::allclose(y1, y2, 1e-5, 1e-5)) << "b=" << b << " t=" << t << " n=" << n;
    auto g = torch::randn_like(y1);
    (y1 * g).sum().backward();
    (y2 * g).sum().backward();
    EXPECT_TRUE(torch::allclose(x1.grad(), x2.grad(), 1e-4, 1e-5));
    for (size_t i = 0; i < fast->parameters().size(); ++i)
      EXPECT_TRUE(torch::allclose(fast->parameters()[i].grad(), slow->parameters()[i].grad(), 1e-4, 1e-5))
          << "parameter " << i;
  }
}

// Expert e outputs the constant e + 1 (w2 = 0, b2 = e + 1), so the output names the expert.
ewa::moe::RupMoE labelled_experts(int64_t d, int64_t n) {
  auto m = make_rup(d, 4, n);
  torch::NoGradGuard g;
  m->w2.zero_();
  for (int64_t e = 0; e < n; ++e) m->b2[e].fill_(double(e + 1));
  return m;
}

TEST(RupMoE, PartitionCoversEveryTokenOnceWithBalancedChunks) {
  const int64_t n = 4;
  auto m = labelled_experts(3, n);
  m->train();
  auto x = torch::randn({3, 11, 3});  // 33 tokens: chunks 9, 8, 8, 8
  auto y = m->forward(x).reshape({33, 3});
  auto expert = y.select(1, 0);
  // Every token got exactly one expert's output: the same integral value on all channels.
  EXPECT_TRUE(torch::equal(y, expert.unsqueeze(1).expand({33, 3})));
  EXPECT_TRUE(torch::equal(expert, expert.round()));
  auto counts = torch::bincount(expert.to(torch::kLong) - 1, {}, n);
  EXPECT_EQ(counts.sum().item<int64_t>(), 33);
  EXPECT_LE((counts.max() - counts.min()).item<int64_t>(), 1);
}

TEST(RupMoE, PartitionsDifferBetweenPassesUnlessSeeded) {
  auto m = labelled_experts(2, 4);
  m->train();
  auto x = torch::randn({4, 16, 2});
  auto a = m->forward(x), b = m->forward(x);
  EXPECT_FALSE(torch::equal(a, b));
  torch::manual_seed(123);
  auto c = m->forward(x);
  torch::manual_seed(123);
  auto d = m->forward(x);
  EXPECT_TRUE(torch::equal(c, d));
}

TEST(RupMoE, EqualExpertsInTrainingEqualTheDenseFfn) {
  auto m = make_rup(8, 12, 4);
  ewa::nn::Mlp dense(ewa::nn::MlpOptions(8, 12));
  {
    torch::NoGradGuard g;
    for (int64_t e = 0; e < 4; ++e) {
      m->w1[e].copy_(dense->fc1->weight);
      m->b1[e].copy_(dense->fc1->bias);
      m->w2[e].copy_(dense->fc2->weight);
      m->b2[e].copy_(dense->fc2->bias);
    }
  }
  m->train();
  auto x = torch::randn({3, 9, 8});
  EXPECT_TRUE(torch::allclose(m->forward(x), dense->forward(x), 1e-5, 1e-6));
}

TEST(RupMoE, EvalUsesTheExpertMeanFfn) {
  auto m = make_rup(8, 12, 3);
  m->eval();
  auto x = torch::randn({2, 5, 8});
  auto expected = torch::linear(torch::gelu(torch::linear(x, m->w1.mean(0), m->b1.mean(0))), m->w2.mean(0), m->b2.mean(0));
  EXPECT_TRUE(torch::allclose(m->forward(x), expected, 1e-5, 1e-6));
  // No random partition at evaluation: a sample's output does not depend on the rest of the batch.
  EXPECT_TRUE(torch::allclose(m->forward(x.narrow(0, 1, 1)), m->forward(x).narrow(0, 1, 1), 1e-5, 1e-6));
}

// ---- RoutedMoE ----

ewa::moe::RoutedMoE make_routed(int64_t d, int64_t n, int64_t k, double capacity) {
  ewa::moe::RoutedMoE m(ExpertsOptions(d, 10, n), ewa::moe::RoutingOptions().top_k(k).capacity_factor(capacity).eval_capacity_factor(capacity));
  torch::NoGradGuard g;
  for (auto& p : m->parameters()) p.normal_(0, 0.5);
  return m;
}

torch::Tensor naive_routed(const ewa::moe::RoutedMoEImpl& m, const torch::Tensor& x, int64_t k) {
  const int64_t d = x.size(-1), tokens = x.numel() / d;
  auto flat = x.reshape({tokens, d});
  std::vector<torch::Tensor> rows;
  for (int64_t t = 0; t < tokens; ++t) {
    auto p = torch::softmax(torch::matmul(m.gate->weight, flat[t]), 0);
    auto [v, e] = p.topk(k);
    if (k == 2) v = v / v.sum();
    auto y = torch::zeros({d});
    for (int64_t j = 0; j < k; ++j) y = y + v[j] * expert_on_token(m, e[j].item<int64_t>(), flat[t]);
    rows.push_back(y);
  }
  return torch::stack(rows).view(x.sizes());
}

TEST(RoutedMoE, MatchesNaiveLoopWhenNothingIsDropped) {
  for (int64_t k : {1, 2}) {
    auto m = make_routed(6, 4, k, /*capacity=*/8.0);  // capacity >= all tokens: no drops
    m->train();
    auto x = torch::randn({2, 7, 6}, torch::requires_grad());
    auto y = m->forward(x);
    EXPECT_EQ(m->last_dropped(), 0);
    EXPECT_TRUE(torch::allclose(y, naive_routed(*m, x.detach(), k), 1e-5, 1e-5)) << "k=" << k;
    y.sum().backward();
    EXPECT_GT(m->gate->weight.grad().abs().sum().item<double>(), 0.0);  // the gate learns
  }
}

TEST(RoutedMoE, OverflowTokensAreDroppedInTokenOrder) {
  auto m = make_routed(4, 2, 1, /*capacity=*/0.5);  // capacity = ceil(0.5 * 1 * 8 / 2) = 2 per expert
  {
    torch::NoGradGuard g;
    m->gate->weight.zero_();
    m->gate->weight[0][0] = 10.0;  // tokens with x0 > 0 pick expert 0, others expert 1
  }
  auto x = torch::randn({1, 8, 4}).abs();  // all tokens pick expert 0
  m->train();
  EXPECT_EQ(m->capacity(8), 2);
  auto y = m->forward(x).view({8, 4});
  EXPECT_EQ(m->last_dropped(), 6);
  auto ref = naive_routed(*m, x, 1).view({8, 4});
  EXPECT_TRUE(torch::allclose(y.narrow(0, 0, 2), ref.narrow(0, 0, 2), 1e-5, 1e-5));  // first two served
  EXPECT_TRUE(torch::equal(y.narrow(0, 2, 6), torch::zeros({6, 4})));              // the rest dropped
}

TEST(RoutedMoE, AuxLossIsOneForAUniformGateAndMatchesHandComputation) {
  auto m = make_routed(4, 4, 1, 2.0);
  {
    torch::NoGradGuard g;
    m->gate->weight.zero_();
  }
  m->train();
  m->forward(torch::randn({2, 5, 4}));
  EXPECT_NEAR(m->aux_loss().item<double>(), 1.0, 1e-6);
  // Two experts, two tokens both preferring expert 0 with p = (0.8, 0.2) and (0.6, 0.4):
  // f = (1, 0), P = (0.7, 0.3): loss = 2 * (1 * 0.7 + 0 * 0.3) = 1.4.
  auto two = make_routed(2, 2, 1, 2.0);
  {
    torch::NoGradGuard g;
    two->gate->weight.copy_(torch::tensor({{1.0f, 0.0f}, {0.0f, 0.0f}}));
  }
  two->train();
  const float l1 = std::log(0.8f / 0.2f), l2 = std::log(0.6f / 0.4f);
  two->forward(torch::tensor({{l1, 0.0f}, {l2, 0.0f}}).view({1, 2, 2}));
  EXPECT_NEAR(two->aux_loss().item<double>(), 1.4, 1e-5);
}

}  // namespace
