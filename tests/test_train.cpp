// End-to-end training on a small IDX dataset: learning, run directory, resume, bad run dirs.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "datasets/registry.h"
#include "common/error.h"
#include "models/registry.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/eval_mode.h"
#include "train/fused_adamw.h"
#include "train/loop.h"
#include "eval/metrics.h"
#include "train/schedule.h"
#include "tasks/run_task.h"
#include "tasks/classify.h"

namespace {
using nlohmann::json;
using ewa::testing::TempDir;

ewa::Config tiny_cfg(const std::string& data_root, const std::string& runs, const std::string& kind, int64_t epochs) {
  json j = {{"name", "t"},
            {"model", {{"patch_size", 7}, {"embed_dim", 32}, {"depth", 2}, {"num_heads", 2}, {"drop_path_rate", 0.0}}},
            {"moe", {{"kind", kind}, {"blocks", "all"}, {"num_experts", 2}}},
            {"data", {{"root", data_root}, {"batch_size", 32}, {"val_fraction", 0.1}}},
            {"optim", {{"lr", 5e-3}, {"warmup_epochs", 0.5}}},
            {"train", {{"epochs", epochs}, {"log_every", 5}, {"runs_dir", runs}, {"device", "cpu"}}}};
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

TEST(Metrics, OverallAndMeanClassAccuracyByHand) {
  auto conf = torch::zeros({3, 3}, torch::kLong);
  // class 0: 3 of 4 right; class 1: 1 of 1; class 2: no samples.
  ewa::eval::accumulate_confusion(conf, torch::tensor({0, 0, 0, 0, 1}), torch::tensor({0, 0, 0, 2, 1}));
  auto m = ewa::eval::metrics_from_confusion(conf);
  EXPECT_DOUBLE_EQ(m.overall_accuracy, 4.0 / 5.0);
  EXPECT_DOUBLE_EQ(m.mean_class_accuracy, (0.75 + 1.0) / 2.0);
  EXPECT_EQ(conf[0][2].item<int64_t>(), 1);
}

TEST(Schedule, WarmupThenCosine) {
  ewa::OptimConfig o;
  o.lr = 1.0;
  o.min_lr = 0.0;
  o.warmup_epochs = 1;
  EXPECT_DOUBLE_EQ(ewa::train::lr_at(o, 0, 10, 110, 11), 0.1);
  EXPECT_DOUBLE_EQ(ewa::train::lr_at(o, 9, 10, 110, 11), 1.0);
  EXPECT_DOUBLE_EQ(ewa::train::lr_at(o, 10, 10, 110, 11), 1.0);
  EXPECT_NEAR(ewa::train::lr_at(o, 60, 10, 110, 11), 0.5, 1e-12);
  EXPECT_NEAR(ewa::train::lr_at(o, 110, 10, 110, 11), 0.0, 1e-12);
}

// The fused AdamW step against LibTorch's AdamW::step() on the same parameters and gradients:
// several steps, two groups (one without weight decay), a parameter without a gradient, amsgrad
// on and off, and the optimizer state both leave behind.
TEST(Optimizer, FusedAdamWStepMatchesLibTorchAdamW) {
  for (bool amsgrad : {false, true}) {
    SCOPED_TRACE(amsgrad ? "amsgrad" : "adamw");
    torch::manual_seed(4);
    std::vector<torch::Tensor> a, b;
    for (auto shape : std::vector<std::vector<int64_t>>{{7, 5}, {5}, {3, 2, 4}, {6}}) {
      auto t = torch::randn(shape);
      a.push_back(t.clone().requires_grad_(true));
      b.push_back(t.clone().requires_grad_(true));
    }
    auto make = [&](std::vector<torch::Tensor>& p) {
      auto base = torch::optim::AdamWOptions(3e-2).betas({0.9, 0.95}).weight_decay(0.05).amsgrad(amsgrad);
      std::vector<torch::optim::OptimizerParamGroup> groups;
      groups.emplace_back(std::vector<torch::Tensor>{p[0], p[2]}, std::make_unique<torch::optim::AdamWOptions>(base));
      groups.emplace_back(std::vector<torch::Tensor>{p[1], p[3]},
                          std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(base).weight_decay(0)));
      return torch::optim::AdamW(std::move(groups), base);
    };
    auto opt_a = make(a), opt_b = make(b);
    for (int step = 0; step < 6; ++step) {
      for (size_t i = 0; i < a.size(); ++i) {
        if (i == 3 && step % 2 == 0) {  // no gradient every other step: skipped by both
          a[i].mutable_grad() = torch::Tensor();
          b[i].mutable_grad() = torch::Tensor();
          continue;
        }
        auto g = torch::randn(a[i].sizes());
        a[i].mutable_grad() = g.clone();
        b[i].mutable_grad() = g.clone();
      }
      ewa::train::fused_adamw_step(opt_a);
      opt_b.step();
      for (size_t i = 0; i < a.size(); ++i)
        EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << "step " << step << " param " << i << " "
                                                            << (a[i] - b[i]).abs().max();
    }
    for (size_t i = 0; i < a.size(); ++i) {
      auto& sa = static_cast<torch::optim::AdamWParamState&>(*opt_a.state().at(a[i].unsafeGetTensorImpl()));
      auto& sb = static_cast<torch::optim::AdamWParamState&>(*opt_b.state().at(b[i].unsafeGetTensorImpl()));
      EXPECT_EQ(sa.step(), sb.step()) << i;
      EXPECT_EQ(sa.step(), i == 3 ? 3 : 6) << i;
      EXPECT_TRUE(torch::allclose(sa.exp_avg(), sb.exp_avg(), 1e-5, 1e-7)) << i;
      EXPECT_TRUE(torch::allclose(sa.exp_avg_sq(), sb.exp_avg_sq(), 1e-5, 1e-8)) << i;
    }
  }
}

TEST(Optimizer, ClipGradNormOnTheDeviceMatchesLibTorch) {
  for (double max_norm : {0.5, 3.0, 1e6}) {  // clipped hard, clipped a little, not clipped
    std::vector<torch::Tensor> a, b;
    for (auto shape : {std::vector<int64_t>{7, 5}, {11}, {2, 3, 4}, {1}}) {
      auto g = torch::randn(shape);
      a.push_back(torch::zeros(shape).requires_grad_(true));
      b.push_back(torch::zeros(shape).requires_grad_(true));
      a.back().mutable_grad() = g.clone();
      b.back().mutable_grad() = g.clone();
    }
    a.push_back(torch::zeros({3}).requires_grad_(true));  // no gradient: left out of the norm
    b.push_back(torch::zeros({3}).requires_grad_(true));
    // The oracle: the norm of every gradient entry at once, by hand.
    double sq = 0;
    for (size_t i = 0; i + 1 < a.size(); ++i) sq += a[i].grad().to(torch::kDouble).pow(2).sum().item<double>();
    const auto total = ewa::train::clip_grad_norm(a, max_norm);
    const double libtorch_total = torch::nn::utils::clip_grad_norm_(b, max_norm);
    EXPECT_NEAR(total.item<double>(), std::sqrt(sq), 1e-5 * std::sqrt(sq));
    EXPECT_NEAR(total.item<double>(), libtorch_total, 1e-5 * libtorch_total);
    double clipped_sq = 0;
    for (size_t i = 0; i + 1 < a.size(); ++i) {
      EXPECT_TRUE(torch::allclose(a[i].grad(), b[i].grad(), 1e-6, 1e-7)) << "max_norm " << max_norm << " tensor " << i;
      clipped_sq += a[i].grad().to(torch::kDouble).pow(2).sum().item<double>();
    }
    EXPECT_NEAR(std::sqrt(clipped_sq), std::min(max_norm, std::sqrt(sq)), 1e-4 * std::sqrt(sq)) << max_norm;
    EXPECT_FALSE(a.back().grad().defined());
  }
  std::vector<torch::Tensor> none = {torch::zeros({2}).requires_grad_(true)};
  EXPECT_FALSE(ewa::train::clip_grad_norm(none, 1.0).defined());
}

TEST(Train, LearnsAndWritesTheRunDirectory) {
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 800, 100, true);
  auto cfg = tiny_cfg(data.path(), runs.path(), "rup", 5);
  std::vector<std::string> lines;
  auto result = ewa::tasks::run_task(cfg, ewa::datasets::load_task, {}, [&](const std::string& l) { lines.push_back(l); });
  EXPECT_GT(result.test.json["oa"].get<double>(), 0.9);  // chance is 0.1
  const std::string dir = runs / "t";
  for (const char* f : {"config.json", "log.jsonl", "metrics.json", "last.pt", "best.pt"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + f)) << f;
  auto metrics = json::parse(std::ifstream(dir + "/metrics.json"));
  EXPECT_DOUBLE_EQ(metrics["test"]["oa"].get<double>(), result.test.json["oa"].get<double>());
  EXPECT_EQ(metrics["test"]["confusion"].size(), 10u);
  auto resolved = json::parse(std::ifstream(dir + "/config.json"));
  EXPECT_EQ(resolved["model"]["num_classes"], 10);
  EXPECT_EQ(resolved["model"]["img_size"], 28);
  int epochs = 0;
  std::ifstream log(dir + "/log.jsonl");
  for (std::string line; std::getline(log, line);) epochs += json::parse(line)["type"] == "epoch";
  EXPECT_EQ(epochs, 5);
  bool progress = false;
  for (const auto& l : lines) progress = progress || (l.find("ms/step") != std::string::npos && l.find("ETA") != std::string::npos);
  EXPECT_TRUE(progress);

