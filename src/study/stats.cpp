#include "study/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace ewa::study {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The continued fraction of I_x(a, b) (modified Lentz), converging for x < (a + 1) / (a + b + 2).
double beta_fraction(double x, double a, double b) {
  constexpr double tiny = 1e-300, eps = 1e-16;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    // even step
    double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + num * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + num / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    // odd step
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + num * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + num / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1.0) < eps) break;
  }
  return h;
}

double normal_sf(double x) { return 0.5 * std::erfc(x / std::sqrt(2.0)); }

}  // namespace

double incomplete_beta(double x, double a, double b) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1.0) / (a + b + 2.0)) return front * beta_fraction(x, a, b) / a;
  return 1.0 - front * beta_fraction(1.0 - x, b, a) / b;
}

double t_cdf(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return kNaN;
  if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
  const double tail = 0.5 * incomplete_beta(df / (df + t * t), 0.5 * df, 0.5);  // P(T > |t|)
  return t > 0 ? 1.0 - tail : tail;
}

double t_quantile(double q, double df) {
  if (!(q > 0 && q < 1) || !(df > 0)) return kNaN;
  if (q == 0.5) return 0;
  if (q < 0.5) return -t_quantile(1.0 - q, df);
  double lo = 0, hi = 1;
  while (t_cdf(hi, df) < q) lo = hi, hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (t_cdf(mid, df) < q ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double nct_sf(double t, double df, double nc) {
  // T' = (Z + nc) / W with W = sqrt(V / df), V ~ chi^2(df): P(T' > t) = E[P(Z > t W - nc)], the
  // expectation over w = sqrt(V) (density 2 w^(df-1) exp(-w^2/2) / (2^(df/2) Gamma(df/2)), finite
  // at 0 for df >= 1) by Simpson's rule up to sqrt(df) + 12 (the chi mass beyond is < 1e-30).
  if (!(df > 0) || std::isnan(t) || std::isnan(nc)) return kNaN;
  const double log_norm = std::log(2.0) - 0.5 * df * std::log(2.0) - std::lgamma(0.5 * df);
  const double upper = std::sqrt(df) + 12.0;
  const int intervals = 8000;
  const double h = upper / intervals, root_df = std::sqrt(df);
  auto f = [&](double w) {
    if (w <= 0) return df == 1.0 ? std::exp(log_norm) * normal_sf(-nc) : 0.0;
    return std::exp(log_norm + (df - 1.0) * std::log(w) - 0.5 * w * w) * normal_sf(t * w / root_df - nc);
  };
  double sum = f(0) + f(upper);
  for (int i = 1; i < intervals; ++i) sum += (i % 2 ? 4.0 : 2.0) * f(i * h);
  return std::clamp(sum * h / 3.0, 0.0, 1.0);
}

Summary summarize(const std::vector<double>& x) {
  Summary s;
  s.n = static_cast<int64_t>(x.size());
  if (x.empty()) {
    s.mean = s.sd = s.ci_low = s.ci_high = s.min = s.max = kNaN;
    return s;
  }
  s.mean = std::accumulate(x.begin(), x.end(), 0.0) / double(s.n);
  s.min = *std::min_element(x.begin(), x.end());
  s.max = *std::max_element(x.begin(), x.end());
  if (s.n < 2) {
    s.sd = s.ci_low = s.ci_high = kNaN;
    return s;
  }
  double ss = 0;
  for (double v : x) ss += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(ss / double(s.n - 1));
  const double half = t_quantile(0.975, double(s.n - 1)) * s.sd / std::sqrt(double(s.n));
  s.ci_low = s.mean - half;
  s.ci_high = s.mean + half;
  return s;
}

SignedRank wilcoxon_signed_rank(const std::vector<double>& d) {
  SignedRank r;
  std::vector<double> nz;
  for (double v : d) {
    if (v > 0) ++r.positive;
    else if (v < 0) ++r.negative;
    else ++r.zero;
    if (v != 0) nz.push_back(v);
  }
  const size_t m = nz.size();
  if (m == 0) return r;
  // Average ranks of |d|, doubled so that they are integers.
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return std::fabs(nz[i]) < std::fabs(nz[j]); });
  std::vector<int64_t> rank2(m);
  for (size_t i = 0; i < m;) {
    size_t j = i;
    while (j + 1 < m && std::fabs(nz[order[j + 1]]) == std::fabs(nz[order[i]])) ++j;
    const int64_t twice_avg = int64_t(i + 1 + j + 1);  // 2 * mean of ranks i+1 .. j+1
    for (size_t k = i; k <= j; ++k) rank2[order[k]] = twice_avg;
    i = j + 1;
  }
  int64_t obs2 = 0, total2 = 0;
  for (size_t i = 0; i < m; ++i) {
    total2 += rank2[i];
    if (nz[i] > 0) obs2 += rank2[i];
  }
  r.r_plus = 0.5 * double(obs2);
  r.r_minus = 0.5 * double(total2 - obs2);
  // counts[k]: sign assignments whose positive ranks sum (doubled) to k, scaled by 1/2 per step.
  std::vector<double> counts(static_cast<size_t>(total2) + 1, 0.0);
  counts[0] = 1.0;
  int64_t reach = 0;
  for (size_t i = 0; i < m; ++i) {
    reach += rank2[i];
    for (int64_t k = reach; k >= 0; --k) {
      const double with = k >= rank2[i] ? counts[static_cast<size_t>(k - rank2[i])] : 0.0;
      counts[static_cast<size_t>(k)] = 0.5 * (counts[static_cast<size_t>(k)] + with);
    }
  }
  double le = 0, ge = 0;
  for (int64_t k = 0; k <= total2; ++k) {
    if (k <= obs2) le += counts[static_cast<size_t>(k)];
    if (k >= obs2) ge += counts[static_cast<size_t>(k)];
  }
  r.p = std::min(1.0, 2.0 * std::min(le, ge));
  return r;
}

