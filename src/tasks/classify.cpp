#include "tasks/classify.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "data/mix.h"
#include "data/point_sampling.h"
#include "io/pretrained.h"
#include "models/registry.h"
#include "moe/ewa.h"
#include "tasks/run_task.h"
#include "train/checkpoint.h"
#include "train/setup.h"

namespace ewa::tasks {
using eval::epoch_protocol;
using eval::evaluate_protocol;
using eval::protocol_named;
using train::ParamGroup;
using train::layer_decay_groups;
using train::load_finetune_init;

namespace F = torch::nn::functional;

namespace {

// Classification (from scratch or fine-tuning): cross-entropy (+ routed MoE auxiliary loss),
// OA / mAcc / confusion on the evaluation splits.
class ClassificationTask : public Task {
 public:
  ClassificationTask(const Config& cfg, std::shared_ptr<models::ClassifierImpl> model, std::vector<std::string> class_names,
                     data::BatchSource* test, torch::Device device)
      : cfg_(cfg), model_(std::move(model)), class_names_(std::move(class_names)), test_(test), device_(device),
        loss_options_(F::CrossEntropyFuncOptions().label_smoothing(cfg.optim.label_smoothing)) {
    mix_.mixup_alpha = cfg.data.mixup;
    mix_.cutmix_alpha = cfg.data.cutmix;
    mix_.prob = cfg.data.mixup_prob;
    mix_.switch_prob = cfg.data.mixup_switch_prob;
    mix_.label_smoothing = cfg.optim.label_smoothing;
    mix_.num_classes = cfg.model.num_classes;
    if (cfg.finetune.freeze_encoder)
      for (const auto& p : model_->named_parameters()) p.value().set_requires_grad(model_->is_head(p.key()));
    if (cfg.eval.final_vote) {  // refused now, not after the last epoch
      if (!cfg.data.is_point_cloud()) fail("eval.final_vote: the official vote resamples point clouds; images have no vote");
      data::require_fps_points(cfg.data, "eval.final_vote");
    }
  }
  torch::nn::Module& model() override { return *model_; }
  std::string describe_model() override {
    const auto& m = cfg_.model;
    std::string s = m.name + " D=" + std::to_string(m.embed_dim) + " depth=" + std::to_string(m.depth) +
                    " heads=" + std::to_string(m.num_heads);
    s += model_kind(cfg_).input == ModelInput::Images
             ? " patch=" + std::to_string(m.patch_size)
             : " groups=" + std::to_string(m.num_groups) + "x" + std::to_string(m.group_size);
    if (cfg_.finetune.freeze_encoder) s += ", linear probe (backbone frozen)";
    if (m.num_classes > int64_t(class_names_.size()))
      s += ", head of " + std::to_string(m.num_classes) + " outputs for " + std::to_string(class_names_.size()) + " classes";
    return s;
  }
  std::vector<ParamGroup> parameter_groups() override {
    const double decay = cfg_.finetune.layer_decay;
    return layer_decay_groups(*model_, decay, model_->num_layers(),
                              [this](const std::string& n) { return model_->layer_of(n); });
  }
  void set_training() override {
    if (!cfg_.finetune.freeze_encoder) return model_->train();
    model_->eval();  // the frozen backbone keeps its BatchNorm statistics and runs without dropout
    model_->head_module()->train();
  }
  StepOutput training_step(const torch::Tensor& x, const torch::Tensor& y) override {
    if (mix_.enabled()) return mixed_step(x, y);
    auto logits = model_->forward(x);
    auto loss = F::cross_entropy(logits, y, loss_options_);
    if (auto aux = model_->aux_loss(); aux.defined() && cfg_.moe.aux_loss_weight > 0)
      loss = loss + cfg_.moe.aux_loss_weight * aux;
    return {loss, logits.argmax(1).eq(y).sum(), y.size(0)};
  }
  // data.mixup / data.cutmix: the batch mixed with itself reversed, as DeiT's training loop does
  // it on the device before the forward (timm's Mixup, mode "batch"), drawn from the step's
  // stream of torch's default generator; soft targets with the label smoothing folded in and
  // timm's soft-target cross-entropy. No training accuracy: the targets are mixtures.
  StepOutput mixed_step(const torch::Tensor& x, const torch::Tensor& y) {
    if (x.size(0) % 2 != 0)
      fail("data.mixup/data.cutmix: a batch of " + std::to_string(x.size(0)) + " samples; timm mixes a batch with itself "
           "reversed and takes even batches (per process): set data.batch_size even and data.drop_last=true");
    auto mixed = x.clone();
    data::GeneratorDraws draws;
    const auto draw = data::draw_mix(mix_, x.size(-2), x.size(-1), draws);
    const auto targets = data::apply_mix(mixed, y, draw, mix_);
    auto logits = model_->forward(mixed);
    auto loss = data::soft_target_cross_entropy(logits, targets);
    if (auto aux = model_->aux_loss(); aux.defined() && cfg_.moe.aux_loss_weight > 0)
      loss = loss + cfg_.moe.aux_loss_weight * aux;
    return {loss, torch::Tensor(), y.size(0)};
  }
  EvalResult evaluate(data::BatchSource& source) override {
    const auto r = evaluate_protocol(*model_, source, cfg_.model.num_classes, device_, epoch_protocol(cfg_), group());
    const auto& m = r.metrics;
    return {m.to_json(), m.to_json(true), r.text(), m.overall_accuracy};
  }
  std::string eval_label() const override { return epoch_protocol(cfg_).label(); }
  void finish(const std::string& run_dir, const Reporter& report) override {
    if (!cfg_.eval.final_vote) return;
    // Rank 0 alone (the loop calls finish there only): no collective.
    const auto protocol = protocol_named("vote", cfg_, "eval.final_vote");
    report("official vote of the final model on the test split (" + protocol.label() + ") ...");
    const auto r = evaluate_protocol(*model_, *test_, cfg_.model.num_classes, device_, protocol, nullptr);
    vote_ = r.to_json();
    report("final test " + r.text() + " (final epoch, " + protocol.label() + ")");
  }
  nlohmann::json extra_metrics() const override {
    nlohmann::json j = {{"votes", cfg_.data.votes}, {"class_names", class_names_}};
    if (!cfg_.finetune.init.empty()) j["init"] = cfg_.finetune.init;
    return j;
  }
  nlohmann::json extra_protocols() const override {
    return vote_.is_null() ? nlohmann::json::object() : nlohmann::json{{"vote", vote_}};
  }
 private:
  Config cfg_;
  std::shared_ptr<models::ClassifierImpl> model_;
  std::vector<std::string> class_names_;
  data::BatchSource* test_;
  torch::Device device_;
  nlohmann::json vote_;
  F::CrossEntropyFuncOptions loss_options_;
  data::MixSettings mix_;
};

class ClassificationMaker : public TaskMaker {
 public:
  std::unique_ptr<Task> make(const Config& cfg, data::TaskData& data, torch::Device device, const TrainOptions& options,
                             const Reporter& report) override {
    auto model = initial_model(cfg);  // (seeds again with train.seed, as run_task just did: the same draws)
    if (!cfg.finetune.init.empty() && options.resume.empty()) report(init_from_pretrained(*model, cfg).table());
    return std::make_unique<ClassificationTask>(cfg, model, data.class_names, data.test.get(), device);
  }
};

}  // namespace

io::LoadReport init_from_pretrained(models::ClassifierImpl& model, const Config& cfg) {
  return load_finetune_init(model, cfg, [&model](const std::string& n) { return model.may_start_fresh(n); });
}

std::shared_ptr<models::ClassifierImpl> initial_model(const Config& cfg) {
  torch::manual_seed(static_cast<uint64_t>(cfg.train.seed));
  return models::build_model(cfg);
}

std::unique_ptr<TaskMaker> classification_maker() { return std::make_unique<ClassificationMaker>(); }

}  // namespace ewa::tasks
