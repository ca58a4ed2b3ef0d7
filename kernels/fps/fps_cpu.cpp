// Readable reference for farthest_point_sample (see fps.h). No torch headers here.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace ewa::kernels {

void farthest_point_sample_cpu(const float* xyz, int64_t n, int64_t s, int64_t start, int64_t* out) {
  // Coordinates as three arrays so the distance loop vectorises.
  std::vector<float> x(n), y(n), z(n), nearest(n, std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < n; ++j) {
    x[j] = xyz[3 * j];
    y[j] = xyz[3 * j + 1];
    z[j] = xyz[3 * j + 2];
  }
  int64_t current = start;
  for (int64_t k = 0; k < s; ++k) {
    out[k] = current;
    const float cx = x[current], cy = y[current], cz = z[current];
    for (int64_t j = 0; j < n; ++j) {
      const float dx = x[j] - cx, dy = y[j] - cy, dz = z[j] - cz;
      const float d = dx * dx + dy * dy + dz * dz;
      nearest[j] = d < nearest[j] ? d : nearest[j];
    }
    // argmax, lowest index on ties
    int64_t best = 0;
    float best_d = nearest[0];
    for (int64_t j = 1; j < n; ++j)
      if (nearest[j] > best_d) {
        best_d = nearest[j];
        best = j;
      }
    current = best;
  }
}

int64_t pointnet2_fps_threads(int64_t n) {
  int64_t t = 1;
  while (t * 2 <= n && t < 512) t *= 2;
  return t;
}

void farthest_point_sample_pointnet2_cpu(const float* xyz, int64_t n, int64_t s, int64_t* out) {
  const int64_t threads = pointnet2_fps_threads(n);
  std::vector<float> temp(n, 1e10f), best(threads);
  std::vector<int64_t> best_i(threads);
  int64_t old = 0;
  out[0] = old;
  for (int64_t j = 1; j < s; ++j) {
    const float x1 = xyz[3 * old], y1 = xyz[3 * old + 1], z1 = xyz[3 * old + 2];
    std::fill(best.begin(), best.end(), -1.0f);
    std::fill(best_i.begin(), best_i.end(), int64_t(0));
    for (int64_t k = 0; k < n; ++k) {
      const float x2 = xyz[3 * k], y2 = xyz[3 * k + 1], z2 = xyz[3 * k + 2];
      const float mag = (x2 * x2) + (y2 * y2) + (z2 * z2);
      if (mag <= 1e-3) continue;  // double comparison, as the CUDA source's literal
      const float d = (x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1) + (z2 - z1) * (z2 - z1);
      const float d2 = d < temp[k] ? d : temp[k];
      temp[k] = d2;
      const int64_t t = k % threads;
      if (d2 > best[t]) {
        best[t] = d2;
        best_i[t] = k;
      }
    }
    for (int64_t offset = threads / 2; offset > 0; offset /= 2)
      for (int64_t t = 0; t < offset; ++t)
        if (best[t + offset] > best[t]) {
          best[t] = best[t + offset];
          best_i[t] = best_i[t + offset];
        }
    old = best_i[0];
    out[j] = old;
  }
}

}  // namespace ewa::kernels
