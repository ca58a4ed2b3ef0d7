// DeiT's training recipe against timm 0.4.5's own code (tests/fixtures/timm_recipe.py): Mixup /
// CutMix with their targets and random erasing, fed the very numbers timm drew (data/draws.h), so
// the mixed batch, the targets and the erased images must come out identical; plus what replay
// cannot show: the soft-target loss by hand, and our own draws' distributions.
#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>

#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "data/erasing.h"
#include "data/mix.h"
#include "io/point_io.h"
#include "test_util.h"

namespace {
using nlohmann::json;

class TimmRecipe : public ewa::testing::PythonFixtureSuite<TimmRecipe> {
 public:
  static std::string script() { return std::string(EWA_SOURCE_DIR) + "/tests/fixtures/timm_recipe.py"; }
  static std::string prefix() { return "timm_recipe"; }
  static json manifest() {
    std::ifstream in(file("manifest.json"));
    return json::parse(in);
  }
};

// timm's draws, handed out in order; a draw of another kind than the next one recorded (ewa
// drawing in another order or another number of times) fails the test.
class Replay : public ewa::data::Draws {
 public:
  Replay(json draws, std::function<torch::Tensor(const std::string&)> npy) : draws_(std::move(draws)), npy_(std::move(npy)) {}
  double uniform(double lo, double hi) override {
    const double v = next("uniform").get<double>();
    EXPECT_TRUE(lo <= v && v <= hi) << v << " outside [" << lo << ", " << hi << "]";
    return v;
  }
  int64_t randint(int64_t lo, int64_t hi) override {
    const auto v = next("randint").get<int64_t>();
    EXPECT_TRUE(lo <= v && v < hi) << v << " outside [" << lo << ", " << hi << ")";
    return v;
  }
  double beta(double) override { return next("beta").get<double>(); }
  torch::Tensor normal(at::IntArrayRef shape) override {
    auto t = npy_(next("normal").get<std::string>());
    EXPECT_EQ(t.sizes(), shape);
    return t;
  }
  bool all_used() const { return i_ == draws_.size(); }

 private:
  json next(const std::string& kind) {
    if (i_ >= draws_.size()) ewa::fail("ewa draws a " + kind + " after timm's last draw");
    const auto& d = draws_[i_++];
    if (d[0] != kind) ewa::fail("draw " + std::to_string(i_) + ": ewa draws a " + kind + ", timm drew a " + d[0].get<std::string>());
    return d[1];
  }
  json draws_;
  size_t i_ = 0;
  std::function<torch::Tensor(const std::string&)> npy_;
};

TEST_F(TimmRecipe, MixupAndCutMixGiveTimmsBatchAndTargetsOnTheSameDraws) {
  int compared = 0, cutmix = 0, mixup = 0, unmixed = 0;
  for (const auto& c : manifest()) {
    if (c["kind"] != "mix") continue;
    const std::string name = c["name"];
    ewa::data::MixSettings s;
    s.mixup_alpha = c["mixup"], s.cutmix_alpha = c["cutmix"], s.prob = c["prob"], s.switch_prob = c["switch_prob"];
    s.label_smoothing = c["smoothing"], s.num_classes = c["classes"];
    auto x = npy(name + "_in");
    const auto labels = npy(name + "_labels").to(torch::kLong);
    Replay draws(c["draws"], [](const std::string& f) { return npy(f); });
    const auto d = ewa::data::draw_mix(s, x.size(2), x.size(3), draws);
    EXPECT_TRUE(draws.all_used()) << name;
    const auto targets = ewa::data::apply_mix(x, labels, d, s);
    EXPECT_TRUE(torch::equal(x, npy(name + "_out"))) << name << " max diff " << ewa::testing::max_abs_diff(x, npy(name + "_out"));
    EXPECT_TRUE(torch::equal(targets, npy(name + "_target")))
        << name << " max diff " << ewa::testing::max_abs_diff(targets, npy(name + "_target"));
    ++compared;
    (d.lam == 1.0 ? unmixed : d.cutmix ? cutmix : mixup) += 1;
  }
  EXPECT_EQ(compared, 54);
  EXPECT_GT(cutmix, 5);  // every path taken
  EXPECT_GT(mixup, 5);
  EXPECT_GT(unmixed, 2);
}

TEST_F(TimmRecipe, RandomErasingGivesTimmsImagesOnTheSameDraws) {
  int compared = 0, erased_boxes = 0;
  for (const auto& c : manifest()) {
    if (c["kind"] != "erase") continue;
    const std::string name = c["name"];
    ewa::data::ErasingSettings s;
    s.probability = c["probability"], s.mode = c["mode"], s.max_count = c["max_count"];
    auto x = npy(name + "_in");
    Replay draws(c["draws"], [](const std::string& f) { return npy(f); });
    for (int64_t k = 0; k < x.size(0); ++k) {
      const auto d = ewa::data::draw_erasing(s, x.size(1), x.size(2), x.size(3), draws);
      ewa::data::apply_erasing(x[k], d);
      erased_boxes += static_cast<int>(d.boxes.size());
    }
    EXPECT_TRUE(draws.all_used()) << name;
    EXPECT_TRUE(torch::equal(x, npy(name + "_out"))) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 27);
  EXPECT_GT(erased_boxes, 60);
}

}  // namespace

