// farthest_point_sample, knn and group_points against naive reference loops on fresh random
// clouds, plus edge cases.
#include <gtest/gtest.h>

#include <set>

#include "kernels/common/simd.h"
#include "kernels/fps/fps.h"
#include "kernels/fps/fps_fast.h"
#include "kernels/group/group.h"
#include "kernels/knn/knn.h"
#include "kernels/knn/knn_fast.h"

#include <torch/torch.h>

namespace {
using namespace ewa::kernels;

// Every SIMD level this CPU runs (kernels/common/simd.h), the widest last; the level is restored
// when the test ends.
struct EachSimdLevel {
  simd::Level saved = simd::level();
  ~EachSimdLevel() { simd::set_level(saved); }
  std::vector<simd::Level> levels() const {
    std::vector<simd::Level> out;
    for (int l = 0; l <= static_cast<int>(simd::supported()); ++l) out.push_back(static_cast<simd::Level>(l));
    return out;
  }
};

// The textbook algorithm with tensor ops: distances to the nearest chosen sample, argmax
// (first maximum on ties).
torch::Tensor naive_fps(const torch::Tensor& cloud, int64_t s, int64_t start) {
  const int64_t n = cloud.size(0);
  auto nearest = torch::full({n}, std::numeric_limits<float>::infinity());
  std::vector<int64_t> out{start};
  for (int64_t k = 1; k < s; ++k) {
    auto diff = cloud - cloud[out.back()];
    auto d = diff.select(1, 0) * diff.select(1, 0) + diff.select(1, 1) * diff.select(1, 1) +
             diff.select(1, 2) * diff.select(1, 2);
    nearest = torch::minimum(nearest, d);
    const float best = nearest.max().item<float>();
    out.push_back((nearest == best).nonzero()[0][0].item<int64_t>());
  }
  return torch::tensor(out, torch::kLong);
}

TEST(Fps, MatchesNaiveLoopOnRandomClouds) {
  for (auto [b, n, s] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 50, 10}, {3, 200, 32}, {2, 1024, 64}}) {
    auto pts = torch::randn({b, n, 3});
    auto idx = farthest_point_sample(pts, s);
    ASSERT_EQ(idx.sizes(), (std::vector<int64_t>{b, s}));
    for (int64_t i = 0; i < b; ++i) EXPECT_TRUE(torch::equal(idx[i], naive_fps(pts[i], s, 0))) << "cloud " << i;
    auto other = farthest_point_sample(pts, s, 7);
    for (int64_t i = 0; i < b; ++i) EXPECT_TRUE(torch::equal(other[i], naive_fps(pts[i], s, 7)));
  }
}

TEST(Fps, Pointnet2RuleEqualsExactFpsAwayFromTheOriginAndTies) {
  // Clouds shifted away from the origin, continuous coordinates: no skipped point, no tie.
  for (auto [b, n, s] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, 37, 9}, {2, 700, 64}, {1, 2048, 128}}) {
    auto pts = torch::randn({b, n, 3}) + 3.0;
    auto idx = farthest_point_sample(pts, s, 0, FpsRule::Pointnet2);
    for (int64_t i = 0; i < b; ++i) EXPECT_TRUE(torch::equal(idx[i], naive_fps(pts[i], s, 0))) << n;
  }
}

TEST(Fps, Pointnet2RuleNeverChoosesPointsNearTheOrigin) {
  auto cloud = torch::randn({300, 3});
  auto norm2 = cloud.pow(2).sum(1);
  cloud.index_put_({norm2 <= 1e-3}, 0.5);  // no accidental near-origin points
  // Points 10..14 lie within 0.0316 of the origin.
  cloud.narrow(0, 10, 5).copy_(torch::rand({5, 3}) * 0.01);
  auto idx = farthest_point_sample(cloud.unsqueeze(0), 100, 0, FpsRule::Pointnet2)[0];
  for (int64_t k = 0; k < 100; ++k) {
    const auto i = idx[k].item<int64_t>();
    EXPECT_FALSE(i >= 10 && i < 15) << "sample " << k;
  }
  // Oracle: exact FPS on the cloud without those points, indices mapped back.
  auto keep = torch::cat({torch::arange(10), torch::arange(15, 300)});
  auto ref = keep.index_select(0, naive_fps(cloud.index_select(0, keep), 100, 0));
  EXPECT_TRUE(torch::equal(idx, ref));
}