  // Evaluating last.pt gives the reported final accuracy.
  auto ckpt = ewa::train::read_checkpoint(dir + "/last.pt");
  auto c2 = ewa::parse_config(ckpt.config, "ckpt");
  auto model = ewa::models::build_model(c2);
  ewa::train::load_model_state(*model, ckpt, "last.pt");
  auto task = ewa::datasets::load_task(c2);
  auto m = ewa::eval::evaluate_protocol(*model, *task.test, task.num_classes, torch::kCPU, {}).metrics;
  EXPECT_DOUBLE_EQ(m.overall_accuracy, result.test.json["oa"].get<double>());

  // A second run into the same directory without --resume must not overwrite it.
  try {
    ewa::tasks::run_task(cfg, ewa::datasets::load_task, {}, [](const std::string&) {});
    FAIL() << "expected an error";
  } catch (const ewa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("already holds a checkpoint"), std::string::npos) << e.what();
  }
}

TEST(Train, ResumeReproducesAnUninterruptedRun) {
  TempDir data, runs_a, runs_b;
  ewa::testing::write_pattern_idx(data.path(), 160, 40, false);
  // A flat learning rate, so a 1-epoch run is exactly the first half of the 2-epoch run.
  auto flat = [](const ewa::Config& c) { return c.with({{"optim.warmup_epochs", 0.0}, {"optim.min_lr", c.optim.lr}}); };
  auto full = flat(tiny_cfg(data.path(), runs_a.path(), "rup", 2));
  ewa::tasks::run_task(full, ewa::datasets::load_task, {}, [](const std::string&) {});
  auto half = flat(tiny_cfg(data.path(), runs_b.path(), "rup", 2));
  half = half.with({{"train.epochs", 1}});
  ewa::tasks::run_task(half, ewa::datasets::load_task, {}, [](const std::string&) {});
  auto rest = flat(tiny_cfg(data.path(), runs_b.path(), "rup", 2));
  ewa::tasks::run_task(rest, ewa::datasets::load_task, {runs_b / "t/last.pt"}, [](const std::string&) {});
  auto a = ewa::train::read_checkpoint(runs_a / "t/last.pt");
  auto b = ewa::train::read_checkpoint(runs_b / "t/last.pt");
  EXPECT_EQ(a.step, b.step);
  for (const auto& item : a.model)
    EXPECT_TRUE(torch::allclose(item.value(), *b.model.find(item.key()), 1e-5, 1e-6)) << item.key();
}

