// bf16 autocast (train.precision = bf16): the guard itself, every model kind against its float32
// self (loss and gradients), and a bf16 training run that learns.
#include <gtest/gtest.h>

#include "datasets/registry.h"
#include "common/precision.h"
#include "models/point_mae.h"
#include "models/registry.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "tasks/run_task.h"
#include "tasks/classify.h"

namespace {
using nlohmann::json;
using ewa::AutocastGuard;
using ewa::testing::TempDir;

TEST(Precision, AutocastGuardRunsMatmulsInBf16AndRecastsWeightsChangedBetweenPasses) {
  torch::manual_seed(0);
  torch::nn::Linear lin(8, 4);
  auto x = torch::randn({3, 8});
  EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
  torch::Tensor first;
  {
    AutocastGuard outer(torch::kCPU, true);
    first = lin(x);
    EXPECT_EQ(first.scalar_type(), torch::kBFloat16);
    {
      AutocastGuard inner(torch::kCPU, true);  // nested: still on
      EXPECT_EQ(lin(x).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(lin(x).scalar_type(), torch::kBFloat16);  // the inner guard's end keeps the outer one
  }
  EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::allclose(first.to(torch::kFloat), lin(x), 2e-2, 2e-2));
  {
    AutocastGuard off(torch::kCPU, false);
    EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
  }
  // An optimizer step between two guarded passes: the second sees the new weights (the cast cache
  // is cleared when the outermost guard ends).
  {
    torch::NoGradGuard no_grad;
    lin->weight.mul_(-1);
    lin->bias.zero_();
  }
  auto want = lin(x);
  AutocastGuard again(torch::kCPU, true);
  auto second = lin(x).to(torch::kFloat);
  EXPECT_TRUE(torch::allclose(second, want, 3e-2, 3e-2)) << (second - want).abs().max();
}

// Loss and gradients of one batch in bf16 autocast against float32, same weights and batch.
// `min_cosine`: a routed MoE's top-1 choice is discontinuous in the gate logits, so bf16 rounding
// moves some tokens to another expert and its gradients agree less than a smooth model's.
// Returns the gradients' cosine and norm ratio; `check` = false only measures them.
template <typename LossFn>
std::pair<double, double> compare_precisions(torch::nn::Module& model, LossFn loss_of, double loss_tol,
                                             double min_cosine = 0.9, bool check = true) {
  std::vector<torch::Tensor> grads32;
  torch::manual_seed(5);
  torch::Tensor l32 = loss_of();
  l32.backward();
  for (auto& p : model.parameters()) {
    grads32.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    p.mutable_grad() = torch::Tensor();
  }
  torch::Tensor l16;
  {
    AutocastGuard autocast(torch::kCPU, true);
    torch::manual_seed(5);  // the same dropout, masks and partitions
    l16 = loss_of();
  }
  EXPECT_EQ(l16.scalar_type(), torch::kFloat);
  l16.backward();
  EXPECT_NEAR(l16.item<double>(), l32.item<double>(), loss_tol * std::abs(l32.item<double>()));
  // All gradients together point nearly the same way and have nearly the same size (bf16 keeps 8
  // bits of mantissa; a max-pool may pick another point).
  std::vector<torch::Tensor> a, b;
  size_t k = 0;
  for (auto& p : model.parameters()) {
    EXPECT_EQ(p.grad().defined(), grads32[k].defined());
    if (p.grad().defined() != grads32[k].defined()) return {0.0, 0.0};
    if (p.grad().defined()) {
      EXPECT_EQ(p.grad().scalar_type(), torch::kFloat);
      a.push_back(p.grad().reshape({-1}));
      b.push_back(grads32[k].reshape({-1}));
    }
    ++k;
  }
  auto ga = torch::cat(a), gb = torch::cat(b);
  const double cosine = (ga * gb).sum().item<double>() / (ga.norm() * gb.norm()).item<double>();
  const double ratio = ga.norm().item<double>() / gb.norm().item<double>();
  if (check) {
    EXPECT_GT(cosine, min_cosine);
    EXPECT_NEAR(ratio, 1.0, 0.1);
  }
  return {cosine, ratio};
}

ewa::Config config(json j) {
  auto r = ewa::resolve_config(j, "test");
  return ewa::parse_config(r, "test");
}

TEST(Precision, EveryModelKindMatchesItsFloat32SelfInBf16) {
  // Three initialisations each. A routed MoE's top-1 choice is discontinuous: a gate logit that
  // bf16 rounds across another expert's sends the token elsewhere, and with 6 clouds of 17
  // tokens one such flip moves the gradient far (cosine 0.71, norm ratio 1.22 at seed 3,
  // 2026-12-07), so of the routed draws two of three must agree; dense and RupMoE every one.
  int routed_agree = 0;
  for (const char* kind : {"dense", "rup", "routed"})
    for (int64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(std::string(kind) + " seed " + std::to_string(seed));
    auto cfg = config({{"model", {{"name", "point_transformer"}, {"embed_dim", 64}, {"depth", 2}, {"num_heads", 4},
                                  {"num_groups", 16}, {"group_size", 8}, {"head_hidden", 64}, {"num_classes", 5},
                                  {"in_chans", 3}, {"drop_path_rate", 0.0}}},
                       {"moe", {{"kind", kind}, {"blocks", "all"}, {"num_experts", 2}}},
                       {"data", {{"dataset", "modelnet_h5"}, {"root", "unused"}, {"num_points", 128}}},
                       {"train", {{"seed", seed}}}});
    torch::manual_seed(seed);
    auto model = ewa::models::build_model(cfg);
    model->train();
    auto x = torch::rand({6, 128, 3}) * 2 - 1;
    auto y = torch::tensor({0, 1, 2, 3, 4, 0});
    const bool routed = std::string(kind) == "routed";
    const auto [cosine, ratio] = compare_precisions(
        *model, [&] { return torch::nn::functional::cross_entropy(model->forward(x), y); }, 0.03, 0.9, !routed);
    routed_agree += routed && cosine > 0.85 && std::abs(ratio - 1.0) < 0.1;
  }
  EXPECT_GE(routed_agree, 2);
  {
    SCOPED_TRACE("vit");
    auto cfg = config({{"model", {{"name", "vit"}, {"patch_size", 7}, {"embed_dim", 64}, {"depth", 2}, {"num_heads", 4},
                                  {"img_size", 28}, {"in_chans", 1}, {"num_classes", 10}, {"drop_path_rate", 0.0}}},
                       {"moe", {{"kind", "rup"}, {"blocks", "all"}, {"num_experts", 2}}}});
    torch::manual_seed(1);
    auto model = ewa::models::build_model(cfg);
    auto x = torch::rand({6, 1, 28, 28});
    auto y = torch::tensor({0, 1, 2, 3, 4, 9});
    compare_precisions(*model, [&] { return torch::nn::functional::cross_entropy(model->forward(x), y); }, 0.03);
  }
  {
    SCOPED_TRACE("point_mae");
    auto j = json{{"model", {{"name", "point_mae"}, {"embed_dim", 64}, {"depth", 2}, {"num_heads", 4}, {"num_groups", 16},
                             {"group_size", 8}, {"drop_path_rate", 0.0}}},
                  {"pretrain", {{"decoder_depth", 1}, {"decoder_num_heads", 4}}},
                  {"data", {{"dataset", "modelnet_h5"}, {"root", "unused"}, {"num_points", 128}}}};
    auto r = ewa::resolve_config(j, "test");
    r["model"]["in_chans"] = 3;
    auto cfg = ewa::parse_config(r, "test");
    torch::manual_seed(1);
    ewa::models::PointMae model(cfg);
    auto x = torch::rand({4, 128, 3}) * 2 - 1;
    compare_precisions(*model, [&] {
      auto out = model->forward(x);
      EXPECT_EQ(out.predicted.scalar_type(), torch::kFloat);
      return out.loss;
    }, 0.05);
  }
}

TEST(Precision, Bf16TrainingLearnsAsWellAsFloat32AndSaysSoInTheStartUpTable) {
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 400, 100, true);
  auto make = [&](const std::string& precision) {
    return config({{"name", precision},
                   {"model", {{"patch_size", 7}, {"embed_dim", 32}, {"depth", 2}, {"num_heads", 2}, {"drop_path_rate", 0.0}}},
                   {"moe", {{"kind", "rup"}, {"blocks", "all"}, {"num_experts", 2}}},
                   {"data", {{"root", data.path()}, {"batch_size", 32}}},
                   {"optim", {{"lr", 5e-3}, {"warmup_epochs", 0.5}}},
                   {"train", {{"epochs", 4}, {"log_every", 5}, {"runs_dir", runs.path()}, {"device", "cpu"},
                              {"precision", precision}}}});
  };
  std::string lines;
  auto bf16 = ewa::tasks::run_task(make("bf16"), ewa::datasets::load_task, {}, [&](const std::string& l) { lines += l + "\n"; });
  auto fp32 = ewa::tasks::run_task(make("fp32"), ewa::datasets::load_task, {}, [](const std::string&) {});
  EXPECT_NE(lines.find("bf16 autocast"), std::string::npos) << lines;
  EXPECT_GT(bf16.test.json["oa"].get<double>(), 0.5) << lines;  // chance is 0.1
  EXPECT_GT(bf16.test.json["oa"].get<double>(), fp32.test.json["oa"].get<double>() - 0.1) << lines;
  // The checkpoint holds float32 weights.
  auto ckpt = ewa::train::read_checkpoint(runs / "bf16/last.pt");
  for (const auto& item : ckpt.model)
    if (item.value().is_floating_point()) {
      EXPECT_EQ(item.value().scalar_type(), torch::kFloat) << item.key();
    }
}

}  // namespace