TEST(Fps, Pointnet2RuleBreaksTiesAsItsBlockReduction) {
  // 8 points = 8 threads, one point each. After point 0, points 3 and 5 are equally far (5.0);
  // the fold pairs (1,5) -> position 1 holds 5, (3,7) -> 3, then (1,3) ties: position 1 keeps 5.
  auto cloud = torch::tensor({1.f, 0.f, 0.f,     1.1f, 0.1f, 0.f,  1.2f, 0.f, 0.1f, -1.f, 1.f, 0.f,
                              1.f, 0.2f, 0.f,   -1.f, -1.f, 0.f,  1.f, 0.f, 0.3f,  0.9f, 0.f, 0.f})
                   .view({1, 8, 3});
  EXPECT_EQ(pointnet2_fps_threads(8), 8);
  EXPECT_EQ(farthest_point_sample(cloud, 2, 0, FpsRule::Pointnet2)[0][1].item<int64_t>(), 5);
  EXPECT_EQ(farthest_point_sample(cloud, 2)[0][1].item<int64_t>(), 3);  // the exact rule: lowest index
  EXPECT_EQ(pointnet2_fps_threads(1), 1);
  EXPECT_EQ(pointnet2_fps_threads(700), 512);
  EXPECT_EQ(pointnet2_fps_threads(300), 256);
}

// The fast path (SIMD lanes, shares of one cloud on several threads) against the readable twins,
// on clouds with many exact ties (coordinates on a coarse lattice), points near the origin, and
// sizes around the lane and block boundaries.
TEST(Fps, FastPathEqualsTheReferenceTwinsForAnyThreadCount) {
  for (int64_t n : {1, 5, 16, 17, 100, 513, 4096, 9000, 20011}) {
    for (bool lattice : {false, true}) {
      auto cloud = lattice ? torch::randint(-4, 5, {n, 3}).to(torch::kFloat) * 0.25f : torch::randn({n, 3});
      if (n > 20) cloud.narrow(0, 3, 4).mul_(0.001f);  // within the pointnet2 rule's origin ball
      const int64_t s = std::min<int64_t>(n, 200);
      const float* p = cloud.data_ptr<float>();
      std::vector<int64_t> ref(s), ref2(s), fast(s);
      const int64_t start = n / 3;
      farthest_point_sample_cpu(p, n, s, start, ref.data());
      farthest_point_sample_pointnet2_cpu(p, n, s, ref2.data());
      EachSimdLevel simd_levels;
      for (simd::Level level : simd_levels.levels())
        for (int threads : {1, 2, 3}) {
          simd::set_level(level);
          SCOPED_TRACE("n " + std::to_string(n) + (lattice ? " lattice" : " gaussian") + ", threads " +
                       std::to_string(threads) + ", " + simd::name(level));
          farthest_point_sample_fast(p, n, s, start, /*pointnet2=*/false, threads, fast.data());
          EXPECT_EQ(fast, ref);
          farthest_point_sample_fast(p, n, s, 0, /*pointnet2=*/true, threads, fast.data());
          EXPECT_EQ(fast, ref2);
        }
    }
  }
}

TEST(Fps, EdgeCases) {
  auto pts = torch::rand({2, 40, 3});
  // S = N: a permutation.
  auto all = farthest_point_sample(pts, 40);
  for (int64_t i = 0; i < 2; ++i) EXPECT_TRUE(torch::equal(std::get<0>(all[i].sort()), torch::arange(40)));
  // Duplicates are chosen only after every distinct point.
  auto dup = torch::cat({pts, pts.narrow(1, 0, 10)}, 1);  // points 40..49 repeat 0..9
  auto idx = farthest_point_sample(dup, 40);
  for (int64_t i = 0; i < 2; ++i) {
    auto chosen = dup[i].index_select(0, idx[i]);
    EXPECT_EQ(std::get<0>(at::_unique(chosen.sum(1))).size(0), 40);  // 40 distinct points
  }
  // Non-contiguous input gives the same answer.
  auto wide = torch::randn({2, 3, 60}).transpose(1, 2);
  ASSERT_FALSE(wide.is_contiguous());
  EXPECT_TRUE(torch::equal(farthest_point_sample(wide, 16), farthest_point_sample(wide.contiguous(), 16)));
  // Seeded starts: each cloud's seeded run is the plain FPS from the start it drew, the starts
  // differ between seeds, and a seed gives the same run again.
  const auto seeded = farthest_point_sample_seeded(pts, 8, 5);
  std::set<int64_t> starts;
  for (int64_t seed = 0; seed < 8; ++seed) {
    const auto run = farthest_point_sample_seeded(pts, 8, seed);
    for (int64_t i = 0; i < 2; ++i) {
      const int64_t start = run[i][0].item<int64_t>();
      starts.insert(start);
      EXPECT_TRUE(torch::equal(run[i], farthest_point_sample(pts.narrow(0, i, 1), 8, start)[0])) << seed << " " << i;
    }
  }
  EXPECT_GT(starts.size(), 1u);
  EXPECT_TRUE(torch::equal(seeded, farthest_point_sample_seeded(pts, 8, 5)));  // reproducible
  // Errors name the problem.
  EXPECT_THROW(farthest_point_sample(pts, 41), c10::Error);
  EXPECT_THROW(farthest_point_sample(pts, 0), c10::Error);
  EXPECT_THROW(farthest_point_sample(torch::rand({2, 40, 2}), 4), c10::Error);
  EXPECT_THROW(farthest_point_sample(pts.to(torch::kDouble), 4), c10::Error);
  EXPECT_THROW(farthest_point_sample(pts, 4, 40), c10::Error);
  try {
    farthest_point_sample(pts, 41);
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("S must be in [1, N = 40]"), std::string::npos);
  }
}

