// Fast CPU path of farthest_point_sample (see fps.h): the same answers as the readable twins in
// fps_cpu.cpp (tests compare them), computed with
// - coordinates as three arrays and one fused pass per sample: distance to the new sample, the
//   running minimum, and the running maximum with its index, kept per SIMD lane and folded at
//   the end of the pass;
// - that pass compiled for AVX-512 (16 lanes), AVX2 (8) and the baseline (4), chosen at run time
//   (simd::level(), kernels/common/simd.h);
// - optionally several threads on one cloud: each scans a contiguous share of the points, the
//   threads meet at a spinning barrier after every sample and fold their results in a fixed order
//   (so the answer does not depend on the thread count).
// No torch headers here.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "kernels/common/simd.h"
#include "kernels/fps/fps_fast.h"

namespace ewa::kernels {
namespace {

using simd::load;
using simd::store;
using simd::Vec;

// Threads share the points in whole blocks of this many (a multiple of every lane count).
constexpr int64_t kShareUnit = 16;

// One vector of the exact rule at point j: nearest updated, the running arg-max (bv, bi) too.
// (A helper, not a lambda: a lambda would be compiled outside the variant's target.)
template <int L>
EWA_SIMD_INLINE void exact_step(const float* x, const float* y, const float* z, float* nearest, int64_t j, int64_t lo,
                                float cx, float cy, float cz, typename Vec<L>::f& bv, typename Vec<L>::i& bi) {
  using vf = typename Vec<L>::f;
  using vi = typename Vec<L>::i;
  const vf dx = load<vf>(x + j) - cx, dy = load<vf>(y + j) - cy, dz = load<vf>(z + j) - cz;
  const vf d = dx * dx + dy * dy + dz * dz;
  const vf old = load<vf>(nearest + j);
  const vf m = d < old ? d : old;
  store(nearest + j, m);
  const vi gt = m > bv;  // strict: a lane keeps its first maximum
  bv = gt ? m : bv;
  bi = gt ? simd::iota<L>() + static_cast<int32_t>(j - lo) : bi;
}

// Exact rule, points [lo, hi): nearest = min(nearest, |p - c|^2); returns the largest nearest
// value and its lowest index in the range (value -1 when the range is empty). Two running
// arg-maxima, for even and odd vectors, halve the loop-carried compare-and-select chain; each
// keeps its lanes' first maxima, and the fold at the end takes the lowest index among equal ones.
template <int L>
EWA_SIMD_INLINE void scan_exact(const float* x, const float* y, const float* z, float* nearest, int64_t lo, int64_t hi,
                                float cx, float cy, float cz, float* best_value, int64_t* best_index) {
  using vf = typename Vec<L>::f;
  using vi = typename Vec<L>::i;
  vf bv[2] = {vf{} - 1.0f, vf{} - 1.0f};
  vi bi[2] = {vi{}, vi{}};
  int64_t j = lo;
  for (; j + 2 * L <= hi; j += 2 * L) {
    exact_step<L>(x, y, z, nearest, j, lo, cx, cy, cz, bv[0], bi[0]);
    exact_step<L>(x, y, z, nearest, j + L, lo, cx, cy, cz, bv[1], bi[1]);
  }
  if (j + L <= hi) {
    exact_step<L>(x, y, z, nearest, j, lo, cx, cy, cz, bv[0], bi[0]);
    j += L;
  }
  float value = -1.0f;
  int64_t index = lo;
  for (int a = 0; a < 2; ++a)
    for (int l = 0; l < L; ++l) {  // lowest index among the lanes' maxima
      const int64_t i = lo + bi[a][l];
      if (bv[a][l] > value || (bv[a][l] == value && i < index)) value = bv[a][l], index = i;
    }
  for (; j < hi; ++j) {
    const float dx = x[j] - cx, dy = y[j] - cy, dz = z[j] - cz;
    const float d = dx * dx + dy * dy + dz * dz;
    const float m = d < nearest[j] ? d : nearest[j];
    nearest[j] = m;
    if (m > value) value = m, index = j;
  }
  *best_value = value;
  *best_index = index;
}
EWA_SIMD_VARIANTS(scan_exact_at_level, scan_exact)

// pointnet2 rule, points [lo, hi) with lo a multiple of T (a power of two): point k belongs to
// "thread" k mod T, which keeps its first maximum in best[k mod T] / best_i.
template <int L>
EWA_SIMD_INLINE void scan_pointnet2(const float* x, const float* y, const float* z, float* nearest, int64_t lo,
                                    int64_t hi, int64_t T, float cx, float cy, float cz, float* best, int32_t* best_i) {
  using vf = typename Vec<L>::f;
  using vi = typename Vec<L>::i;
  for (int64_t t = 0; t < T; ++t) best[t] = -1.0f, best_i[t] = 0;
  const vi lane = simd::iota<L>();
  const vf vcx = vf{} + cx, vcy = vf{} + cy, vcz = vf{} + cz;
  for (int64_t c = lo; c < hi; c += T) {
    const int64_t len = std::min(T, hi - c);
    int64_t t = 0;
    for (; t + L <= len; t += L) {
      const int64_t j = c + t;
      const vf dx = load<vf>(x + j) - vcx, dy = load<vf>(y + j) - vcy, dz = load<vf>(z + j) - vcz;
      const vf d = dx * dx + dy * dy + dz * dz;
      const vf old = load<vf>(nearest + j);  // -inf for points the rule skips: never a maximum
      const vf m = d < old ? d : old;
      store(nearest + j, m);
      const vf bv = load<vf>(best + t);
      vi bi = load<vi>(best_i + t);
      const vi gt = m > bv;
      store(best + t, gt ? m : bv);
      bi = gt ? lane + static_cast<int32_t>(j) : bi;
      store(best_i + t, bi);
    }
    for (; t < len; ++t) {
      const int64_t j = c + t;
      const float dx = x[j] - cx, dy = y[j] - cy, dz = z[j] - cz;
      const float d = dx * dx + dy * dy + dz * dz;
      const float m = d < nearest[j] ? d : nearest[j];
      nearest[j] = m;
      if (m > best[t]) best[t] = m, best_i[t] = static_cast<int32_t>(j);
    }
  }
}
EWA_SIMD_VARIANTS(scan_pointnet2_at_level, scan_pointnet2)

// pointnet2's pairwise fold of the T per-"thread" maxima (t with t + T/2, ..., t with t + 1, the
// lower position keeping ties); returns the winner's index. Whole vectors while the halves are at
// least a vector apart.
template <int L>
EWA_SIMD_INLINE int64_t fold_pointnet2(float* best, int32_t* best_i, int64_t T) {
  using vf = typename Vec<L>::f;
  using vi = typename Vec<L>::i;
  int64_t offset = T / 2;
  for (; offset >= L; offset /= 2)
    for (int64_t p = 0; p < offset; p += L) {
      const vf a = load<vf>(best + p), b = load<vf>(best + p + offset);
      const vi ai = load<vi>(best_i + p), bi = load<vi>(best_i + p + offset);
      const vi take = b > a;
      store(best + p, take ? b : a);
      store(best_i + p, take ? bi : ai);
    }
  for (; offset > 0; offset /= 2)
    for (int64_t p = 0; p < offset; ++p)
      if (best[p + offset] > best[p]) best[p] = best[p + offset], best_i[p] = best_i[p + offset];
  return best_i[0];
}
EWA_SIMD_VARIANTS(fold_pointnet2_at_level, fold_pointnet2)

// Spinning barrier for a few threads that meet thousands of times a second.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait() {
    const int gen = generation_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      count_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_acq_rel);
      return;
    }
    for (int spins = 0; generation_.load(std::memory_order_acquire) == gen; ++spins)
      if (spins > 4096) std::this_thread::yield();
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> generation_{0};
};

}  // namespace

