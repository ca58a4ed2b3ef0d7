// Readable reference for the Chamfer distance (see chamfer.h). No torch headers here.
#include <cstdint>
#include <limits>

namespace ewa::kernels {

void chamfer_nearest_cpu(const float* from, int64_t n, const float* to, int64_t m, float* dist, int64_t* idx) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = from[3 * i], y = from[3 * i + 1], z = from[3 * i + 2];
    float best = std::numeric_limits<float>::infinity();
    int64_t best_j = 0;
    for (int64_t j = 0; j < m; ++j) {
      const float dx = to[3 * j] - x, dy = to[3 * j + 1] - y, dz = to[3 * j + 2] - z;
      const float d = dx * dx + dy * dy + dz * dz;
      if (d < best) {  // strict: the lowest index wins ties
        best = d;
        best_j = j;
      }
    }
    dist[i] = best;
    idx[i] = best_j;
  }
}

void chamfer_backward_cpu(const float* from, int64_t n, const float* to, const int64_t* idx, const float* grad_dist,
                          float* grad_from, float* grad_to) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = idx[i];
    for (int c = 0; c < 3; ++c) {
      const float g = 2.0f * grad_dist[i] * (from[3 * i + c] - to[3 * j + c]);
      grad_from[3 * i + c] += g;
      grad_to[3 * j + c] -= g;
    }
  }
}

}  // namespace ewa::kernels
