// Readable reference for knn (see knn.h). No torch headers here.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace ewa::kernels {

void knn_cpu(const float* q, int64_t s, const float* p, int64_t n, int64_t k, int64_t* idx, float* dist) {
  std::vector<float> x(n), y(n), z(n), d(n);
  for (int64_t j = 0; j < n; ++j) {
    x[j] = p[3 * j];
    y[j] = p[3 * j + 1];
    z[j] = p[3 * j + 2];
  }
  std::vector<int64_t> order(n);
  auto closer = [&](int64_t a, int64_t b) { return d[a] < d[b] || (d[a] == d[b] && a < b); };
  for (int64_t i = 0; i < s; ++i) {
    const float qx = q[3 * i], qy = q[3 * i + 1], qz = q[3 * i + 2];
    for (int64_t j = 0; j < n; ++j) {
      const float dx = x[j] - qx, dy = y[j] - qy, dz = z[j] - qz;
      d[j] = dx * dx + dy * dy + dz * dz;
    }
    std::iota(order.begin(), order.end(), int64_t(0));
    if (k < n) std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), closer);
    std::sort(order.begin(), order.begin() + k, closer);
    for (int64_t t = 0; t < k; ++t) {
      idx[i * k + t] = order[t];
      dist[i * k + t] = d[order[t]];
    }
  }
}

}  // namespace ewa::kernels