TEST(Knn, MatchesNaiveSortOnRandomClouds) {
  for (auto [b, s, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
           {1, 5, 30, 4}, {2, 70, 300, 16}, {3, 10, 32, 32}, {1, 130, 100, 1}}) {
    auto q = torch::randn({b, s, 3}), p = torch::randn({b, n, 3});
    auto [idx, dist] = knn(q, p, k);
    ASSERT_EQ(idx.sizes(), (std::vector<int64_t>{b, s, k}));
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < s; ++j) {
        auto diff = p[i] - q[i][j];
        auto d = diff.select(1, 0) * diff.select(1, 0) + diff.select(1, 1) * diff.select(1, 1) +
                 diff.select(1, 2) * diff.select(1, 2);
        auto [sd, si] = d.sort(/*stable=*/true, 0, false);
        EXPECT_TRUE(torch::equal(idx[i][j], si.narrow(0, 0, k))) << i << "," << j;
        EXPECT_TRUE(torch::equal(dist[i][j], sd.narrow(0, 0, k)));
      }
  }
}

TEST(Knn, EdgeCases) {
  auto p = torch::randn({2, 20, 3});
  // Query = the cloud itself: every point finds itself first at distance 0.
  auto [idx, dist] = knn(p, p, 3);
  EXPECT_TRUE(torch::equal(idx.select(2, 0), torch::arange(20).expand({2, 20})));
  EXPECT_TRUE(torch::equal(dist.select(2, 0), torch::zeros({2, 20})));
  // Duplicated points: ties go to the lower index.
  auto dup = torch::cat({p, p}, 1);
  auto [di, dd] = knn(p, dup, 2);
  EXPECT_TRUE(torch::equal(di.select(2, 0), torch::arange(20).expand({2, 20})));
  EXPECT_TRUE(torch::equal(di.select(2, 1), torch::arange(20, 40).expand({2, 20})));
  // K = N returns all points sorted.
  auto [ai, ad] = knn(p.narrow(1, 0, 1), p, 20);
  EXPECT_TRUE(torch::equal(std::get<0>(ai.sort(2)), torch::arange(20).expand({2, 1, 20})));
  // Non-contiguous inputs.
  auto pt = torch::randn({2, 3, 20}).transpose(1, 2);
  EXPECT_TRUE(torch::equal(std::get<0>(knn(pt, pt, 4)), std::get<0>(knn(pt.contiguous(), pt.contiguous(), 4))));
  EXPECT_THROW(knn(p, p, 21), c10::Error);
  EXPECT_THROW(knn(p, p, 0), c10::Error);
  EXPECT_THROW(knn(p, torch::randn({3, 20, 3}), 2), c10::Error);
}

TEST(Group, MatchesNaiveGatherMinusCenter) {
  auto pts = torch::randn({2, 50, 6});  // xyz + normals
  auto centers_idx = farthest_point_sample(pts.narrow(2, 0, 3), 8);
  auto centers = torch::stack({pts[0].index_select(0, centers_idx[0]), pts[1].index_select(0, centers_idx[1])})
                     .narrow(2, 0, 3)
                     .contiguous();
  auto [idx, dist] = knn(centers, pts.narrow(2, 0, 3), 5);
  auto out = group_points(pts, idx, centers);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 8, 5, 6}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t s = 0; s < 8; ++s)
      for (int64_t k = 0; k < 5; ++k) {
        auto src = pts[b][idx[b][s][k].item<int64_t>()];
        EXPECT_TRUE(torch::equal(out[b][s][k].narrow(0, 0, 3), src.narrow(0, 0, 3) - centers[b][s]));
        EXPECT_TRUE(torch::equal(out[b][s][k].narrow(0, 3, 3), src.narrow(0, 3, 3)));
      }
  // The nearest neighbour of a center is the center itself: its grouped xyz is 0.
  EXPECT_TRUE(torch::equal(out.select(2, 0).narrow(2, 0, 3), torch::zeros({2, 8, 3})));
  auto bad = idx.clone();
  bad[0][0][0] = 50;
  EXPECT_THROW(group_points(pts, bad, centers), c10::Error);
}

