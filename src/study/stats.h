// The statistics of `ewa study`: summaries of one arm's per-seed figures and of the paired
// differences between two arms, with the distributions they need (Student's t, its noncentral
// form for power, the exact null distribution of the signed-rank statistic). Each matches SciPy
// (scipy.stats.t, ttest_rel, wilcoxon, nct) on the same numbers: tests/test_study.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ewa::study {

// P(T <= t) for Student's t with `df` degrees of freedom (df > 0; t may be +-inf).
double t_cdf(double t, double df);
// The q-quantile of Student's t (0 < q < 1).
double t_quantile(double q, double df);
// P(T > t) for the noncentral t with `df` degrees of freedom and noncentrality `nc`.
double nct_sf(double t, double df, double nc);
// The regularized incomplete beta function I_x(a, b).
double incomplete_beta(double x, double a, double b);

// One arm's figures over its seeds.
struct Summary {
  int64_t n = 0;
  double mean = 0, sd = 0;  // sd: the sample standard deviation (n - 1); NaN for n < 2
  double ci_low = 0, ci_high = 0;  // 95% t interval of the mean; NaN for n < 2
  double min = 0, max = 0;
};
Summary summarize(const std::vector<double>& x);

// The exact two-sided p of the Wilcoxon signed-rank test of `d` (zeros dropped, as SciPy's
// zero_method="wilcox"; tied |d| take their average rank): the null distribution of the sum of
// positive ranks over all 2^m sign assignments of the m non-zero differences, counted exactly by
// dynamic programming, so it is exact with ties too (SciPy's permutation test). 1 when m = 0.
struct SignedRank {
  double r_plus = 0, r_minus = 0;  // sums of the ranks of the positive and negative differences
  double p = 1;
  int64_t positive = 0, negative = 0, zero = 0;  // the sign count
};
SignedRank wilcoxon_signed_rank(const std::vector<double>& d);

// The paired comparison of arm b against baseline a on the same seeds (b - a).
struct Paired {
  Summary diff;          // of the differences
  double t = 0, p_t = 1;  // paired t statistic and its two-sided p (scipy.stats.ttest_rel)
  SignedRank wilcoxon;
  // Seeds a paired t-test needs for 80% power at alpha 0.05 (two-sided) if the true effect were
  // the observed mean difference with the observed sd (noncentral t); -1 when the observed mean
  // difference is 0 or the sd is undefined, 0 when the sd is 0.
  int64_t seeds_for_power = -1;
};
Paired compare_paired(const std::vector<double>& a, const std::vector<double>& b);

// Power of the two-sided paired t-test at level alpha with n pairs when the true mean difference
// is `effect` standard deviations of the differences.
double paired_t_power(double effect, int64_t n, double alpha = 0.05);

}  // namespace ewa::study
