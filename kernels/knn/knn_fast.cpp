// Fast CPU paths of knn (see knn_fast.h). Distances are computed exactly as knn_cpu computes them
// (dx * dx + dy * dy + dz * dz with dx = p - q, no FMA contraction: CMake compiles this file with
// -ffp-contract=off), and candidates are ranked by (distance, index), so the answers are the
// same (tests compare them). No torch headers here.
#include "kernels/knn/knn_fast.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

namespace ewa::kernels {
namespace {

constexpr int kLanes = 16;
typedef float vf __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(kLanes * sizeof(int32_t))));

// op over all lanes of v, folding halves (the vector stays in registers); the result is lane 0.
template <typename V, typename Op>
inline V fold_lanes(V m, Op op) {
  m = op(m, __builtin_shufflevector(m, m, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  m = op(m, __builtin_shufflevector(m, m, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
  m = op(m, __builtin_shufflevector(m, m, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
  return op(m, __builtin_shufflevector(m, m, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14));
}
inline vf vmax(vf a, vf b) { return b > a ? b : a; }
inline vf vmin(vf a, vf b) { return b < a ? b : a; }

// Bit l set where lane l of a comparison result is true (a portable movemask).
inline uint32_t lane_bits(vi v) {
  vi bits;
  for (int l = 0; l < kLanes; ++l) bits[l] = 1 << l;
  return static_cast<uint32_t>(fold_lanes(v & bits, [](vi a, vi b) { return a | b; })[0]);
}

// The K best candidates so far by (distance, index), unsorted, with the worst of them tracked:
// a better candidate overwrites the worst, and the new worst is found with SIMD maxima over the
// kept distances (padded to whole vectors with -inf). `tau` is the worst kept distance once K are
// kept (infinity before): a point farther than tau cannot enter. write() sorts the K (through
// `order`, a caller's scratch of K pairs reused across queries).
struct TopK {
  int64_t k, kp;  // kp: k rounded up to whole vectors
  float* d;       // [kp]
  int64_t* i;     // [kp]
  int64_t count = 0, worst = 0;
  float tau = std::numeric_limits<float>::infinity();

  TopK(int64_t k_, float* d_, int64_t* i_) : k(k_), kp((k_ + kLanes - 1) / kLanes * kLanes), d(d_), i(i_) {
    for (int64_t t = k; t < kp; ++t) d[t] = -std::numeric_limits<float>::infinity(), i[t] = -1;
  }
  void offer(float dj, int64_t j) {
    if (count < k) {
      d[count] = dj, i[count] = j;
      if (++count == k) find_worst();
      return;
    }
    if (dj > tau || (dj == tau && j > i[worst])) return;
    d[worst] = dj, i[worst] = j;
    find_worst();
  }
  void find_worst() {
    vf m;
    std::memcpy(&m, d, sizeof m);
    for (int64_t t = kLanes; t < kp; t += kLanes) {
      vf v;
      std::memcpy(&v, d + t, sizeof v);
      m = vmax(m, v);
    }
    const float mx = fold_lanes(m, vmax)[0];
    tau = mx;
    int64_t w = -1;  // among the kept at distance mx, the largest index is the worst
    for (int64_t t = 0; t < kp; t += kLanes) {
      vf v;
      std::memcpy(&v, d + t, sizeof v);
      for (uint32_t eq = lane_bits(v == (vf{} + mx)); eq; eq &= eq - 1) {
        const int64_t c = t + __builtin_ctz(eq);
        if (w < 0 || i[c] > i[w]) w = c;
      }
    }
    worst = w;
  }
  void write(int64_t* idx, float* dist, std::vector<std::pair<float, int64_t>>& order) const {
    order.resize(count);
    for (int64_t t = 0; t < count; ++t) order[t] = {d[t], i[t]};
    std::sort(order.begin(), order.end());
    for (int64_t t = 0; t < count; ++t) dist[t] = order[t].first, idx[t] = order[t].second;
  }
};

// Offers the grid's points [lo, hi) (coordinate arrays in cell order) to `top`, point t as its
// original index[t]. SIMD distances; only lanes at or under the current K-th distance are
// offered (ties are settled by offer()).
__attribute__((target_clones("avx512f", "avx2", "default")))
void scan(const float* x, const float* y, const float* z, const int32_t* index, int64_t lo, int64_t hi, float qx,
          float qy, float qz, TopK& top) {
  const vf vqx = vf{} + qx, vqy = vf{} + qy, vqz = vf{} + qz;
  int64_t t = lo;
  for (; t + kLanes <= hi; t += kLanes) {
    vf px, py, pz;
    std::memcpy(&px, x + t, sizeof px);
    std::memcpy(&py, y + t, sizeof py);
    std::memcpy(&pz, z + t, sizeof pz);
    const vf dx = px - vqx, dy = py - vqy, dz = pz - vqz;
    const vf d = dx * dx + dy * dy + dz * dz;
    for (uint32_t pass = lane_bits(d <= (vf{} + top.tau)); pass; pass &= pass - 1) {
      const int l = __builtin_ctz(pass);
      top.offer(d[l], index[t + l]);
    }
  }
  for (; t < hi; ++t) {
    const float dx = x[t] - qx, dy = y[t] - qy, dz = z[t] - qz;
    const float d = dx * dx + dy * dy + dz * dz;
    if (d <= top.tau) top.offer(d, index[t]);
  }
}

// Brute force for one cloud, query by query in three SIMD passes: (1) every distance, and the
// minimum of each block of 16; (2) a bound tau: the K-th smallest block minimum (the block minima
// are distances of K different points, so at least K points lie within tau; with fewer than K
// blocks, tau = infinity); (3) the points within tau (a few more than K on real clouds) are
// ranked by (distance, index) and the first K kept.
__attribute__((target_clones("avx512f", "avx2", "default")))
void brute_one(const float* x, const float* y, const float* z, int64_t n, float qx, float qy, float qz, int64_t k,
               float* dd, float* bmin, std::vector<std::pair<float, int64_t>>& cand, int64_t* idx, float* dist) {
  const vf vqx = vf{} + qx, vqy = vf{} + qy, vqz = vf{} + qz;
  const int64_t full = n / kLanes;
  for (int64_t b = 0; b < full; ++b) {
    const int64_t t = b * kLanes;
    vf px, py, pz;
    std::memcpy(&px, x + t, sizeof px);
    std::memcpy(&py, y + t, sizeof py);
    std::memcpy(&pz, z + t, sizeof pz);
    const vf dx = px - vqx, dy = py - vqy, dz = pz - vqz;
    const vf d = dx * dx + dy * dy + dz * dz;
    std::memcpy(dd + t, &d, sizeof d);
    bmin[b] = fold_lanes(d, vmin)[0];
  }
  for (int64_t t = full * kLanes; t < n; ++t) {
    const float dx = x[t] - qx, dy = y[t] - qy, dz = z[t] - qz;
    dd[t] = dx * dx + dy * dy + dz * dz;
  }
  float tau = std::numeric_limits<float>::infinity();
  if (full >= k) {
    std::nth_element(bmin, bmin + (k - 1), bmin + full);
    tau = bmin[k - 1];
  }
  cand.clear();
  const vf vt = vf{} + tau;
  for (int64_t b = 0; b < full; ++b) {
    vf d;
    std::memcpy(&d, dd + b * kLanes, sizeof d);
    for (uint32_t pass = lane_bits(d <= vt); pass; pass &= pass - 1) {
      const int64_t t = b * kLanes + __builtin_ctz(pass);
      cand.emplace_back(dd[t], t);
    }
  }
  for (int64_t t = full * kLanes; t < n; ++t)
    if (dd[t] <= tau) cand.emplace_back(dd[t], t);
  if (int64_t(cand.size()) > 2 * k) std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end());
  std::sort(cand.begin(), int64_t(cand.size()) > 2 * k ? cand.begin() + k : cand.end());
  for (int64_t t = 0; t < k; ++t) dist[t] = cand[t].first, idx[t] = cand[t].second;
}

}  // namespace

void knn_brute_fast(const float* q, int64_t s, const float* p, int64_t n, int64_t k, int64_t* idx, float* dist) {
  std::vector<float> x(n), y(n), z(n), dd(n), bmin(n / kLanes + 1);
  for (int64_t j = 0; j < n; ++j) {
    x[j] = p[3 * j];
    y[j] = p[3 * j + 1];
    z[j] = p[3 * j + 2];
  }
  std::vector<std::pair<float, int64_t>> cand;
  cand.reserve(4 * k);
  for (int64_t i = 0; i < s; ++i)
    brute_one(x.data(), y.data(), z.data(), n, q[3 * i], q[3 * i + 1], q[3 * i + 2], k, dd.data(), bmin.data(), cand,
              idx + i * k, dist + i * k);
}

KnnGrid::KnnGrid(const float* p, int64_t n) {
  float hi[3];
  for (int a = 0; a < 3; ++a) lo_[a] = hi[a] = p[a];
  for (int64_t j = 1; j < n; ++j)
    for (int a = 0; a < 3; ++a) {
      lo_[a] = std::min(lo_[a], p[3 * j + a]);
      hi[a] = std::max(hi[a], p[3 * j + a]);
    }
  // About half a point per cell if the cloud filled its box (surfaces put more in the occupied ones);
  // measured on surface clouds: 1.2-1.5x faster at 8k points than one point per cell.
  g_ = std::max<int64_t>(1, static_cast<int64_t>(std::cbrt(static_cast<double>(n) * 2.0)));
  for (int a = 0; a < 3; ++a) {
    cell_[a] = std::max((hi[a] - lo_[a]) / static_cast<float>(g_), 1e-12f);
    inv_[a] = 1.0f / cell_[a];
  }
  std::vector<int32_t> cell_of(n);
  start_.assign(g_ * g_ * g_ + 1, 0);
  for (int64_t j = 0; j < n; ++j) {
    cell_of[j] = static_cast<int32_t>((coord(p[3 * j], 0) * g_ + coord(p[3 * j + 1], 1)) * g_ + coord(p[3 * j + 2], 2));
    ++start_[cell_of[j] + 1];
  }
  for (int64_t c = 0; c < g_ * g_ * g_; ++c) start_[c + 1] += start_[c];
  std::vector<int32_t> fill(start_.begin(), start_.end() - 1);
  x_.resize(n), y_.resize(n), z_.resize(n), index_.resize(n);
  for (int64_t j = 0; j < n; ++j) {
    const int32_t t = fill[cell_of[j]]++;  // increasing j within a cell
    x_[t] = p[3 * j], y_[t] = p[3 * j + 1], z_[t] = p[3 * j + 2];
    index_[t] = static_cast<int32_t>(j);
  }
}

int64_t KnnGrid::coord(float v, int a) const {
  return std::clamp<int64_t>(static_cast<int64_t>((v - lo_[a]) * inv_[a]), 0, g_ - 1);
}

void KnnGrid::query(const float* q, int64_t s, int64_t k, int64_t* idx, float* dist) const {
  const int64_t g = g_;
  const int64_t kp = (k + kLanes - 1) / kLanes * kLanes;
  std::vector<float> td(kp);
  std::vector<int64_t> ti(kp);
  std::vector<std::pair<float, int64_t>> order;
  for (int64_t i = 0; i < s; ++i) {
    TopK top(k, td.data(), ti.data());
    const float qs[3] = {q[3 * i], q[3 * i + 1], q[3 * i + 2]};
    const int64_t c[3] = {coord(qs[0], 0), coord(qs[1], 1), coord(qs[2], 2)};
    auto row = [&](int64_t x, int64_t y, int64_t z0, int64_t z1) {  // cells (x, y, z0..z1): one range
      z0 = std::max<int64_t>(z0, 0), z1 = std::min<int64_t>(z1, g - 1);
      if (z0 > z1) return;
      const int64_t base = (x * g + y) * g;
      scan(x_.data(), y_.data(), z_.data(), index_.data(), start_[base + z0], start_[base + z1 + 1], qs[0], qs[1], qs[2], top);
    };
    for (int64_t r = 0;; ++r) {
      // The cells at Chebyshev distance exactly r from c.
      for (int64_t x = std::max<int64_t>(c[0] - r, 0); x <= std::min<int64_t>(c[0] + r, g - 1); ++x)
        for (int64_t y = std::max<int64_t>(c[1] - r, 0); y <= std::min<int64_t>(c[1] + r, g - 1); ++y) {
          const bool face = x == c[0] - r || x == c[0] + r || y == c[1] - r || y == c[1] + r;
          if (face || r == 0) {
            row(x, y, c[2] - r, c[2] + r);
          } else {
            row(x, y, c[2] - r, c[2] - r);
            row(x, y, c[2] + r, c[2] + r);
          }
        }
      bool covers_all = true;
      for (int a = 0; a < 3; ++a) covers_all = covers_all && c[a] - r <= 0 && c[a] + r >= g - 1;
      if (covers_all) break;
      if (const float kth = top.tau; top.count == k) {
        // Distance from the query to the nearest face of the visited cube with cells beyond it,
        // shrunk by 1e-4 cell so that a point rounding put in the next cell is still covered.
        float margin = INFINITY;
        for (int a = 0; a < 3; ++a) {
          if (c[a] - r > 0)
            margin = std::min(margin, qs[a] - (lo_[a] + static_cast<float>(c[a] - r) * cell_[a]) - 1e-4f * cell_[a]);
          if (c[a] + r < g - 1)
            margin = std::min(margin, (lo_[a] + static_cast<float>(c[a] + r + 1) * cell_[a]) - qs[a] - 1e-4f * cell_[a]);
        }
        if (margin > 0 && kth < margin * margin) break;
      }
    }
    top.write(idx + i * k, dist + i * k, order);
  }
}

}  // namespace ewa::kernels
