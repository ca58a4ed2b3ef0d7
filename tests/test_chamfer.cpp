// Chamfer distance against a naive loop (values, indices) and against autograd of a brute-force
// formulation (gradients), plus a hand-computed case.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "kernels/chamfer/chamfer.h"

namespace {
using namespace ewa::kernels;

// Brute force with tensor ops: all pairwise squared distances, min over the other set.
std::pair<torch::Tensor, torch::Tensor> brute_force(const torch::Tensor& a, const torch::Tensor& b) {
  auto d = (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(-1);  // [B, N, M]
  return {std::get<0>(d.min(2)), std::get<0>(d.min(1))};
}

TEST(Chamfer, NearestMatchesNaiveLoop) {
  for (auto [B, N, M] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1}, {2, 17, 5}, {3, 64, 200}}) {
    auto a = torch::randn({B, N, 3}), b = torch::randn({B, M, 3});
    auto [da, ia, db, ib] = chamfer_nearest(a, b);
    for (int64_t c = 0; c < B; ++c) {
      for (int64_t i = 0; i < N; ++i) {
        float best = INFINITY;
        int64_t best_j = -1;
        for (int64_t j = 0; j < M; ++j) {
          const float d = (a[c][i] - b[c][j]).pow(2).sum().item<float>();
          if (d < best) best = d, best_j = j;
        }
        EXPECT_NEAR(da[c][i].item<float>(), best, 1e-5f * (1 + best));
        EXPECT_EQ(ia[c][i].item<int64_t>(), best_j);
      }
    }
    auto [ra, rb] = brute_force(a, b);
    EXPECT_TRUE(torch::allclose(db, rb, 1e-5, 1e-6));
    EXPECT_TRUE(torch::equal(ib, std::get<1>((b.unsqueeze(2) - a.unsqueeze(1)).pow(2).sum(-1).min(2))));
  }
}

TEST(Chamfer, HandComputed) {
  // a = {(0,0,0), (2,0,0)}, b = {(0,1,0)}: dist_a = {1, 5}, dist_b = {1}; L2 = (1+5)/2 + 1 = 4.
  auto a = torch::tensor({0.f, 0.f, 0.f, 2.f, 0.f, 0.f}).view({1, 2, 3});
  auto b = torch::tensor({0.f, 1.f, 0.f}).view({1, 1, 3});
  EXPECT_FLOAT_EQ(chamfer_distance_l2(a, b).item<float>(), 4.0f);
  // L1 = ((1 + sqrt 5)/2 + 1) / 2.
  EXPECT_NEAR(chamfer_distance_l1(a, b).item<float>(), ((1 + std::sqrt(5.f)) / 2 + 1) / 2, 1e-6);
  // Ties go to the lowest index: b2 = {(1,0,0) twice} -> both of a's points pick index 0.
  auto b2 = torch::tensor({1.f, 0.f, 0.f, 1.f, 0.f, 0.f}).view({1, 2, 3});
  auto [da, ia, db, ib] = chamfer_nearest(a, b2);
  EXPECT_EQ(ia[0][0].item<int64_t>(), 0);
  EXPECT_EQ(ia[0][1].item<int64_t>(), 0);
  EXPECT_EQ(ib[0][0].item<int64_t>(), 0);  // (1,0,0) is 1 from both points of a: index 0
  // Identical sets: distance 0, and a finite L1 gradient.
  auto x = torch::randn({2, 8, 3}).requires_grad_();
  auto l1 = chamfer_distance_l1(x, x.detach().clone());
  EXPECT_NEAR(l1.item<float>(), 1e-6, 1e-6);
  l1.backward();
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
}

TEST(Chamfer, GradientsMatchAutogradOfBruteForce) {
  for (auto [B, N, M] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 3, 4}, {4, 32, 32}, {2, 100, 37}}) {
    auto a0 = torch::randn({B, N, 3}), b0 = torch::randn({B, M, 3});
    for (bool l1 : {false, true}) {
      auto a = a0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      auto loss = l1 ? chamfer_distance_l1(a, b) : chamfer_distance_l2(a, b);
      auto w = torch::randn({});  // a random upstream gradient
      (loss * w).backward();
      auto ra = a0.clone().requires_grad_(), rb = b0.clone().requires_grad_();
      auto [da, db] = brute_force(ra, rb);
      auto ref = l1 ? (da.sqrt().mean() + db.sqrt().mean()) / 2 : da.mean() + db.mean();
      (ref * w).backward();
      EXPECT_NEAR(loss.item<float>(), ref.item<float>(), 1e-5 * (1 + std::abs(ref.item<float>())));
      EXPECT_TRUE(torch::allclose(a.grad(), ra.grad(), 1e-4, 1e-6)) << "l1 " << l1 << " B " << B;
      EXPECT_TRUE(torch::allclose(b.grad(), rb.grad(), 1e-4, 1e-6)) << "l1 " << l1 << " B " << B;
    }
  }
}

TEST(Chamfer, ArgumentErrorsNameTheArgument) {
  auto ok = torch::randn({2, 5, 3});
  auto message = [](auto fn) {
    try {
      fn();
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { chamfer_distance_l2(torch::randn({2, 5, 2}), ok); }).find("'a' must be [B, N, 3]"), std::string::npos);
  EXPECT_NE(message([&] { chamfer_distance_l2(ok, torch::randn({3, 5, 3})); }).find("batch sizes differ"), std::string::npos);
  EXPECT_NE(message([&] { chamfer_distance_l2(ok, torch::randn({2, 0, 3})); }).find("'b' must be"), std::string::npos);
  EXPECT_NE(message([&] { chamfer_distance_l2(ok, ok.to(torch::kDouble)); }).find("float32"), std::string::npos);
}

TEST(Chamfer, CudaMatchesCpuTwin) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto a = torch::randn({3, 300, 3}), b = torch::randn({3, 700, 3});
  auto [da, ia, db, ib] = chamfer_nearest(a, b);
  auto [gda, gia, gdb, gib] = chamfer_nearest(a.cuda(), b.cuda());
  EXPECT_TRUE(torch::equal(gda.cpu(), da));
  EXPECT_TRUE(torch::equal(gia.cpu(), ia));
  EXPECT_TRUE(torch::equal(gdb.cpu(), db));
  EXPECT_TRUE(torch::equal(gib.cpu(), ib));
  auto ca = a.clone().requires_grad_(), cb = b.clone().requires_grad_();
  chamfer_distance_l2(ca, cb).backward();
  auto ga = a.cuda().requires_grad_(), gb = b.cuda().requires_grad_();
  chamfer_distance_l2(ga, gb).backward();
  EXPECT_TRUE(torch::allclose(ga.grad().cpu(), ca.grad(), 1e-5, 1e-7));
  EXPECT_TRUE(torch::allclose(gb.grad().cpu(), cb.grad(), 1e-5, 1e-7));
}

}  // namespace
