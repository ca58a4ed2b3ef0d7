#include "bench/point_ops.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <chrono>
#include <cstdio>
#include <sstream>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "common/error.h"
#include "datasets/synthetic.h"
#include "kernels/fps/fps.h"
#include "models/point_transformer.h"
#include "kernels/knn/knn.h"

#ifdef EWA_HAS_OPEN3D
#include <open3d/geometry/KDTreeFlann.h>
#include <open3d/geometry/PointCloud.h>
#endif

namespace ewa::bench {

bool bench_ops_available() {
#ifdef EWA_HAS_OPEN3D
  return true;
#else
  return false;
#endif
}

#ifdef EWA_HAS_OPEN3D
namespace {

template <typename F>
double median_ms(int64_t repeats, F&& f) {
  std::vector<double> ms;
  for (int64_t r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

std::vector<PointOpsRow> bench_point_ops(const PointOpsOptions& o) {
  std::vector<PointOpsRow> rows;
  const int threads = at::get_num_threads();
  for (const int64_t n : o.sizes) {
    // A torus surface from the synthetic shapes generator: a realistic surface cloud.
    data::SynthOptions so;
    so.points = n;
    so.max_occlusion = 0;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed + static_cast<uint64_t>(n));
    auto cloud = data::synth_shape(4, so, gen).contiguous();  // [n, 3]
    const int64_t s = std::min<int64_t>(1024, n / 8);
    open3d::geometry::PointCloud pcd;
    auto acc = cloud.accessor<float, 2>();
    for (int64_t i = 0; i < n; ++i) pcd.points_.emplace_back(acc[i][0], acc[i][1], acc[i][2]);
    auto batch = cloud.unsqueeze(0);

    // FPS
    PointOpsRow fps;
    fps.op = "fps", fps.points = n, fps.samples = s;
    torch::Tensor ours;
    fps.ours_ms = median_ms(o.repeats, [&] { ours = kernels::farthest_point_sample(batch, s); });
    at::set_num_threads(1);
    fps.ours_1t_ms = median_ms(o.repeats, [&] { kernels::farthest_point_sample(batch, s); });
    at::set_num_threads(threads);
    std::shared_ptr<open3d::geometry::PointCloud> theirs;
    fps.open3d_ms = median_ms(o.repeats, [&] { theirs = pcd.FarthestPointDownSample(static_cast<size_t>(s)); });
    // Open3D returns the sampled points in cloud order, not in selection order: compare the sets.
    int64_t same = 0;
    std::vector<std::array<float, 3>> mine, other;
    const torch::Tensor ours0 = ours[0];
    auto oi = ours0.accessor<int64_t, 1>();
    for (int64_t i = 0; i < s; ++i) mine.push_back({acc[oi[i]][0], acc[oi[i]][1], acc[oi[i]][2]});
    for (const auto& tp : theirs->points_) other.push_back({float(tp.x()), float(tp.y()), float(tp.z())});
    std::sort(mine.begin(), mine.end());
    std::sort(other.begin(), other.end());
    std::vector<std::array<float, 3>> common;
    std::set_intersection(mine.begin(), mine.end(), other.begin(), other.end(), std::back_inserter(common));
    same = static_cast<int64_t>(common.size());
    char buf[96];
    std::snprintf(buf, sizeof buf, "%lld/%lld sampled points shared", (long long)same, (long long)s);
    fps.agreement = buf;
    rows.push_back(fps);

    // kNN of the s FPS centers, k neighbours each; Open3D's time includes building its tree.
    auto centers = cloud.index_select(0, ours[0]).unsqueeze(0).contiguous();
    PointOpsRow knn;
    knn.op = "knn", knn.points = n, knn.samples = s;
    torch::Tensor dist;
    knn.ours_ms = median_ms(o.repeats, [&] { dist = std::get<1>(kernels::knn(centers, batch, o.k)); });
    at::set_num_threads(1);
    knn.ours_1t_ms = median_ms(o.repeats, [&] { kernels::knn(centers, batch, o.k); });
    at::set_num_threads(threads);
    std::vector<std::vector<double>> their_d2(static_cast<size_t>(s));
    knn.open3d_ms = median_ms(o.repeats, [&] {
      open3d::geometry::KDTreeFlann tree(pcd);
      std::vector<int> idx;
      std::vector<double> d2;
      const torch::Tensor c0 = centers[0];
      auto ca = c0.accessor<float, 2>();
      for (int64_t i = 0; i < s; ++i) {
        tree.SearchKNN(Eigen::Vector3d(ca[i][0], ca[i][1], ca[i][2]), static_cast<int>(o.k), idx, d2);
        their_d2[i] = d2;
      }
    });
    double worst = 0;
    const torch::Tensor d0 = dist[0];
    auto da = d0.accessor<float, 2>();
    for (int64_t i = 0; i < s; ++i)
      for (int64_t t = 0; t < o.k; ++t) worst = std::max(worst, std::abs(double(da[i][t]) - their_d2[i][t]));
    std::snprintf(buf, sizeof buf, "neighbour distances differ by <= %.1e", worst);
    knn.agreement = buf;
    rows.push_back(knn);
  }
  // Point-MAE's grouping of one training batch: 32 clouds of 1024 points, FPS to 64 centres
  // (pointnet2 rule), kNN (k = 32) and the centred neighbourhoods, as the model runs it.
  {
    data::SynthOptions so;
    so.points = 1024;
    so.max_occlusion = 0;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
    std::vector<torch::Tensor> clouds;
    for (int64_t b = 0; b < 32; ++b) clouds.push_back(data::synth_shape(b % 8, so, gen));
    auto batch = torch::stack(clouds).contiguous();
    PointOpsRow group;
    group.op = "group (Point-MAE batch)", group.points = 1024, group.samples = 32 * 64;
    group.ours_ms = median_ms(o.repeats, [&] { models::group_point_cloud(batch, 64, 32); });
    at::set_num_threads(1);
    group.ours_1t_ms = median_ms(o.repeats, [&] { models::group_point_cloud(batch, 64, 32); });
    at::set_num_threads(threads);
    group.agreement = "32 clouds: FPS to 64 centres, 32 neighbours each, centred (no Open3D counterpart)";
    rows.push_back(group);
  }
  return rows;
}
#else
std::vector<PointOpsRow> bench_point_ops(const PointOpsOptions&) {
  fail("ewa bench ops: ewa was built without Open3D (EWA_WITH_OPEN3D=ON and libopen3d-dev are needed to compare with it)");
}
#endif

std::string point_ops_markdown(const std::vector<PointOpsRow>& rows, int threads) {
  std::ostringstream os;
  os << "| op | points | samples / queries | ours, " << threads << " threads (ms) | ours, 1 thread (ms) | Open3D (ms) | "
     << "Open3D / ours (" << threads << " threads) | agreement |\n|---|---:|---:|---:|---:|---:|---:|---|\n";
  for (const auto& r : rows) {
    char line[320];
    if (r.open3d_ms > 0)
      std::snprintf(line, sizeof line, "| %s | %lld | %lld | %.2f | %.2f | %.2f | %.1fx | %s |\n", r.op.c_str(),
                    (long long)r.points, (long long)r.samples, r.ours_ms, r.ours_1t_ms, r.open3d_ms,
                    r.open3d_ms / r.ours_ms, r.agreement.c_str());
    else
      std::snprintf(line, sizeof line, "| %s | %lld | %lld | %.2f | %.2f | - | - | %s |\n", r.op.c_str(),
                    (long long)r.points, (long long)r.samples, r.ours_ms, r.ours_1t_ms, r.agreement.c_str());
    os << line;
  }
  return os.str();
}

}  // namespace ewa::bench
