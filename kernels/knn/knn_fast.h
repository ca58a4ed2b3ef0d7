// Fast CPU paths of knn (see knn.h and knn_fast.cpp). No torch headers.
#pragma once

#include <cstdint>
#include <vector>

namespace ewa::kernels {

// Brute force for small clouds: the same answer as knn_cpu (ranking by squared distance, then
// index). Per query, SIMD distances and minima over groups of points give a bound within which
// at least K points lie; only the few points within it are ranked (knn_fast.cpp). Runs at
// simd::level() (kernels/common/simd.h); with AVX-512 the ranking uses 512-bit masks. Built once
// per cloud (the coordinates as three arrays), then queried, from several threads at once.
struct KnnBrute {
  KnnBrute(const float* p, int64_t n);
  void query(const float* q, int64_t s, int64_t k, int64_t* idx, float* dist) const;

  int64_t n;
  std::vector<float> x, y, z;
};
// KnnBrute(p, n).query(q, s, k, idx, dist).
void knn_brute_fast(const float* q, int64_t s, const float* p, int64_t n, int64_t k, int64_t* idx, float* dist);

// A uniform voxel grid over one cloud, built once and then queried (from several threads at
// once): the points sorted by cell into three coordinate arrays, so that a row of cells is one
// contiguous range scanned with SIMD. Queries visit cubic shells of cells until their K-th best
// is strictly closer than any unvisited cell; the answer equals knn_cpu's.
struct KnnGrid {
  KnnGrid(const float* p, int64_t n);
  void query(const float* q, int64_t s, int64_t k, int64_t* idx, float* dist) const;
  int64_t coord(float v, int a) const;  // cell coordinate of v along axis a

  int64_t g = 1;                    // cells per axis
  float lo[3], cell[3], inv[3];     // box corner, cell size and its inverse per axis
  std::vector<float> x, y, z;       // coordinates in cell order
  std::vector<int32_t> index;       // original index of each sorted point
  std::vector<int32_t> start;       // [g^3 + 1] first sorted point of each cell
};

// knn() takes the grid from this many points on, brute force below.
constexpr int64_t kKnnFastGridMinPoints = 4096;

}  // namespace ewa::kernels