TEST(Train, ResumeOnTheGpuReproducesAnUninterruptedRun) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (scripts/gpu-check.sh runs this where one is)";
  TempDir data, runs_a, runs_a2, runs_b;
  ewa::testing::write_pattern_idx(data.path(), 160, 40, false);
  auto on_gpu = [](const ewa::Config& c) {
    return c.with({{"optim.warmup_epochs", 0.0}, {"optim.min_lr", c.optim.lr}, {"train.device", "cuda"}});
  };
  auto quiet = [](const std::string&) {};
  ewa::tasks::run_task(on_gpu(tiny_cfg(data.path(), runs_a.path(), "rup", 2)), ewa::datasets::load_task, {}, quiet);
  ewa::tasks::run_task(on_gpu(tiny_cfg(data.path(), runs_a2.path(), "rup", 2)), ewa::datasets::load_task, {}, quiet);
  auto half = on_gpu(tiny_cfg(data.path(), runs_b.path(), "rup", 2));
  half = half.with({{"train.epochs", 1}});
  ewa::tasks::run_task(half, ewa::datasets::load_task, {}, quiet);
  ewa::tasks::run_task(on_gpu(tiny_cfg(data.path(), runs_b.path(), "rup", 2)), ewa::datasets::load_task, {runs_b / "t/last.pt"}, quiet);
  auto a = ewa::train::read_checkpoint(runs_a / "t/last.pt");
  auto a2 = ewa::train::read_checkpoint(runs_a2 / "t/last.pt");
  auto b = ewa::train::read_checkpoint(runs_b / "t/last.pt");
  ASSERT_EQ(a.step, b.step);
  // The oracle: two uninterrupted runs differ only by the GPU's own nondeterminism (atomics);
  // a resumed run must differ by no more. A lost CUDA generator state (other RUP partitions,
  // other dropout) would differ by orders of magnitude more.
  double same = 0, resumed = 0;
  for (const auto& item : a.model) {
    same = std::max(same, (item.value() - *a2.model.find(item.key())).abs().max().item<double>());
    resumed = std::max(resumed, (item.value() - *b.model.find(item.key())).abs().max().item<double>());
  }
  EXPECT_LE(resumed, 10 * same + 1e-5) << "uninterrupted runs differ by " << same << ", the resumed one by " << resumed;
}

// A task whose loss turns NaN at one step, to see the loop stop there although it reads the
// losses back only every log_every steps.
struct NanAtStepTask : ewa::train::Task {
  explicit NanAtStepTask(int64_t nan_step) : nan_step(nan_step) {}
  torch::nn::Linear lin{784, 10};
  int64_t nan_step, calls = 0;
  torch::nn::Module& model() override { return *lin; }
  std::string describe_model() override { return "linear"; }
  ewa::train::StepOutput training_step(const torch::Tensor& x, const torch::Tensor& y) override {
    auto logits = lin(x.flatten(1));
    auto loss = torch::nn::functional::cross_entropy(logits, y);
    if (++calls == nan_step) loss = loss * std::numeric_limits<float>::quiet_NaN();
    return {loss, logits.argmax(1).eq(y).sum(), x.size(0)};
  }
  ewa::train::EvalResult evaluate(ewa::data::BatchSource&) override { return {json::object(), json::object(), "-", 0}; }
  std::string eval_label() const override { return "none"; }
};