double paired_t_power(double effect, int64_t n, double alpha) {
  if (n < 2) return kNaN;
  const double df = double(n - 1), c = t_quantile(1.0 - alpha / 2.0, df), nc = effect * std::sqrt(double(n));
  return std::clamp(nct_sf(c, df, nc) + (1.0 - nct_sf(-c, df, nc)), 0.0, 1.0);
}

Paired compare_paired(const std::vector<double>& a, const std::vector<double>& b) {
  Paired out;
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = b[i] - a[i];
  out.diff = summarize(d);
  const auto n = out.diff.n;
  if (n >= 2) {
    if (out.diff.sd > 0) {
      out.t = out.diff.mean / (out.diff.sd / std::sqrt(double(n)));
      out.p_t = 2.0 * t_cdf(-std::fabs(out.t), double(n - 1));
    } else {
      out.t = out.diff.mean == 0 ? kNaN : std::copysign(INFINITY, out.diff.mean);
      out.p_t = out.diff.mean == 0 ? kNaN : 0.0;
    }
  } else {
    out.t = out.p_t = kNaN;
  }
  // Ties and zeros as the figures are: fractions of one test set, so differences are rounded to
  // 1e-9 first (equal differences computed in floating point then tie, as they should).
  std::vector<double> rounded(d.size());
  for (size_t i = 0; i < d.size(); ++i) rounded[i] = std::round(d[i] * 1e9) / 1e9;
  out.wilcoxon = wilcoxon_signed_rank(rounded);
  if (n >= 2 && out.diff.sd == 0 && out.diff.mean != 0) {
    out.seeds_for_power = 0;
  } else if (n >= 2 && out.diff.mean != 0) {
    const double effect = std::fabs(out.diff.mean) / out.diff.sd;
    int64_t lo = 1, hi = 2;  // power(lo) < 0.8 <= power(hi)
    while (paired_t_power(effect, hi) < 0.8 && hi < (int64_t(1) << 24)) lo = hi, hi *= 2;
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      (paired_t_power(effect, mid) < 0.8 ? lo : hi) = mid;
    }
    out.seeds_for_power = hi;
  }
  return out;
}

}  // namespace ewa::study
