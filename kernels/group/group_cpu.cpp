// Readable reference for group_points (see group.h). No torch headers here.
#include <cstdint>

namespace ewa::kernels {

void group_points_cpu(const float* p, int64_t n, int64_t c, const int64_t* idx, int64_t s, int64_t k,
                      const float* centers, float* out) {
  (void)n;  // indices were range-checked by the dispatcher
  for (int64_t i = 0; i < s; ++i) {
    const float* center = centers + 3 * i;
    for (int64_t t = 0; t < k; ++t) {
      const float* src = p + idx[i * k + t] * c;
      float* dst = out + (i * k + t) * c;
      for (int64_t ch = 0; ch < c; ++ch) dst[ch] = ch < 3 ? src[ch] - center[ch] : src[ch];
    }
  }
}

}  // namespace ewa::kernels