TEST(Train, ADivergedStepStopsTheRunAtThatStepBeforeAnyCheckpoint) {
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 320, 20, false);
  auto cfg = tiny_cfg(data.path(), runs.path(), "dense", 1);  // 9 steps of 32 (val takes 10%)
  cfg = cfg.with({{"train.log_every", 100}});  // the losses are read back only at the epoch's end
  NanAtStepTask task(3);
  auto task_data = ewa::datasets::load_task(cfg);
  const std::string message = ewa::testing::error_of([&] {
    ewa::train::run_training(cfg, task, task_data, {}, [](const std::string&) {}, torch::kCPU);
  });
  EXPECT_NE(message.find("training diverged: loss is "), std::string::npos) << message;
  EXPECT_NE(message.find("nan at step 3"), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(runs / "t/last.pt"));
  // With a periodic checkpoint after step 2 the loop reads steps 1-2 (finite) and saves; step 3
  // is caught before the next save.
  TempDir runs2;
  cfg = cfg.with({{"train.runs_dir", runs2.path()}, {"train.checkpoint_every", 2}});
  NanAtStepTask again(3);
  const std::string second = ewa::testing::error_of([&] {
    ewa::train::run_training(cfg, again, task_data, {}, [](const std::string&) {}, torch::kCPU);
  });
  EXPECT_NE(second.find("at step 3"), std::string::npos) << second;
  EXPECT_EQ(ewa::train::read_checkpoint(runs2 / "t/last.pt").step, 2);
}

// A task whose loss at its k-th step is k (the gradient zero), to check what the progress lines
// report against hand-computed means.
struct CountingLossTask : ewa::train::Task {
  torch::nn::Linear lin{784, 10};
  int64_t calls = 0;
  torch::nn::Module& model() override { return *lin; }
  std::string describe_model() override { return "linear"; }
  ewa::train::StepOutput training_step(const torch::Tensor& x, const torch::Tensor& y) override {
    auto loss = lin(x.flatten(1)).sum() * 0.0 + double(++calls);
    return {loss, torch::Tensor(), x.size(0)};
  }
  ewa::train::EvalResult evaluate(ewa::data::BatchSource&) override { return {json::object(), json::object(), "-", 0}; }
  std::string eval_label() const override { return "none"; }
};

// Each progress record's loss is the mean over the steps since the previous one, also when a
// periodic checkpoint reads losses back between them (the progress hook keeps its own window):
// 9 steps, a line every 4 and with the epoch's last, checkpoints after steps 3 and 6.
TEST(Train, ProgressRecordsAverageTheirOwnWindowOfSteps) {
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 320, 20, false);
  auto cfg = tiny_cfg(data.path(), runs.path(), "dense", 1).with({{"train.log_every", 4}, {"train.checkpoint_every", 3}});
  CountingLossTask task;
  auto task_data = ewa::datasets::load_task(cfg);
  ewa::train::run_training(cfg, task, task_data, {}, [](const std::string&) {}, torch::kCPU);
  std::ifstream log(runs / "t/log.jsonl");
  std::vector<std::pair<int64_t, double>> records;
  for (std::string line; std::getline(log, line);) {
    const auto r = json::parse(line);
    if (r["type"] == "step") records.emplace_back(r["step"].get<int64_t>(), r["loss"].get<double>());
    if (r["type"] == "epoch") EXPECT_DOUBLE_EQ(r["train_loss"].get<double>(), 5.0);  // (1 + ... + 9) / 9, equal batches
  }
  const std::vector<std::pair<int64_t, double>> expected = {{4, 2.5}, {8, 6.5}, {9, 9.0}};
  EXPECT_EQ(records, expected);
  EXPECT_EQ(ewa::train::read_checkpoint(runs / "t/last.pt").step, 9);
}

