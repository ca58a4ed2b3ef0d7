// `ewa study`'s statistics against SciPy on fresh random numbers (tests/fixtures/
// study_stats_oracle.py), and against cases worked by hand.
#include <cmath>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "study/stats.h"
#include "test_util.h"

namespace {
using namespace ewa::study;
using ewa::testing::TempDir;

TEST(StudyStats, HandWorkedCases) {
  // d = (1, 2, 3): every difference positive, 3 ranks: P(R+ >= 6) = 1/8, two-sided 1/4.
  auto w = wilcoxon_signed_rank({1, 2, 3});
  EXPECT_DOUBLE_EQ(w.r_plus, 6);
  EXPECT_DOUBLE_EQ(w.p, 0.25);
  EXPECT_EQ(w.positive, 3);
  // A zero is dropped; ties share their average rank: d = (0, -1, 1, 2): ranks 1.5, 1.5, 3;
  // R+ = 4.5 of the 8 equally likely sums {0, 1.5, 1.5, 3, 3, 4.5, 4.5, 6}: P(>= 4.5) = 3/8,
  // P(<= 4.5) = 7/8: p = 3/4.
  w = wilcoxon_signed_rank({0, -1, 1, 2});
  EXPECT_DOUBLE_EQ(w.r_plus, 4.5);
  EXPECT_DOUBLE_EQ(w.p, 0.75);
  EXPECT_EQ(w.zero, 1);
  EXPECT_EQ(w.negative, 1);
  // Paired t by hand: a = (1, 2, 3), b = (2, 4, 5): d = (1, 2, 2), mean 5/3, sd sqrt(1/3),
  // t = (5/3) / (sqrt(1/3) / sqrt(3)) = 5.
  const auto p = compare_paired({1, 2, 3}, {2, 4, 5});
  EXPECT_NEAR(p.diff.mean, 5.0 / 3.0, 1e-12);
  EXPECT_NEAR(p.t, 5.0, 1e-12);
  // t with 2 df: P(|T| > 5) = 1 - 5 / sqrt(27) (the closed form of the 2-df t).
  EXPECT_NEAR(p.p_t, 1.0 - 5.0 / std::sqrt(27.0), 1e-12);
  // t(1 df) is Cauchy: P(T <= 1) = 3/4.
  EXPECT_NEAR(t_cdf(1.0, 1.0), 0.75, 1e-14);
  // The power of a test at effect 0 is its level.
  EXPECT_NEAR(paired_t_power(0.0, 10), 0.05, 1e-9);
  // Equal figures: no difference at all, nothing to power.
  const auto same = compare_paired({1, 2, 3}, {1, 2, 3});
  EXPECT_TRUE(std::isnan(same.p_t));
  EXPECT_EQ(same.seeds_for_power, -1);
  EXPECT_DOUBLE_EQ(same.wilcoxon.p, 1.0);
}

TEST(StudyStats, MatchSciPyOnFreshRandomNumbers) {
  const std::string python = EWA_PYTHON;
  if (python.empty()) GTEST_SKIP() << "no Python with torch found at configure time";
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> u(0, 1);
  nlohmann::json cases = {{"t", nlohmann::json::array()},     {"q", nlohmann::json::array()},
                          {"nct", nlohmann::json::array()},   {"samples", nlohmann::json::array()},
                          {"pairs", nlohmann::json::array()}, {"power", nlohmann::json::array()}};
  for (int i = 0; i < 30; ++i) {
    const double df = 1 + std::floor(u(rng) * 40);
    cases["t"].push_back({(u(rng) - 0.5) * 12, df});
    cases["q"].push_back({0.001 + 0.998 * u(rng), df});
    cases["nct"].push_back({(u(rng) - 0.3) * 6, df, (u(rng) - 0.2) * 5});
  }
  cases["q"].push_back({0.975, 1.0});
  cases["q"].push_back({0.975, 9.0});
  // Accuracies of a 400-sample test set (multiples of 0.25 points): ties and zero differences
  // are frequent, as in real studies; and continuous figures, without ties.
  auto figure = [&](bool quantized) { return quantized ? 80 + std::floor(u(rng) * 40) * 0.25 : 80 + 10 * u(rng); };
  for (int n : {2, 3, 5, 10, 30}) {
    std::vector<double> x;
    for (int i = 0; i < n; ++i) x.push_back(figure(i % 2 == 0));
    cases["samples"].push_back(x);
  }
  for (int n : {3, 5, 8, 10, 12, 13, 14}) {
    for (bool quantized : {false, true}) {
      std::vector<double> a, b;
      for (int i = 0; i < n; ++i) {
        a.push_back(figure(quantized));
        b.push_back(quantized ? a.back() + std::floor((u(rng) - 0.4) * 6) * 0.25 : a.back() + (u(rng) - 0.4) * 2);
      }
      b[0] = a[0] + 0.5;  // never all differences zero
      cases["pairs"].push_back({a, b});
    }
  }
  // (SciPy's nct.cdf returns NaN beyond a noncentrality of about 8: the cases stay below 7.)
  for (int i = 0; i < 8; ++i) cases["power"].push_back({0.2 + 0.8 * u(rng), 2 + int(u(rng) * 40)});

  TempDir tmp;
  std::ofstream(tmp / "in.json") << cases.dump();
  const auto r = ewa::testing::run_command(python + " " + EWA_SOURCE_DIR "/tests/fixtures/study_stats_oracle.py " +
                                           (tmp / "in.json") + " " + (tmp / "out.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output << "\n(scripts/install-deps.sh installs SciPy into the virtual environment)";
  const auto want = nlohmann::json::parse(std::ifstream(tmp / "out.json"));
  for (size_t i = 0; i < cases["t"].size(); ++i)
    EXPECT_NEAR(t_cdf(cases["t"][i][0], cases["t"][i][1]), want["t_cdf"][i].get<double>(), 1e-11) << cases["t"][i];
  for (size_t i = 0; i < cases["q"].size(); ++i) {
    const double got = t_quantile(cases["q"][i][0], cases["q"][i][1]), w = want["t_ppf"][i];
    EXPECT_NEAR(got, w, 1e-9 * std::max(1.0, std::fabs(w))) << cases["q"][i];
  }
  for (size_t i = 0; i < cases["nct"].size(); ++i)
    EXPECT_NEAR(nct_sf(cases["nct"][i][0], cases["nct"][i][1], cases["nct"][i][2]), want["nct_sf"][i].get<double>(), 1e-8)
        << cases["nct"][i];
  for (size_t i = 0; i < cases["samples"].size(); ++i) {
    const auto s = summarize(cases["samples"][i].get<std::vector<double>>());
    const auto& w = want["samples"][i];
    EXPECT_NEAR(s.mean, w["mean"].get<double>(), 1e-10);
    EXPECT_NEAR(s.sd, w["sd"].get<double>(), 1e-10);
    EXPECT_NEAR(s.ci_low, w["lo"].get<double>(), 1e-8);
    EXPECT_NEAR(s.ci_high, w["hi"].get<double>(), 1e-8);
  }
  for (size_t i = 0; i < cases["pairs"].size(); ++i) {
    const auto a = cases["pairs"][i][0].get<std::vector<double>>(), b = cases["pairs"][i][1].get<std::vector<double>>();
    const auto p = compare_paired(a, b);
    const auto& w = want["pairs"][i];
    EXPECT_NEAR(p.t, w["t"].get<double>(), 1e-9 * std::max(1.0, std::fabs(p.t))) << cases["pairs"][i];
    EXPECT_NEAR(p.p_t, w["p_t"].get<double>(), 1e-10) << cases["pairs"][i];
    EXPECT_NEAR(p.wilcoxon.p, w["p_w"].get<double>(), 1e-12) << cases["pairs"][i];
  }
  for (size_t i = 0; i < cases["power"].size(); ++i)
    EXPECT_NEAR(paired_t_power(cases["power"][i][0], cases["power"][i][1]), want["power"][i].get<double>(), 1e-7)
        << cases["power"][i];
}

TEST(StudyStats, SeedsForPowerIsTheSmallestSufficientCount) {
  // Differences with mean 1 and sd 2 (effect 0.5): the count is the first n whose power reaches 0.8.
  std::vector<double> a(6, 0.0), b = {1 - std::sqrt(10.0), 1, 1, 1, 1, 1 + std::sqrt(10.0)};
  const auto p = compare_paired(a, b);
  ASSERT_NEAR(p.diff.sd, 2.0, 1e-12);
  const int64_t n = p.seeds_for_power;
  EXPECT_GE(paired_t_power(0.5, n), 0.8);
  EXPECT_LT(paired_t_power(0.5, n - 1), 0.8);
  EXPECT_EQ(n, 34);  // G*Power / statsmodels TTestPower give 34 for d = 0.5, alpha 0.05, power 0.8
}

}  // namespace
