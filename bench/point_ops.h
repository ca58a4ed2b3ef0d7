// `ewa bench ops`: our farthest point sampling, kNN and Point-MAE grouping against plain LibTorch
// formulations of the same operations (the loop of tensor ops a PyTorch user writes) and, when ewa
// is built with Open3D, against PointCloud::FarthestPointDownSample and KDTreeFlann (build +
// SearchKNN); on the CPU (all threads, and one thread for ours), and on the GPU when there is one
// (our CUDA kernels and LibTorch on CUDA). All on the same clouds, side by side in one run; every
// row says how far its answer agrees with our CPU twin.
#pragma once
#include <string>
#include <vector>

namespace ewa::bench {

struct PointOpsOptions {
  std::vector<int64_t> sizes = {1024, 8192, 32768};
  int64_t k = 32;
  int64_t repeats = 5;
  uint64_t seed = 0;
  bool cuda = true;  // also time on cuda:0 when a GPU is present
};

struct PointOpsRow {
  std::string op;      // "fps", "knn" or "group (Point-MAE batch)"
  std::string impl;    // "ewa", "LibTorch ops" or "Open3D"
  std::string device;  // "cpu", "cpu, 1 thread" or "cuda:0"
  int64_t points = 0, samples = 0;
  double ms = 0;
  std::string agreement;  // against ewa's CPU answer
};

std::vector<PointOpsRow> bench_point_ops(const PointOpsOptions& options);
// One table; "time / ewa's" is the row's time over ewa's on the same device (CPU rows against ewa
// on all threads).
std::string point_ops_markdown(const std::vector<PointOpsRow>& rows);

}  // namespace ewa::bench
