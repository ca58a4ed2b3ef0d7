#include "eval/mae_views.h"

#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/random.h"
#include "io/point_io.h"
#include "tasks/run_task.h"
#include "train/eval_mode.h"

namespace ewa::tasks {
using eval::reconstruction_loss;
using eval::write_reconstructions;

namespace {

class PretrainTask : public Task {
 public:
  PretrainTask(const Config& cfg, models::PointMae model, torch::Device device)
      : cfg_(cfg), model_(std::move(model)), device_(device) {}
  torch::nn::Module& model() override { return *model_; }
  std::string describe_model() override {
    const auto& m = cfg_.model;
    const auto& p = cfg_.pretrain;
    char b[256];
    std::snprintf(b, sizeof b, "point_mae D=%lld depth=%lld heads=%lld groups=%lldx%lld, decoder depth %lld heads %lld, mask %s %.2f, loss %s",
                  (long long)m.embed_dim, (long long)m.depth, (long long)m.num_heads, (long long)m.num_groups,
                  (long long)m.group_size, (long long)p.decoder_depth, (long long)p.decoder_num_heads, p.mask_type.c_str(),
                  p.mask_ratio, p.loss.c_str());
    return b;
  }
  StepOutput training_step(const torch::Tensor& x, const torch::Tensor&) override {
    return {model_->forward(x).loss, torch::Tensor(), x.size(0)};
  }
  EvalResult evaluate(data::BatchSource& source) override {
    last_loss_ = reconstruction_loss(*model_, source, device_);
    char text[96];
    std::snprintf(text, sizeof text, "Chamfer-%s x1000 %.4f", cfg_.pretrain.loss == "cdl1" ? "L1" : "L2", 1000 * last_loss_);
    nlohmann::json j = {{"chamfer", last_loss_}, {"count", source.size()}};
    return {j, j, text, -last_loss_};
  }
  std::string eval_label() const override {
    return "reconstruction loss of the masked groups, fixed masks (seed " + std::to_string(eval::kMaeEvalMaskSeed) + ")";
  }
  nlohmann::json extra_metrics() const override { return {{"loss", cfg_.pretrain.loss}}; }
  void finish(const std::string& run_dir, const Reporter& report) override {
    if (cfg_.pretrain.reconstructions <= 0 || !test_) return;
    const std::string dir = run_dir + "/reconstructions";
    const int64_t n = write_reconstructions(*model_, *test_, cfg_.pretrain.reconstructions, dir, device_);
    report("wrote " + std::to_string(n) + " reconstructions (input, visible, predicted, combined .ply) to " + dir);
  }
  void set_test(data::BatchSource* test) { test_ = test; }
  double last_loss() const { return last_loss_; }

 private:
  Config cfg_;
  models::PointMae model_;
  torch::Device device_;
  data::BatchSource* test_ = nullptr;
  double last_loss_ = 0;
};

}  // namespace

namespace {

class PointMaeMaker : public TaskMaker {
 public:
  std::unique_ptr<Task> make(const Config& cfg, data::TaskData& data, torch::Device device, const TrainOptions&,
                             const Reporter&) override {
    models::PointMae model(cfg);
    auto task = std::make_unique<PretrainTask>(cfg, model, device);
    task->set_test(data.test.get());
    return task;
  }
};

}  // namespace

std::unique_ptr<TaskMaker> point_mae_maker() { return std::make_unique<PointMaeMaker>(); }

}  // namespace ewa::tasks
