// Fast CPU paths of knn (see knn.h and knn_fast.cpp). No torch headers.
#pragma once

#include <cstdint>
#include <vector>

namespace ewa::kernels {

// Brute force for small clouds: the same answer as knn_cpu (ranking by squared distance, then
// index). Per query, SIMD distances and block minima give a bound within which at least K points
// lie; only the few points within it are ranked (knn_fast.cpp, brute_one).
void knn_brute_fast(const float* q, int64_t s, const float* p, int64_t n, int64_t k, int64_t* idx, float* dist);

// A uniform voxel grid over one cloud, built once and then queried (from several threads at
// once): the points sorted by cell into three coordinate arrays, so that a row of cells is one
// contiguous range scanned with SIMD. Queries visit cubic shells of cells until their K-th best
// is strictly closer than any unvisited cell; the answer equals knn_cpu's.
class KnnGrid {
 public:
  KnnGrid(const float* p, int64_t n);
  void query(const float* q, int64_t s, int64_t k, int64_t* idx, float* dist) const;

 private:
  int64_t g_ = 1;
  float lo_[3], cell_[3], inv_[3];
  std::vector<float> x_, y_, z_;     // coordinates in cell order
  std::vector<int32_t> index_;       // original index of each sorted point
  std::vector<int32_t> start_;       // [g^3 + 1] first sorted point of each cell
  int64_t coord(float v, int a) const;
};

// knn() takes the grid from this many points on, brute force below.
constexpr int64_t kKnnFastGridMinPoints = 4096;

}  // namespace ewa::kernels