TEST(Train, AppliesTheEwaStepAfterEveryOptimizerStep) {
  // Share rate (N-1)/N sets every expert to the mean after each step, so the experts in the final
  // checkpoint are identical; without EWA they have drifted apart (each trained on other tokens).
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 96, 20, false);
  auto expert_spread = [&](bool ewa_on, const std::string& name) {
    // N = 2: share rate (N-1)/N
    auto cfg = tiny_cfg(data.path(), runs.path(), "rup", 1).with({{"name", name}, {"ewa.enabled", ewa_on}, {"ewa.share_rate", 0.5}});
    ewa::tasks::run_task(cfg, ewa::datasets::load_task, {}, [](const std::string&) {});
    auto ckpt = ewa::train::read_checkpoint(runs / (name + "/last.pt"));
    EXPECT_GT(ckpt.step, 1);
    double spread = 0;
    int64_t experts = 0;
    for (const auto& item : ckpt.model) {
      const auto& key = item.key();
      if (key.find(".mlp.w") == std::string::npos && key.find(".mlp.b") == std::string::npos) continue;
      ++experts;
      spread = std::max(spread, (item.value()[0] - item.value()[1]).abs().max().item<double>());
    }
    EXPECT_EQ(experts, 8);  // 2 blocks x w1, b1, w2, b2
    return spread;
  };
  EXPECT_EQ(expert_spread(true, "ewa"), 0.0);
  EXPECT_GT(expert_spread(false, "no_ewa"), 1e-4);
}

TEST(Train, RoutedMoEWithEwaOnWarns) {
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 64, 10, false);
  for (bool ewa_on : {true, false}) {
    auto cfg = tiny_cfg(data.path(), runs.path(), "routed", 1).with({{"name", ewa_on ? "on" : "off"}, {"ewa.enabled", ewa_on}});
    std::string out;
    ewa::tasks::run_task(cfg, ewa::datasets::load_task, {}, [&](const std::string& l) { out += l + "\n"; });
    EXPECT_EQ(out.find("warning: EWA is on (ewa.enabled defaults to true) with moe.kind = routed") != std::string::npos, ewa_on)
        << out;
  }
}

TEST(Train, UnwritableRunDirectoryIsAnError) {
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 40, 10, false);
  ewa::testing::write_file(runs / "file", "not a directory");
  auto cfg = tiny_cfg(data.path(), runs / "file", "dense", 1);
  try {
    ewa::tasks::run_task(cfg, ewa::datasets::load_task, {}, [](const std::string&) {});
    FAIL() << "expected an error";
  } catch (const ewa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("run directory " + (runs / "file") + "/t"), std::string::npos) << e.what();
  }
}

TEST(Train, ConfigSizesMustMatchTheDataset) {
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 40, 10, false);
  auto cfg = tiny_cfg(data.path(), runs.path(), "dense", 1);
  cfg = cfg.with({{"model.num_classes", 7}});
  try {
    ewa::tasks::run_task(cfg, ewa::datasets::load_task, {}, [](const std::string&) {});
    FAIL() << "expected an error";
  } catch (const ewa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.num_classes: config says 7 but dataset"), std::string::npos) << e.what();
  }
}

}  // namespace

namespace {

// A training split that keeps a copy of every batch the loop draws for training.
class RecordingSource : public ewa::data::BatchSource {
 public:
  RecordingSource(std::unique_ptr<ewa::data::BatchSource> inner, std::vector<torch::Tensor>* seen)
      : inner_(std::move(inner)), seen_(seen) {}
  int64_t size() const override { return inner_->size(); }
  int64_t num_batches() const override { return inner_->num_batches(); }
  int64_t global_batch_size(int64_t i) const override { return inner_->global_batch_size(i); }
  void start_epoch(int64_t epoch) override { inner_->start_epoch(epoch); }
  void place(torch::Device device, int64_t rank, int64_t world) override { inner_->place(device, rank, world); }
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, ewa::data::View view) const override {
    auto b = inner_->batch(i, view);
    if (view == ewa::data::View::Training) {
      seen_->push_back(b.first.clone());
      seen_->push_back(b.second.clone());
    }
    return b;
  }

 private:
  std::unique_ptr<ewa::data::BatchSource> inner_;
  std::vector<torch::Tensor>* seen_;
};

}  // namespace