void farthest_point_sample_fast(const float* xyz, int64_t n, int64_t s, int64_t start, bool pointnet2, int threads,
                                int64_t* out) {
  std::vector<float> x(n), y(n), z(n), nearest(n);
  for (int64_t j = 0; j < n; ++j) {
    x[j] = xyz[3 * j];
    y[j] = xyz[3 * j + 1];
    z[j] = xyz[3 * j + 2];
    // pointnet2 skips points within sqrt(1e-3) of the origin (compared in double, as its source).
    const bool skipped = pointnet2 && double(x[j] * x[j] + y[j] * y[j] + z[j] * z[j]) <= 1e-3;
    nearest[j] = skipped ? -std::numeric_limits<float>::infinity() : (pointnet2 ? 1e10f : std::numeric_limits<float>::infinity());
  }
  const int64_t T = pointnet2 ? pointnet2_fps_threads(n) : 1;
  // Shares of whole T-blocks (exact rule: of kShareUnit-blocks), at least 4096 points each.
  const int64_t unit = pointnet2 ? T : kShareUnit;
  const int64_t units = (n + unit - 1) / unit;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({threads, units, n / 4096})));
  std::vector<int64_t> bound(nt + 1);
  for (int t = 0; t <= nt; ++t) bound[t] = std::min(n, units * t / nt * unit);

  // Per thread and per parity of the sample (a thread never gets two samples ahead).
  struct Slot {
    float value = -1;
    int64_t index = 0;
    std::vector<float> best;
    std::vector<int32_t> best_i;
  };
  std::vector<Slot> slots(2 * nt);
  for (auto& sl : slots) sl.best.resize(T), sl.best_i.resize(T);
  SpinBarrier barrier(nt);

  auto work = [&](int t) {
    std::vector<float> fold_best(nt > 1 ? T : 0);  // per thread: the merged shares of one sample
    std::vector<int32_t> fold_i(nt > 1 ? T : 0);
    int64_t current = start;
    for (int64_t k = 0; k < s; ++k) {
      if (t == 0) out[k] = current;
      if (k + 1 == s) break;
      const float cx = x[current], cy = y[current], cz = z[current];
      Slot& mine = slots[2 * t + (k & 1)];
      if (pointnet2) scan_pointnet2_at_level(x.data(), y.data(), z.data(), nearest.data(), bound[t], bound[t + 1], T, cx, cy, cz,
                                    mine.best.data(), mine.best_i.data());
      else scan_exact_at_level(x.data(), y.data(), z.data(), nearest.data(), bound[t], bound[t + 1], cx, cy, cz, &mine.value,
                      &mine.index);
      if (nt > 1) barrier.wait();
      // Every thread folds the same slots in the same order.
      if (pointnet2) {
        // "Thread" p's first maximum over the shares in order, then the official pairwise fold,
        // both branch-free so that they vectorise. One share folds its own slot in place.
        float* best = mine.best.data();
        int32_t* best_i = mine.best_i.data();
        if (nt > 1) {
          best = fold_best.data(), best_i = fold_i.data();
          const Slot& first = slots[k & 1];
          std::copy(first.best.begin(), first.best.end(), best);
          std::copy(first.best_i.begin(), first.best_i.end(), best_i);
          for (int u = 1; u < nt; ++u) {
            const Slot& sl = slots[2 * u + (k & 1)];
            for (int64_t p = 0; p < T; ++p) {
              const bool take = sl.best[p] > best[p];
              best[p] = take ? sl.best[p] : best[p];
              best_i[p] = take ? sl.best_i[p] : best_i[p];
            }
          }
        }
        current = fold_pointnet2_at_level(best, best_i, T);
      } else {
        float value = -1.0f;
        int64_t index = 0;
        for (int u = 0; u < nt; ++u) {  // shares in index order: a later one wins only when larger
          const Slot& sl = slots[2 * u + (k & 1)];
          if (sl.value > value) value = sl.value, index = sl.index;
        }
        current = index;
      }
    }
  };
  std::vector<std::thread> helpers;
  for (int t = 1; t < nt; ++t) helpers.emplace_back(work, t);
  work(0);
  for (auto& h : helpers) h.join();
}

}  // namespace ewa::kernels