// timm's SoftTargetCrossEntropy by hand; with one-hot targets it is the plain cross-entropy.
TEST(SoftTargets, CrossEntropyByHand) {
  const auto logits = torch::tensor({{1.0f, 2.0f, 0.5f}, {0.0f, -1.0f, 3.0f}});
  const auto targets = torch::tensor({{0.2f, 0.7f, 0.1f}, {0.5f, 0.0f, 0.5f}});
  double expected = 0;
  for (int i = 0; i < 2; ++i) {
    double z = 0;
    for (int c = 0; c < 3; ++c) z += std::exp(logits[i][c].item<double>());
    for (int c = 0; c < 3; ++c) expected -= targets[i][c].item<double>() * (logits[i][c].item<double>() - std::log(z));
  }
  EXPECT_NEAR(ewa::data::soft_target_cross_entropy(logits, targets).item<double>(), expected / 2, 1e-6);
  const auto labels = torch::tensor({1, 2}, torch::kLong);
  EXPECT_NEAR(ewa::data::soft_target_cross_entropy(logits, ewa::data::mix_targets(labels, 3, 1.0, 0.0)).item<double>(),
              torch::nn::functional::cross_entropy(logits, labels).item<double>(), 1e-6);
  // Smoothed targets (lam 1): timm's mixup_target gives what cross_entropy's label_smoothing does.
  EXPECT_NEAR(ewa::data::soft_target_cross_entropy(logits, ewa::data::mix_targets(labels, 3, 1.0, 0.1)).item<double>(),
              torch::nn::functional::cross_entropy(logits, labels, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(0.1))
                  .item<double>(),
              1e-6);
}

// Our own draws (torch's generator): Beta(a, a)'s mean and variance, CutMix's share of batches,
// and random erasing's probability and box areas, over many draws (fresh each run of the test).
TEST(RecipeDraws, DistributionsMatchTheirDefinitions) {
  ewa::data::GeneratorDraws draws(at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(time(nullptr))));
  const int n = 20000;
  for (const double a : {0.8, 1.0}) {
    double sum = 0, sq = 0;
    for (int i = 0; i < n; ++i) {
      const double v = draws.beta(a);
      sum += v, sq += v * v;
    }
    const double mean = sum / n, var = sq / n - mean * mean, expected_var = 1.0 / (4.0 * (2.0 * a + 1.0));
    EXPECT_NEAR(mean, 0.5, 0.01) << a;                     // sd of the mean ~ 0.002
    EXPECT_NEAR(var, expected_var, 0.1 * expected_var) << a;
  }
  ewa::data::MixSettings s;
  s.mixup_alpha = 0.8, s.cutmix_alpha = 1.0, s.prob = 0.5, s.switch_prob = 0.5, s.num_classes = 10;
  int mixed = 0, cut = 0;
  for (int i = 0; i < n; ++i) {
    const auto d = ewa::data::draw_mix(s, 16, 16, draws);
    mixed += d.lam != 1.0;
    cut += d.cutmix;
    if (d.cutmix) EXPECT_TRUE(d.cy >= 0 && d.cy < 16 && d.cx >= 0 && d.cx < 16);
  }
  EXPECT_NEAR(double(mixed) / n, 0.5, 0.02);
  EXPECT_NEAR(double(cut) / n, 0.25, 0.02);
  ewa::data::ErasingSettings e;
  e.probability = 0.25;
  int erased = 0;
  double area = 0;
  for (int i = 0; i < n; ++i) {
    const auto d = ewa::data::draw_erasing(e, 3, 224, 224, draws);
    erased += d.count > 0;
    for (const auto& b : d.boxes) {
      EXPECT_TRUE(b.top >= 0 && b.top + b.height <= 224 && b.left >= 0 && b.left + b.width <= 224);
      area += double(b.height * b.width) / (224.0 * 224.0);
    }
  }
  EXPECT_NEAR(double(erased) / n, 0.25, 0.02);
  // On 224 x 224 nearly every first try fits: the mean share is about (0.02 + 1/3) / 2.
  EXPECT_NEAR(area / erased, (0.02 + 1.0 / 3.0) / 2.0, 0.01);
}