TEST(Train, ArmsOfOneSeedSeeTheSameBatchesAndStartFromTheSameSharedWeights) {
  // The pairing of `ewa study`: a dense run and RupMoE + EWA runs (2 and 4 experts) of one seed
  // draw identical batches (order, random crops, flips) and start from identical values of every
  // parameter they share; another seed draws other batches (the check can fail).
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 100, 20, false);
  auto arm = [&](const std::string& name, const std::string& kind, int64_t experts, int64_t seed) {
    return tiny_cfg(data.path(), runs.path(), kind, 1)
        .with({{"name", name}, {"moe.num_experts", experts}, {"train.seed", seed}, {"model.drop_path_rate", 0.1},
               {"data.hflip", true}, {"train.tensorboard", false}});
  };
  auto batches_of = [&](const ewa::Config& cfg) {
    std::vector<torch::Tensor> seen;
    ewa::data::TaskLoader loader = [&](const ewa::Config& c, ewa::data::Use use) {
      auto t = ewa::datasets::load_task(c, use);
      t.train = std::make_unique<RecordingSource>(std::move(t.train), &seen);
      return t;
    };
    ewa::tasks::run_task(cfg, loader, {}, [](const std::string&) {});
    return seen;
  };
  const auto dense = batches_of(arm("dense", "dense", 2, 3));
  ASSERT_GE(dense.size(), 4u);  // at least two steps
  for (const auto& [name, experts] : std::vector<std::pair<std::string, int64_t>>{{"ewa2", 2}, {"ewa4", 4}}) {
    const auto moe = batches_of(arm(name, "rup", experts, 3));
    ASSERT_EQ(moe.size(), dense.size());
    for (size_t i = 0; i < dense.size(); ++i) EXPECT_TRUE(torch::equal(dense[i], moe[i])) << name << " batch tensor " << i;
  }
  const auto other_seed = batches_of(arm("dense_seed4", "dense", 2, 4));
  EXPECT_FALSE(torch::equal(dense[0], other_seed[0]));

  // Initial values: every parameter name the dense and the MoE model share holds the same tensor.
  auto dense_model = ewa::tasks::initial_model(arm("d", "dense", 2, 3).with({{"model.num_classes", 10}, {"model.in_chans", 1}, {"model.img_size", 28}}));
  auto moe_model = ewa::tasks::initial_model(arm("m", "rup", 4, 3).with({{"model.num_classes", 10}, {"model.in_chans", 1}, {"model.img_size", 28}}));
  auto moe_params = moe_model->named_parameters();
  int64_t shared = 0, dense_only = 0;
  for (const auto& p : dense_model->named_parameters()) {
    const auto* q = moe_params.find(p.key());
    if (!q) {
      ++dense_only;
      EXPECT_NE(p.key().find(".mlp."), std::string::npos) << p.key() << " is missing from the MoE model";
      continue;
    }
    ++shared;
    EXPECT_TRUE(torch::equal(p.value(), *q)) << p.key();
  }
  EXPECT_GT(shared, 10);
  EXPECT_EQ(dense_only, 8);  // fc1/fc2 weight and bias of the 2 blocks
}

namespace {

// The training split of a folder dataset, forwarded: either building ahead as the folder source
// does (its own generator; the thread of every training batch recorded), or not at all, so that
// the loop builds each batch in the step with the base class's training_batch (torch's default
// generator seeded by the step, the path every other source takes).
class AheadOrNot : public ewa::data::BatchSource {
 public:
  AheadOrNot(std::unique_ptr<ewa::data::BatchSource> inner, bool ahead, std::vector<std::thread::id>* threads)
      : inner_(std::move(inner)), ahead_(ahead), threads_(threads) {}
  int64_t size() const override { return inner_->size(); }
  int64_t num_batches() const override { return inner_->num_batches(); }
  int64_t global_batch_size(int64_t i) const override { return inner_->global_batch_size(i); }
  void start_epoch(int64_t epoch) override { inner_->start_epoch(epoch); }
  void place(torch::Device device, int64_t rank, int64_t world) override { inner_->place(device, rank, world); }
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, ewa::data::View view) const override { return inner_->batch(i, view); }
  std::pair<torch::Tensor, torch::Tensor> training_batch(int64_t i, uint64_t seed) const override {
    if (!ahead_) return BatchSource::training_batch(i, seed);
    threads_->push_back(std::this_thread::get_id());  // one builder at a time: the loop waits for it
    return inner_->training_batch(i, seed);
  }
  bool builds_ahead() const override { return ahead_ && inner_->builds_ahead(); }

 private:
  std::unique_ptr<ewa::data::BatchSource> inner_;
  bool ahead_;
  std::vector<std::thread::id>* threads_;
};

// A linear model on the images that keeps every training batch it is given.
struct RecordingTask : ewa::train::Task {
  torch::nn::Linear lin{3 * 8 * 8, 2};
  std::vector<torch::Tensor> seen;
  torch::nn::Module& model() override { return *lin; }
  std::string describe_model() override { return "linear"; }
  ewa::train::StepOutput training_step(const torch::Tensor& x, const torch::Tensor& y) override {
    seen.push_back(x.clone());
    seen.push_back(y.clone());
    auto logits = lin(x.flatten(1));
    return {torch::nn::functional::cross_entropy(logits, y), logits.argmax(1).eq(y).sum(), x.size(0)};
  }
  ewa::train::EvalResult evaluate(ewa::data::BatchSource&) override { return {json::object(), json::object(), "-", 0}; }
  std::string eval_label() const override { return "none"; }
};

}  // namespace

