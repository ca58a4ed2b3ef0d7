// Readable reference for expert_average (see expert_average.h). No torch headers here.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ewa::kernels {

template <typename T>
void expert_average_cpu(T* data, int64_t n_experts, int64_t inner, T lambda) {
  // Columns are independent; walk the rows so memory is read in order.
  std::vector<T> mean(static_cast<size_t>(inner), T(0));
  for (int64_t i = 0; i < n_experts; ++i) {
    const T* row = data + i * inner;
    for (int64_t k = 0; k < inner; ++k) mean[k] += row[k];
  }
  const T inv_n = T(1) / static_cast<T>(n_experts);
  for (int64_t k = 0; k < inner; ++k) mean[k] *= inv_n;
  for (int64_t i = 0; i < n_experts; ++i) {
    T* row = data + i * inner;
    if (lambda == T(1)) {  // the maximal share rate: every expert becomes exactly the mean
      for (int64_t k = 0; k < inner; ++k) row[k] = mean[k];
    } else {
      for (int64_t k = 0; k < inner; ++k) row[k] -= lambda * (row[k] - mean[k]);
    }
  }
}

template void expert_average_cpu<float>(float*, int64_t, int64_t, float);
template void expert_average_cpu<double>(double*, int64_t, int64_t, double);

}  // namespace ewa::kernels
