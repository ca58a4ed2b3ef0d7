// Where the random numbers of an augmentation's draw come from: a torch generator in training;
// in the tests, the numbers timm's own code drew, replayed in its order (tests/fixtures), so that
// one draw function is checked against the reference on the very same draws.
#pragma once
#include <optional>

#include <torch/torch.h>

namespace ewa::data {

class Draws {
 public:
  virtual ~Draws() = default;
  virtual double uniform(double lo, double hi) = 0;               // in [lo, hi)
  virtual int64_t randint(int64_t lo, int64_t hi_exclusive) = 0;  // in [lo, hi)
  virtual double beta(double alpha) = 0;                          // Beta(alpha, alpha)
  virtual torch::Tensor normal(at::IntArrayRef shape) = 0;        // float, standard normal
};

// Draws from `gen` (torch's default CPU generator when none).
class GeneratorDraws : public Draws {
 public:
  explicit GeneratorDraws(std::optional<at::Generator> gen = std::nullopt) : gen_(std::move(gen)) {}
  double uniform(double lo, double hi) override {
    return torch::empty({1}, torch::kDouble).uniform_(lo, hi, gen_).item<double>();
  }
  int64_t randint(int64_t lo, int64_t hi_exclusive) override {
    return torch::randint(lo, hi_exclusive, {1}, gen_, torch::kLong).item<int64_t>();
  }
  double beta(double alpha) override {  // two gamma draws: g1 / (g1 + g2)
    const auto g = at::_standard_gamma(torch::full({2}, alpha, torch::kDouble), gen_);
    const double a = g[0].item<double>(), b = g[1].item<double>();
    return a / (a + b);
  }
  torch::Tensor normal(at::IntArrayRef shape) override { return torch::empty(shape, torch::kFloat).normal_(0.0, 1.0, gen_); }

 private:
  std::optional<at::Generator> gen_;
};

}  // namespace ewa::data