// A folder dataset's training batches are built on another thread while the step before runs,
// and are the very batches the step would have built itself (random resized crops and flips
// drawn from the batch's own generator = torch's default generator seeded alike), so a run is the
// same with and without building ahead; the first batch of every epoch is built in the step.
TEST(Train, BatchesBuiltAheadAreTheOnesTheStepWouldBuild) {
  TempDir d;
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 10; ++i) {
      torch::manual_seed(static_cast<uint64_t>(100 * c + i));
      const auto image = torch::randint(0, 256, {12 + i, 15 - i / 2, 3}, torch::kUInt8);
      for (const char* split : {"train", "val"})
        ewa::testing::write_bmp(d.path() + "/imgs/" + split + "/c" + std::to_string(c) + "/" + std::to_string(i) + ".bmp", image);
    }
  const json j = {{"name", "ahead"},
                  {"data", {{"dataset", "image_folder"}, {"root", d.path() + "/imgs"}, {"image_size", 8}, {"batch_size", 4},
                            {"cache_dir", d.path() + "/cache"}, {"hflip", true}, {"random_crop_padding", 1}}},
                  {"train", {{"epochs", 2}, {"log_every", 100}, {"runs_dir", d.path() + "/runs"}, {"device", "cpu"}}}};
  const auto cfg = ewa::parse_config(ewa::resolve_config(j, "test"), "test");
  auto run = [&](bool ahead, const std::string& name, std::vector<std::thread::id>* threads) {
    auto data = ewa::datasets::load_task(cfg);
    data.train = std::make_unique<AheadOrNot>(std::move(data.train), ahead, threads);
    RecordingTask task;
    torch::manual_seed(0);
    task.lin = torch::nn::Linear(3 * 8 * 8, 2);
    ewa::train::run_training(cfg.with({{"name", name}}), task, data, {}, [](const std::string&) {}, torch::kCPU);
    return task.seen;
  };
  std::vector<std::thread::id> threads;
  const auto ahead = run(true, "ahead", &threads);
  const auto in_step = run(false, "in_step", nullptr);
  ASSERT_EQ(ahead.size(), 2u * 2 * 5);  // 2 epochs of 5 steps, images and labels
  ASSERT_EQ(in_step.size(), ahead.size());
  for (size_t i = 0; i < ahead.size(); ++i) EXPECT_TRUE(torch::equal(ahead[i], in_step[i])) << "batch tensor " << i;
  EXPECT_FALSE(torch::equal(ahead[0], ahead[2]));  // the batches differ (the check can fail)
  ASSERT_EQ(threads.size(), 10u);
  const auto main_thread = std::this_thread::get_id();
  for (size_t k = 0; k < threads.size(); ++k)
    EXPECT_EQ(threads[k] == main_thread, k % 5 == 0) << "batch " << k % 5 << " of epoch " << k / 5 + 1;
  // The log says how long the steps waited for their batches.
  std::ifstream log(d.path() + "/runs/ahead/log.jsonl");
  int64_t waits = 0;
  for (std::string line; std::getline(log, line);) {
    const auto r = json::parse(line);
    if (r["type"] == "step") waits += r.contains("data_wait_ms_per_step") && r["data_wait_ms_per_step"].get<double>() >= 0;
  }
  EXPECT_EQ(waits, 2);  // a progress record with each epoch's last step
}

// DeiT's batch recipe on an image dataset: random erasing changes training batches only (the
// test split's batches stay as stored), Mixup / CutMix train on soft targets, so the epoch
// records carry no training accuracy, and the run still learns the patterns.
TEST(Train, MixupCutmixAndErasingTrainOnSoftTargets) {
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 800, 100, true);
  auto cfg = tiny_cfg(data.path(), runs.path(), "rup", 5).with(
      {{"data.mixup", 0.8}, {"data.cutmix", 1.0}, {"data.reprob", 0.5}, {"data.random_crop_padding", 0}});
  auto task_data = ewa::datasets::load_task(cfg);
  auto plain = ewa::datasets::load_task(cfg.with({{"data.reprob", 0.0}}));
  task_data.train->start_epoch(0);
  plain.train->start_epoch(0);
  const auto erased = task_data.train->training_batch(0, 7).first, clean = plain.train->training_batch(0, 7).first;
  EXPECT_FALSE(torch::equal(erased, clean));
  const auto changed = (erased != clean).flatten(1).any(1).sum().item<int64_t>();  // about half the images
  EXPECT_GT(changed, 4);
  EXPECT_LT(changed, 28);
  EXPECT_TRUE(torch::equal(task_data.test->batch(0, ewa::data::View::Plain).first, plain.test->batch(0, ewa::data::View::Plain).first));
  std::string printed;
  const auto r = ewa::tasks::run_task(cfg, ewa::datasets::load_task, {}, [&](const std::string& l) { printed += l + "\n"; });
  EXPECT_NE(printed.find("; Mixup 0.8 / CutMix 1 (prob 1, switch 0.5, soft targets); random erasing 0.5 (pixel)\n"),
            std::string::npos) << printed;
  std::ifstream log(runs / "t/log.jsonl");
  int epochs = 0;
  for (std::string line; std::getline(log, line);) {
    const auto j = json::parse(line);
    if (j["type"] != "epoch") continue;
    ++epochs;
    EXPECT_FALSE(j.contains("train_acc")) << line;
    EXPECT_TRUE(std::isfinite(j["train_loss"].get<double>())) << line;
  }
  EXPECT_EQ(epochs, 5);
  EXPECT_GT(r.test.json["oa"].get<double>(), 0.5) << r.test.json.dump();  // 10 patterns: chance is 0.1
}

