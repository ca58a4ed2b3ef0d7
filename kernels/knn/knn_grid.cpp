// Fast CPU path of knn (see knn.h) for large clouds: an exact search over a uniform voxel grid.
// Points are bucketed by cell (counting sort); a query visits cubic shells of cells around its
// own until its K-th best candidate is strictly closer than any point outside the visited cube.
// Candidates are ranked by (squared distance, index), exactly as knn_cpu, so both give the same
// answer (tests compare them). No torch headers here.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace ewa::kernels {

void knn_grid_cpu(const float* q, int64_t s, const float* p, int64_t n, int64_t k, int64_t* idx, float* dist) {
  float lo[3] = {p[0], p[1], p[2]}, hi[3] = {p[0], p[1], p[2]};
  for (int64_t j = 1; j < n; ++j)
    for (int a = 0; a < 3; ++a) {
      lo[a] = std::min(lo[a], p[3 * j + a]);
      hi[a] = std::max(hi[a], p[3 * j + a]);
    }
  // About 1 point per cell if the cloud filled its box; surfaces leave most cells empty and
  // put more points in the occupied ones.
  const int64_t g = std::max<int64_t>(1, static_cast<int64_t>(std::cbrt(static_cast<double>(n) / 1.0)));
  float cell[3], inv[3];
  for (int a = 0; a < 3; ++a) {
    cell[a] = std::max((hi[a] - lo[a]) / static_cast<float>(g), 1e-12f);
    inv[a] = 1.0f / cell[a];
  }
  auto coord = [&](float v, int a) {
    return std::clamp<int64_t>(static_cast<int64_t>((v - lo[a]) * inv[a]), 0, g - 1);
  };
  std::vector<int64_t> start(g * g * g + 1, 0), order(n);
  std::vector<int64_t> cell_of(n);
  for (int64_t j = 0; j < n; ++j) {
    cell_of[j] = (coord(p[3 * j], 0) * g + coord(p[3 * j + 1], 1)) * g + coord(p[3 * j + 2], 2);
    ++start[cell_of[j] + 1];
  }
  for (int64_t c = 0; c < g * g * g; ++c) start[c + 1] += start[c];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t j = 0; j < n; ++j) order[fill[cell_of[j]]++] = j;  // increasing j within a cell

  // The k best so far, sorted by (squared distance, index); insertion keeps them sorted.
  std::vector<float> best_d(k);
  std::vector<int64_t> best_i(k);
  for (int64_t i = 0; i < s; ++i) {
    const float qx = q[3 * i], qy = q[3 * i + 1], qz = q[3 * i + 2];
    const int64_t c[3] = {coord(qx, 0), coord(qy, 1), coord(qz, 2)};
    int64_t count = 0;
    for (int64_t r = 0;; ++r) {
      // Visit the cells at Chebyshev distance exactly r from c.
      for (int64_t x = c[0] - r; x <= c[0] + r; ++x) {
        if (x < 0 || x >= g) continue;
        for (int64_t y = c[1] - r; y <= c[1] + r; ++y) {
          if (y < 0 || y >= g) continue;
          const bool face = x == c[0] - r || x == c[0] + r || y == c[1] - r || y == c[1] + r;
          for (int64_t z = c[2] - r; z <= c[2] + r; z += (face || r == 0) ? 1 : 2 * r) {
            if (z < 0 || z >= g) continue;
            const int64_t cc = (x * g + y) * g + z;
            for (int64_t t = start[cc]; t < start[cc + 1]; ++t) {
              const int64_t j = order[t];
              const float dx = p[3 * j] - qx, dy = p[3 * j + 1] - qy, dz = p[3 * j + 2] - qz;
              const float d = dx * dx + dy * dy + dz * dz;
              if (count == k && !(d < best_d[k - 1] || (d == best_d[k - 1] && j < best_i[k - 1]))) continue;
              int64_t pos = count < k ? count++ : k - 1;
              while (pos > 0 && (best_d[pos - 1] > d || (best_d[pos - 1] == d && best_i[pos - 1] > j))) {
                best_d[pos] = best_d[pos - 1];
                best_i[pos] = best_i[pos - 1];
                --pos;
              }
              best_d[pos] = d;
              best_i[pos] = j;
            }
          }
        }
      }
      const bool covers_all = c[0] - r <= 0 && c[1] - r <= 0 && c[2] - r <= 0 && c[0] + r >= g - 1 &&
                              c[1] + r >= g - 1 && c[2] + r >= g - 1;
      if (covers_all) break;
      if (count == k) {
        // Distance from the query to the nearest face of the visited cube that has cells beyond it.
        float margin = INFINITY;
        const float qs[3] = {qx, qy, qz};
        for (int a = 0; a < 3; ++a) {
          // Shrunk by 1e-4 cell so a point that rounding put in the next cell is still covered.
          if (c[a] - r > 0)
            margin = std::min(margin, qs[a] - (lo[a] + static_cast<float>(c[a] - r) * cell[a]) - 1e-4f * cell[a]);
          if (c[a] + r < g - 1)
            margin = std::min(margin, (lo[a] + static_cast<float>(c[a] + r + 1) * cell[a]) - qs[a] - 1e-4f * cell[a]);
        }
        if (margin > 0 && best_d[k - 1] < margin * margin) break;
      }
    }
    for (int64_t t = 0; t < k; ++t) {
      idx[i * k + t] = best_i[t];
      dist[i * k + t] = best_d[t];
    }
  }
}

}  // namespace ewa::kernels
