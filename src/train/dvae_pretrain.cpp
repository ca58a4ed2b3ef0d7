#include "train/dvae_pretrain.h"

#include <cstdio>

#include "common/error.h"
#include "common/random.h"
#include "train/trainer.h"

namespace ewa::train {
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
    const auto [recon, kl] = dvae_evaluation(*model_, source, device_);
    char text[160];
    std::snprintf(text, sizeof text, "recon CD-L1 x1000 %.4f KL %.4f (tau %.4f, w_kl %.4f)", 1000 * recon, kl, temperature_,
                  kl_weight_);
    // "chamfer": the key the run's loss plot draws per epoch.
    nlohmann::json j = {{"chamfer", recon}, {"kl", kl}, {"temperature", temperature_}, {"kl_weight", kl_weight_},
                        {"count", source.size()}};
    return {j, j, text, -recon};
  }
  std::string eval_label() const override {
    return "CD-L1 of the coarse and fine patch reconstructions, hard codes, Gumbel noise of seed " +
           std::to_string(kEvalNoiseSeed);
  }

 private:
  Config cfg_;
  models::DiscreteVae model_;
  torch::Device device_;
  double kl_weight_ = 0, temperature_ = 1;
};

}  // namespace

models::DvaeOptions dvae_options(const Config& cfg) {
  models::DvaeOptions o;
  o.num_groups = cfg.model.num_groups;
  o.group_size = cfg.model.group_size;
  o.encoder_dims = cfg.model.encoder_dims > 0 ? cfg.model.encoder_dims : 256;
  o.num_tokens = cfg.pretrain.num_tokens;
  o.tokens_dims = cfg.pretrain.tokens_dims;
  o.decoder_dims = cfg.pretrain.decoder_dims;
  return o;
}

std::pair<double, double> dvae_evaluation(models::DiscreteVaeImpl& model, data::BatchSource& source, torch::Device device) {
  torch::NoGradGuard guard;
  const bool was_training = model.is_training();
  model.eval();
  auto sums = with_cpu_seed(kEvalNoiseSeed, [&] {
    double recon = 0, kl = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < source.num_batches(); ++i) {
      auto x = source.batch(i, data::View::Plain).first.to(device);
      auto out = model.forward(x, 1.0, /*hard=*/true);
      recon += out.recon.item<double>() * double(x.size(0));
      kl += out.kl.item<double>() * double(x.size(0));
      count += x.size(0);
    }
    return std::make_pair(count ? recon / double(count) : 0.0, count ? kl / double(count) : 0.0);
  });
  model.train(was_training);
  return sums;
}

DvaePretrainResult pretrain_dvae(Config cfg, const data::TaskLoader& load_data, const TrainOptions& options,
                                 const Reporter& report) {
  if (cfg.model.name != "point_bert_dvae")
    fail("model.name: the dVAE stage trains a point_bert_dvae model, the config names '" + cfg.model.name + "'");
  auto data = load_data(cfg, data::Use::Training);
  cfg = resolve_for_dataset(cfg, data);
  const torch::Device device = select_device(cfg.train.device, options.group.get());
  torch::manual_seed(static_cast<uint64_t>(cfg.train.seed));
  models::DiscreteVae model(dvae_options(cfg));
  DvaeTask task(cfg, model, device);
  auto loop = run_training(cfg, task, data, options, report, device);
  return {loop.run_dir, loop.test.json.value("chamfer", 0.0), loop.steps, loop.seconds};
}

}  // namespace ewa::train
