// Readable reference for farthest_point_sample (see fps.h). No torch headers here.
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

}  // namespace ewa::kernels