TEST(PointOps, RunOnEveryDevicePresent) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto pts = torch::randn({3, 2000, 3});
  auto g = pts.cuda();
  EXPECT_TRUE(torch::equal(farthest_point_sample(g, 64).cpu(), farthest_point_sample(pts, 64)));
  // The pointnet2 rule: near-origin points skipped, ties as its fold (the 8-point case above too).
  auto near = pts.clone();
  near.narrow(1, 5, 20).mul_(0.005);
  EXPECT_TRUE(torch::equal(farthest_point_sample(near.cuda(), 64, 0, FpsRule::Pointnet2).cpu(),
                           farthest_point_sample(near, 64, 0, FpsRule::Pointnet2)));
  auto small = torch::randn({2, 300, 3});
  EXPECT_TRUE(torch::equal(farthest_point_sample(small.cuda(), 50, 0, FpsRule::Pointnet2).cpu(),
                           farthest_point_sample(small, 50, 0, FpsRule::Pointnet2)));
  auto centers = pts.narrow(1, 0, 100).contiguous();
  auto [ci, cd] = knn(centers, pts, 32);
  auto [gi, gd] = knn(centers.cuda(), g, 32);
  EXPECT_TRUE(torch::equal(gi.cpu(), ci));
  EXPECT_TRUE(torch::equal(gd.cpu(), cd));
  EXPECT_TRUE(torch::equal(group_points(g, gi, centers.cuda()).cpu(), group_points(pts, ci, centers)));
}

}  // namespace

namespace {
TEST(Knn, FastPathsEqualTheReferenceOnSurfacesVolumesAndTies) {
  // Uniform volume, thin surfaces (most cells empty; 1024 points is the Point-MAE size, where the
  // candidates are ranked without sorting), duplicates, a lattice (many equal distances: more
  // candidates than are ranked, so sorted), a tiny cloud, and an off-cloud query set; at every
  // SIMD level this CPU runs.
  auto volume = torch::rand({5000, 3});
  auto sphere_of = [](int64_t n) {
    auto dirs = torch::randn({n, 3});
    return (dirs / dirs.norm(2, 1, true)).contiguous();
  };
  auto dup = torch::cat({volume.narrow(0, 0, 2500), volume.narrow(0, 0, 2500)});
  auto lattice = torch::randint(0, 6, {3000, 3}).to(torch::kFloat) * 0.5f;
  auto tiny = torch::randn({45, 3});
  EachSimdLevel simd_levels;
  for (const auto& cloud : {volume, sphere_of(6000), sphere_of(1024), sphere_of(1031), dup, lattice, tiny}) {
    const int64_t n = cloud.size(0);
    auto queries = torch::cat({cloud.narrow(0, 0, std::min<int64_t>(n, 100)), torch::randn({50, 3}) * 2});
    const int64_t s = queries.size(0);
    ewa::kernels::KnnGrid grid(cloud.data_ptr<float>(), n);
    for (int64_t k : {1, 16, 32, 40}) {
      std::vector<int64_t> ri(s * k);
      std::vector<float> rd(s * k);
      ewa::kernels::knn_cpu(queries.data_ptr<float>(), s, cloud.data_ptr<float>(), n, k, ri.data(), rd.data());
      for (simd::Level level : simd_levels.levels()) {
        simd::set_level(level);
        SCOPED_TRACE("n " + std::to_string(n) + ", k " + std::to_string(k) + ", " + simd::name(level));
        std::vector<int64_t> fi(s * k), bi(s * k);
        std::vector<float> fd(s * k), bd(s * k);
        grid.query(queries.data_ptr<float>(), s, k, fi.data(), fd.data());
        ewa::kernels::knn_brute_fast(queries.data_ptr<float>(), s, cloud.data_ptr<float>(), n, k, bi.data(), bd.data());
        EXPECT_EQ(fi, ri) << "grid";
        EXPECT_EQ(fd, rd) << "grid";
        EXPECT_EQ(bi, ri) << "brute force";
        EXPECT_EQ(bd, rd) << "brute force";
      }
    }
  }
  // And through the dispatcher for a large batch (the grid path).
  auto big = torch::randn({2, 5000, 3});
  auto [gi, gd] = knn(big.narrow(1, 0, 200).contiguous(), big, 8);
  std::vector<int64_t> ri(200 * 8);
  std::vector<float> rd(200 * 8);
  auto b1 = big[1].contiguous();
  ewa::kernels::knn_cpu(b1.data_ptr<float>(), 200, b1.data_ptr<float>(), 5000, 8, ri.data(), rd.data());
  EXPECT_TRUE(torch::equal(gi[1].flatten(), torch::tensor(ri, torch::kLong)));
}
}  // namespace
