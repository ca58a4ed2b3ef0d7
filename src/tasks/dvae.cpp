#include "tasks/dvae.h"

#include <array>
#include <cstdio>
#include <map>

#include "common/error.h"
#include "common/random.h"
#include "kernels/chamfer/chamfer.h"
#include "tasks/run_task.h"
#include "train/eval_mode.h"

namespace ewa::tasks {
using models::dvae_options;
using train::EvalMode;

namespace {

constexpr uint64_t kEvalNoiseSeed = 20211129;  // the Gumbel noise of every evaluation

class DvaeTask : public Task {
 public:
  DvaeTask(const Config& cfg, models::DiscreteVae model, torch::Device device)
      : cfg_(cfg), model_(std::move(model)), device_(device) {}
  torch::nn::Module& model() override { return *model_; }
  std::string describe_model() override {
    const auto o = dvae_options(cfg_);
    char b[256];
    std::snprintf(b, sizeof b, "point_bert_dvae groups=%lldx%lld, encoder %lld, %lld tokens x %lld, decoder %lld",
                  (long long)o.num_groups, (long long)o.group_size, (long long)o.encoder_dims, (long long)o.num_tokens,
                  (long long)o.tokens_dims, (long long)o.decoder_dims);
    return b;
  }
  void begin_step(int64_t step) override {
    const auto& p = cfg_.pretrain;
    kl_weight_ = models::dvae_kl_weight(step, 0.0, p.kl_weight, p.kl_ramp, p.kl_delay);
    temperature_ = models::dvae_temperature(step, p.temperature_start, p.temperature_end, p.temperature_ramp);
  }
  StepOutput training_step(const torch::Tensor& x, const torch::Tensor&) override {
    auto out = model_->forward(x, temperature_, /*hard=*/false);
    return {out.recon + kl_weight_ * out.kl, torch::Tensor(), x.size(0)};
  }
  EvalResult evaluate(data::BatchSource& source) override {
    const auto e = dvae_evaluation(*model_, source, device_);
    char text[256];
    std::snprintf(text, sizeof text, "CD-L1 x1000 dense %.4f coarse %.4f (whole clouds, %lld categories) | patch recon %.4f KL %.4f (tau %.4f, w_kl %.4f)",
                  e.dense_cdl1, e.coarse_cdl1, (long long)e.categories, 1000 * e.recon, e.kl, temperature_, kl_weight_);
    // "chamfer": the key the run's loss plot draws per epoch (the per-patch training term).
    nlohmann::json j = {{"cdl1_dense_x1000", e.dense_cdl1}, {"cdl1_coarse_x1000", e.coarse_cdl1}, {"categories", e.categories},
                        {"chamfer", e.recon}, {"kl", e.kl}, {"temperature", temperature_}, {"kl_weight", kl_weight_},
                        {"count", source.size()}};
    return {j, j, text, -e.dense_cdl1};
  }
  std::string eval_label() const override {
    return "whole-cloud CD-L1 x1000 of the dense and coarse reconstructions against the input, mean over categories "
           "(Point-BERT's dVAE validation), hard codes, Gumbel noise of seed " + std::to_string(kEvalNoiseSeed);
  }
  bool best_is_best_on_test() const override { return true; }

 private:
  Config cfg_;
  models::DiscreteVae model_;
  torch::Device device_;
  double kl_weight_ = 0, temperature_ = 1;
};

// The whole-cloud CD-L1 of every cloud (ChamferDistanceL1 per cloud): a [B, N, 3] against
// b [B, M, 3] -> double [B] on the CPU.
torch::Tensor cloud_chamfer_l1(const torch::Tensor& a, const torch::Tensor& b) {
  const auto [da, ia, db, ib] = kernels::chamfer_nearest(a.to(torch::kFloat).contiguous(), b.to(torch::kFloat).contiguous());
  return ((da.sqrt().mean(1) + db.sqrt().mean(1)) / 2.0).to(torch::kCPU, torch::kDouble);
}

}  // namespace

DvaeEvaluation dvae_evaluation(models::DiscreteVaeImpl& model, data::BatchSource& source, torch::Device device) {
  torch::NoGradGuard guard;
  EvalMode eval_mode(model);
  return with_cpu_seed(kEvalNoiseSeed, [&] {
    DvaeEvaluation r;
    std::map<int64_t, std::array<double, 3>> per_category;  // dense sum, coarse sum, count
    int64_t count = 0;
    for (int64_t i = 0; i < source.num_batches(); ++i) {
      auto [xb, yb] = source.batch(i, data::View::Plain);
      auto x = xb.to(device);
      auto out = model.forward(x, 1.0, /*hard=*/true);
      const int64_t B = x.size(0);
      auto centre = out.centers.unsqueeze(2);  // [B, G, 1, 3]
      const auto dense = cloud_chamfer_l1((out.fine + centre).reshape({B, -1, 3}), x.narrow(2, 0, 3));
      const auto coarse = cloud_chamfer_l1((out.coarse + centre).reshape({B, -1, 3}), x.narrow(2, 0, 3));
      const auto labels = yb.defined() ? yb.to(torch::kCPU, torch::kLong) : torch::zeros({B}, torch::kLong);
      const auto d = dense.accessor<double, 1>(), co = coarse.accessor<double, 1>();
      const auto l = labels.accessor<int64_t, 1>();
      for (int64_t b = 0; b < B; ++b) {
        auto& c = per_category[l[b]];
        c[0] += 1000.0 * d[b];
        c[1] += 1000.0 * co[b];
        c[2] += 1.0;
      }
      r.recon += out.recon.item<double>() * double(B);
      r.kl += out.kl.item<double>() * double(B);
      count += B;
    }
    for (const auto& [label, c] : per_category) {
      r.dense_cdl1 += c[0] / c[2];
      r.coarse_cdl1 += c[1] / c[2];
    }
    r.categories = static_cast<int64_t>(per_category.size());
    if (r.categories) r.dense_cdl1 /= double(r.categories), r.coarse_cdl1 /= double(r.categories);
    if (count) r.recon /= double(count), r.kl /= double(count);
    return r;
  });
}

namespace {

class DvaeMaker : public TaskMaker {
 public:
  std::unique_ptr<Task> make(const Config& cfg, data::TaskData&, torch::Device device, const TrainOptions&,
                             const Reporter&) override {
    models::DiscreteVae model(dvae_options(cfg));
    return std::make_unique<DvaeTask>(cfg, model, device);
  }
};

}  // namespace

std::unique_ptr<TaskMaker> dvae_maker() { return std::make_unique<DvaeMaker>(); }

}  // namespace ewa::tasks
