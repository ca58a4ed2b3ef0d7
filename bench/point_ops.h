// `ewa bench ops`: our CPU farthest point sampling and kNN against Open3D's
// PointCloud::FarthestPointDownSample and KDTreeFlann (build + SearchKNN) on the same clouds,
// measured side by side in one run. Needs a build with Open3D (EWA_WITH_OPEN3D).
#pragma once
#include <string>
#include <vector>

namespace ewa::bench {

struct PointOpsOptions {
  std::vector<int64_t> sizes = {1024, 8192, 32768};
  int64_t k = 32;
  int64_t repeats = 5;
  uint64_t seed = 0;
};

struct PointOpsRow {
  std::string op;   // "fps" or "knn"
  int64_t points = 0, samples = 0;
  double ours_ms = 0, ours_1t_ms = 0, open3d_ms = 0;
  std::string agreement;  // how far the two answers agree
};

std::vector<PointOpsRow> bench_point_ops(const PointOpsOptions& options);
std::string point_ops_markdown(const std::vector<PointOpsRow>& rows, int threads);

bool bench_ops_available();

}  // namespace ewa::bench
