#include "bench/point_ops.h"
#include "bench/train_step.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iterator>
#include <limits>
#include <sstream>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "common/error.h"
#include "datasets/synthetic.h"
#include "kernels/fps/fps.h"
#include "kernels/knn/knn.h"
#include "models/point_transformer.h"

#ifdef EWA_HAS_OPEN3D
#include <open3d/geometry/KDTreeFlann.h>
#include <open3d/geometry/PointCloud.h>
#endif

namespace ewa::bench {
namespace {

// Farthest point sampling as plain tensor ops (start at point 0, ties to the lowest index as
// torch.argmax): points [B, N, 3] -> indices [B, S].
torch::Tensor torch_fps(const torch::Tensor& points, int64_t s) {
  const int64_t b = points.size(0), n = points.size(1);
  auto opts = points.options();
  auto idx = torch::empty({b, s}, opts.dtype(torch::kLong));
  auto nearest = torch::full({b, n}, std::numeric_limits<float>::infinity(), opts);
  auto last = torch::zeros({b}, opts.dtype(torch::kLong));
  for (int64_t k = 0; k < s; ++k) {
    idx.select(1, k).copy_(last);
    auto p = points.gather(1, last.view({b, 1, 1}).expand({b, 1, 3}));
    nearest = torch::minimum(nearest, (points - p).pow(2).sum(-1));
    last = nearest.argmax(1);
  }
  return idx;
}

// kNN as plain tensor ops: squared distances of every query to every point, smallest k. Queries
// in chunks so the [chunk, N, 3] difference stays near 16M floats.
std::tuple<torch::Tensor, torch::Tensor> torch_knn(const torch::Tensor& query, const torch::Tensor& points, int64_t k) {
  const int64_t s = query.size(1), n = points.size(1);
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 24) / (3 * n * query.size(0)));
  std::vector<torch::Tensor> idx, dist;
  for (int64_t a = 0; a < s; a += chunk) {
    auto q = query.narrow(1, a, std::min(chunk, s - a));
    auto d = (q.unsqueeze(2) - points.unsqueeze(1)).pow(2).sum(-1);  // [B, c, N]
    auto top = d.topk(k, -1, /*largest=*/false, /*sorted=*/true);
    dist.push_back(std::get<0>(top));
    idx.push_back(std::get<1>(top));
  }
  return {torch::cat(idx, 1), torch::cat(dist, 1)};
}

// Point-MAE's grouping as plain tensor ops: FPS centres, kNN, gathered and centred.
torch::Tensor torch_group(const torch::Tensor& points, int64_t groups, int64_t size) {
  const int64_t b = points.size(0);
  auto centres = points.gather(1, torch_fps(points, groups).unsqueeze(-1).expand({b, groups, 3}));
  auto idx = std::get<0>(torch_knn(centres, points, size));  // [B, G, K]
  auto nb = points.gather(1, idx.reshape({b, groups * size, 1}).expand({b, groups * size, 3})).view({b, groups, size, 3});
  return nb - centres.unsqueeze(2);
}

std::string same_indices(const torch::Tensor& a, const torch::Tensor& b) {
  const auto same = a.cpu().eq(b.cpu()).sum().item<int64_t>();
  char buf[96];
  std::snprintf(buf, sizeof buf, "%lld/%lld indices as ewa on cpu", (long long)same, (long long)a.numel());
  return buf;
}

std::string distance_gap(const torch::Tensor& d, const torch::Tensor& ref) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "distances within %.1e of ewa on cpu", (d.cpu() - ref.cpu()).abs().max().item<double>());
  return buf;
}

bool cuda_present(const PointOpsOptions& o) {
#ifdef EWA_WITH_CUDA
  return o.cuda && torch::cuda::is_available();
#else
  return false;
#endif
}

