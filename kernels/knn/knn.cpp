// Argument checks and dispatch for knn (see knn.h).
#include "kernels/knn/knn.h"

#include <memory>
#include <vector>

#include "kernels/knn/knn_fast.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace ewa::kernels {

std::tuple<at::Tensor, at::Tensor> knn(const at::Tensor& query, const at::Tensor& points, int64_t K) {
  TORCH_CHECK(query.defined() && query.dim() == 3 && query.size(2) == 3, "knn: argument 'query' must be [B, S, 3], got ",
              query.sizes());
  TORCH_CHECK(points.defined() && points.dim() == 3 && points.size(2) == 3,
              "knn: argument 'points' must be [B, N, 3], got ", points.sizes());
  TORCH_CHECK(query.size(0) == points.size(0), "knn: batch sizes differ: query ", query.size(0), ", points ", points.size(0));
  TORCH_CHECK(query.scalar_type() == at::kFloat && points.scalar_type() == at::kFloat,
              "knn: arguments 'query' and 'points' must be float32");
  TORCH_CHECK(query.device() == points.device(), "knn: 'query' and 'points' are on different devices");
  const int64_t B = query.size(0), S = query.size(1), N = points.size(1);
  TORCH_CHECK(K >= 1 && K <= N, "knn: K must be in [1, N = ", N, "], got ", K);
  auto idx = at::empty({B, S, K}, query.options().dtype(at::kLong));
  auto dist = at::empty({B, S, K}, query.options());
  auto q = query.contiguous(), p = points.contiguous();
  if (query.is_cuda()) {
#ifdef EWA_WITH_CUDA
    TORCH_CHECK(K <= kKnnCudaMaxK, "knn: the CUDA kernel supports K <= ", kKnnCudaMaxK, ", got ", K);
    knn_cuda(q, p, idx, dist);
    return {idx, dist};
#else
    TORCH_CHECK(false, "knn: ewa was built without CUDA; got a CUDA tensor");
#endif
  }
  const float* qb = q.data_ptr<float>();
  const float* pb = p.data_ptr<float>();
  int64_t* ib = idx.data_ptr<int64_t>();
  float* db = dist.data_ptr<float>();
  // One search structure per cloud (a grid for large clouds, the coordinates as three arrays for
  // brute force), built in parallel over clouds; then every (cloud, block of queries) in
  // parallel, so one large cloud also uses every core.
  const bool grid = N >= kKnnFastGridMinPoints;
  std::vector<std::unique_ptr<KnnGrid>> grids(grid ? B : 0);
  std::vector<std::unique_ptr<KnnBrute>> brutes(grid ? 0 : B);
  // Small jobs (under about 2^20 query-point pairs, a fraction of a millisecond) stay on one
  // thread: waking sleeping OpenMP workers costs more than they would save.
  const bool serial = B * S * N < (int64_t(1) << 20);
  at::parallel_for(0, B, serial ? B : 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      if (grid) grids[b] = std::make_unique<KnnGrid>(pb + b * N * 3, N);
      else brutes[b] = std::make_unique<KnnBrute>(pb + b * N * 3, N);
    }
  });
  const int64_t chunk = 32;
  const int64_t chunks = (S + chunk - 1) / chunk;
  at::parallel_for(0, B * chunks, serial ? B * chunks : 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / chunks, s0 = (t % chunks) * chunk, len = std::min(chunk, S - s0);
      const float* qs = qb + (b * S + s0) * 3;
      if (grid) grids[b]->query(qs, len, K, ib + (b * S + s0) * K, db + (b * S + s0) * K);
      else brutes[b]->query(qs, len, K, ib + (b * S + s0) * K, db + (b * S + s0) * K);
    }
  });
  return {idx, dist};
}

}  // namespace ewa::kernels