TEST(Train, ModelEmaIsTimmsAverageAndWhatTheRunEvaluatesAndResumes) {
  // One step per epoch: after step 1 the EMA is d W0 + (1 - d) W1 (W0 the initial weights, W1
  // the raw weights after the step, kept as model_train); after a resumed second step it is
  // d EMA1 + (1 - d) W2. The figure metrics.json reports is last.pt's "model" evaluated.
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 32, 40, false);
  const double d = 0.75;
  auto cfg = [&](int64_t epochs) {
    return tiny_cfg(data.path(), runs.path(), "rup", epochs)
        .with({{"data.val_fraction", 0.0}, {"data.batch_size", 32}, {"train.ema_decay", d}, {"train.tensorboard", false}});
  };
  auto w0 = ewa::tasks::initial_model(cfg(1).with({{"model.num_classes", 10}, {"model.in_chans", 1}, {"model.img_size", 28}}));
  ewa::tasks::run_task(cfg(1), ewa::datasets::load_task, {}, [](const std::string&) {});
  const auto one = ewa::train::read_checkpoint(runs / "t/last.pt");
  ASSERT_EQ(one.step, 1);
  ASSERT_FALSE(one.model_train.is_empty());
  auto w0_params = w0->named_parameters();
  int64_t checked = 0;
  for (const auto& item : one.model) {
    const auto* init = w0_params.find(item.key());
    if (!init) continue;  // buffers
    const auto want = d * *init + (1 - d) * *one.model_train.find(item.key());
    EXPECT_TRUE(torch::allclose(item.value(), want, 1e-6, 1e-7)) << item.key();
    ++checked;
  }
  EXPECT_GT(checked, 10);
  EXPECT_GT((*one.model.find("head.weight") - *one.model_train.find("head.weight")).abs().max().item<double>(), 1e-6);

  ewa::tasks::run_task(cfg(2), ewa::datasets::load_task, {runs / "t/last.pt"}, [](const std::string&) {});
  const auto two = ewa::train::read_checkpoint(runs / "t/last.pt");
  ASSERT_EQ(two.step, 2);
  for (const auto& item : two.model) {
    if (!w0_params.find(item.key())) continue;
    const auto want = d * *one.model.find(item.key()) + (1 - d) * *two.model_train.find(item.key());
    EXPECT_TRUE(torch::allclose(item.value(), want, 1e-6, 1e-7)) << item.key();
  }
  // What the run reported is the EMA's figure.
  auto c2 = ewa::parse_config(two.config, "ckpt");
  auto model = ewa::models::build_model(c2);
  ewa::train::load_model_state(*model, two, "last.pt");
  auto task = ewa::datasets::load_task(c2);
  const auto m = ewa::eval::evaluate_protocol(*model, *task.test, task.num_classes, torch::kCPU, {}).metrics;
  const auto metrics = json::parse(std::ifstream(runs / "t/metrics.json"));
  EXPECT_DOUBLE_EQ(metrics["test"]["oa"].get<double>(), m.overall_accuracy);
  EXPECT_NE(metrics["evaluation"].get<std::string>().find("EMA weights (decay 0.75)"), std::string::npos) << metrics["evaluation"];
}

TEST(Train, EvaluatesEveryNEpochsAndAfterTheLast) {
  TempDir data, runs;
  ewa::testing::write_pattern_idx(data.path(), 40, 20, false);
  auto cfg = tiny_cfg(data.path(), runs.path(), "dense", 5).with({{"eval.every", 2}, {"train.tensorboard", false}});
  ewa::tasks::run_task(cfg, ewa::datasets::load_task, {}, [](const std::string&) {});
  std::vector<int64_t> evaluated, all;
  std::ifstream log(runs / "t/log.jsonl");
  for (std::string line; std::getline(log, line);) {
    const auto r = json::parse(line);
    if (r["type"] != "epoch") continue;
    all.push_back(r["epoch"]);
    if (r.contains("test")) evaluated.push_back(r["epoch"]);
    EXPECT_EQ(r.contains("test"), r.contains("val")) << line;
  }
  EXPECT_EQ(all, (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(evaluated, (std::vector<int64_t>{2, 4, 5}));
}

// EvalMode puts a module and its children in eval mode for a scope and gives back the flag it
// found, on a normal exit and when the scope ends by an exception.
TEST(EvalMode, RestoresTheTrainingFlagOnExitAndOnException) {
  torch::nn::Sequential net(torch::nn::Linear(2, 2), torch::nn::Dropout(0.5));
  net->train(true);
  {
    ewa::train::EvalMode guard(*net);
    EXPECT_FALSE(net->is_training());
    EXPECT_FALSE(net[1]->is_training());
  }
  EXPECT_TRUE(net->is_training());
  EXPECT_TRUE(net[1]->is_training());
  EXPECT_THROW(
      {
        ewa::train::EvalMode guard(*net);
        throw std::runtime_error("evaluation failed");
      },
      std::runtime_error);
  EXPECT_TRUE(net->is_training());
  net->eval();
  { ewa::train::EvalMode guard(*net); }
  EXPECT_FALSE(net->is_training());  // a module found in eval mode stays there
}