#ifdef EWA_HAS_OPEN3D
// Open3D on the same cloud: FPS (compared as a set: Open3D returns the points in cloud order) and
// a KD-tree kNN of the FPS centres (its time includes building the tree).
void open3d_rows(const PointOpsOptions& o, const torch::Tensor& cloud, const torch::Tensor& ours_fps,
                 const torch::Tensor& centers, const torch::Tensor& ours_d, int64_t s, std::vector<PointOpsRow>& rows) {
  const int64_t n = cloud.size(0);
  open3d::geometry::PointCloud pcd;
  auto acc = cloud.accessor<float, 2>();
  for (int64_t i = 0; i < n; ++i) pcd.points_.emplace_back(acc[i][0], acc[i][1], acc[i][2]);
  std::shared_ptr<open3d::geometry::PointCloud> theirs;
  PointOpsRow fps{"fps", "Open3D", "cpu", n, s, 0.0, ""};
  fps.ms = median_ms(o.repeats, false, [&] { theirs = pcd.FarthestPointDownSample(static_cast<size_t>(s)); });
  std::vector<std::array<float, 3>> mine, other, common;
  auto oi = ours_fps.accessor<int64_t, 1>();
  for (int64_t i = 0; i < s; ++i) mine.push_back({acc[oi[i]][0], acc[oi[i]][1], acc[oi[i]][2]});
  for (const auto& tp : theirs->points_) other.push_back({float(tp.x()), float(tp.y()), float(tp.z())});
  std::sort(mine.begin(), mine.end());
  std::sort(other.begin(), other.end());
  std::set_intersection(mine.begin(), mine.end(), other.begin(), other.end(), std::back_inserter(common));
  char buf[96];
  std::snprintf(buf, sizeof buf, "%lld/%lld sampled points shared with ewa", (long long)common.size(), (long long)s);
  fps.agreement = buf;
  rows.push_back(fps);

  PointOpsRow knn{"knn", "Open3D", "cpu", n, s, 0.0, ""};
  std::vector<std::vector<double>> their_d2(static_cast<size_t>(s));
  auto ca = centers.accessor<float, 2>();
  knn.ms = median_ms(o.repeats, false, [&] {
    open3d::geometry::KDTreeFlann tree(pcd);
    std::vector<int> idx;
    std::vector<double> d2;
    for (int64_t i = 0; i < s; ++i) {
      tree.SearchKNN(Eigen::Vector3d(ca[i][0], ca[i][1], ca[i][2]), static_cast<int>(o.k), idx, d2);
      their_d2[i] = d2;
    }
  });
  double worst = 0;
  auto da = ours_d.accessor<float, 2>();
  for (int64_t i = 0; i < s; ++i)
    for (int64_t t = 0; t < o.k; ++t) worst = std::max(worst, std::abs(double(da[i][t]) - their_d2[i][t]));
  std::snprintf(buf, sizeof buf, "distances within %.1e of ewa on cpu", worst);
  knn.agreement = buf;
  rows.push_back(knn);
}
#endif

}  // namespace

std::vector<PointOpsRow> bench_point_ops(const PointOpsOptions& o) {
  std::vector<PointOpsRow> rows;
  const int threads = at::get_num_threads();
  const bool cuda = cuda_present(o);
  const std::string all_threads = "cpu, " + std::to_string(threads) + " threads", one_thread = "cpu, 1 thread",
                    gpu = "cuda:0";
  // One row: `run` timed (median of o.repeats, each ended by a synchronize on the GPU), then
  // `agree()` on what its last repeat left.
  const auto add = [&](const std::string& op, const std::string& impl, const std::string& device, int64_t n, int64_t s,
                       const std::function<void()>& run, const std::function<std::string()>& agree) {
    PointOpsRow r{op, impl, device, n, s, 0.0, ""};
    if (device == one_thread) at::set_num_threads(1);
    r.ms = median_ms(o.repeats, device == gpu, run);
    at::set_num_threads(threads);
    r.agreement = agree();
    rows.push_back(r);
  };
  const auto reference = [] { return std::string("reference"); };  // ewa on the CPU: what every row is compared with
  const auto same_code = [] { return std::string("same code"); };
  for (const int64_t n : o.sizes) {
    // A torus surface from the synthetic shapes generator: a realistic surface cloud.
    datasets::SynthOptions so;
    so.points = n;
    so.max_occlusion = 0;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed + static_cast<uint64_t>(n));
    auto cloud = datasets::synth_shape(4, so, gen).contiguous();  // [n, 3]
    const int64_t s = std::min<int64_t>(1024, n / 8), k = std::min(o.k, n);
    auto batch = cloud.unsqueeze(0);
    torch::Tensor ours, dist, other;
    const auto indices_agree = [&] { return same_indices(other, ours); };
    const auto distances_agree = [&] { return distance_gap(other, dist); };

    // FPS to s samples, then the kNN (k neighbours) of those s centres.
    add("fps", "ewa", all_threads, n, s, [&] { ours = kernels::farthest_point_sample(batch, s); }, reference);
    add("fps", "ewa", one_thread, n, s, [&] { kernels::farthest_point_sample(batch, s); }, same_code);
    add("fps", "LibTorch ops", all_threads, n, s, [&] { other = torch_fps(batch, s); }, indices_agree);
    auto centers = cloud.index_select(0, ours[0]).unsqueeze(0).contiguous();
    add("knn", "ewa", all_threads, n, s, [&] { dist = std::get<1>(kernels::knn(centers, batch, k)); }, reference);
    add("knn", "ewa", one_thread, n, s, [&] { kernels::knn(centers, batch, k); }, same_code);
    add("knn", "LibTorch ops", all_threads, n, s, [&] { other = std::get<1>(torch_knn(centers, batch, k)); }, distances_agree);
#ifdef EWA_HAS_OPEN3D
    open3d_rows(o, cloud, ours[0].contiguous(), centers[0].contiguous(), dist[0].contiguous(), s, rows);
#endif
    if (cuda) {
      auto gbatch = batch.to(torch::kCUDA), gcenters = centers.to(torch::kCUDA);
      add("fps", "ewa", gpu, n, s, [&] { other = kernels::farthest_point_sample(gbatch, s); }, indices_agree);
      add("fps", "LibTorch ops", gpu, n, s, [&] { other = torch_fps(gbatch, s); }, indices_agree);
      add("knn", "ewa", gpu, n, s, [&] { other = std::get<1>(kernels::knn(gcenters, gbatch, k)); }, distances_agree);
      add("knn", "LibTorch ops", gpu, n, s, [&] { other = std::get<1>(torch_knn(gcenters, gbatch, k)); }, distances_agree);
    }
  }
  // Point-MAE's grouping of one training batch: 32 clouds of 1024 points, FPS to 64 centres, kNN
  // (k = 32) and the centred neighbourhoods, as the model runs it.
  {
    datasets::SynthOptions so;
    so.points = 1024;
    so.max_occlusion = 0;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
    std::vector<torch::Tensor> clouds;
    for (int64_t b = 0; b < 32; ++b) clouds.push_back(datasets::synth_shape(b % 8, so, gen));
    auto batch = torch::stack(clouds).contiguous();
    const std::string op = "group (Point-MAE batch)";
    const int64_t n = 1024, s = 32 * 64;
    torch::Tensor ours, other;
    const auto gap = [&] {
      char buf[96];
      std::snprintf(buf, sizeof buf, "neighbourhoods within %.1e of ewa on cpu", (other.cpu() - ours).abs().max().item<double>());
      return std::string(buf);
    };
    add(op, "ewa", all_threads, n, s, [&] { ours = models::group_point_cloud(batch, 64, 32).neighborhoods; }, reference);
    add(op, "ewa", one_thread, n, s, [&] { models::group_point_cloud(batch, 64, 32); }, same_code);
    add(op, "LibTorch ops", all_threads, n, s, [&] { other = torch_group(batch, 64, 32); }, gap);
    if (cuda) {
      auto gbatch = batch.to(torch::kCUDA);
      add(op, "ewa", gpu, n, s, [&] { other = models::group_point_cloud(gbatch, 64, 32).neighborhoods; }, gap);
      add(op, "LibTorch ops", gpu, n, s, [&] { other = torch_group(gbatch, 64, 32); }, gap);
    }
  }
  return rows;
}

std::string point_ops_markdown(const std::vector<PointOpsRow>& rows) {
  const auto on_cuda = [](const PointOpsRow& r) { return r.device.rfind("cuda", 0) == 0; };
  std::ostringstream os;
  os << "| op | points | samples / queries | implementation | device | ms | time / ewa's | agreement |\n"
     << "|---|---:|---:|---|---|---:|---:|---|\n";
  for (const auto& r : rows) {
    // ewa on the same device (all threads on the CPU), same op and cloud size.
    double ref = 0;
    for (const auto& q : rows)
      if (q.op == r.op && q.points == r.points && q.impl == "ewa" && on_cuda(q) == on_cuda(r) &&
          q.device.find("1 thread") == std::string::npos)
        ref = q.ms;
    char ratio[32] = "-";
    if (ref > 0 && r.ms > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", r.ms / ref);
    char line[400];
    std::snprintf(line, sizeof line, "| %s | %lld | %lld | %s | %s | %.2f | %s | %s |\n", r.op.c_str(), (long long)r.points,
                  (long long)r.samples, r.impl.c_str(), r.device.c_str(), r.ms, ratio, r.agreement.c_str());
    os << line;
  }
  return os.str();
}

}  // namespace ewa::bench
