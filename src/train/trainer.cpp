#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "data/point_sampling.h"
#include "models/registry.h"
#include "moe/ewa.h"
#include "io/pretrained.h"
#include "train/checkpoint.h"
#include "train/run_task.h"

namespace ewa::train {
namespace F = torch::nn::functional;

torch::Device select_device(const std::string& device, dist::Group* group) {
  if (device == "cpu") return torch::kCPU;
  if (device == "cuda" && !torch::cuda::is_available())
    fail("train.device: 'cuda' requested but no CUDA device is available");
  if (!torch::cuda::is_available()) return torch::kCPU;
  // Ranks of a job on one machine take one GPU each, by LOCAL_RANK (as torchrun's users do); a rank
  // without a GPU of its own stops the job here, before NCCL is set up.
  const int64_t gpus = static_cast<int64_t>(torch::cuda::device_count());
  if (group && group->size() > 1) group->require_gpu_per_rank(gpus);
  const int64_t local = group && group->size() > 1 ? group->env().local_rank : 0;
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local));
}

Config resolve_for_dataset(Config cfg, const data::TaskData& task) {
  std::map<std::string, nlohmann::json> settled;
  auto settle = [&](int64_t field, int64_t actual, const char* key) {
    if (field == 0) {
      settled[std::string("model.") + key] = actual;
    } else if (field != actual) {
      fail(std::string("model.") + key + ": config says " + std::to_string(field) + " but dataset " + cfg.data.dataset +
           " has " + std::to_string(actual));
    }
  };
  if (task.img_size > 0) settle(cfg.model.img_size, task.img_size, "img_size");
  settle(cfg.model.in_chans, task.in_chans, "in_chans");
  // A head wider than the dataset's classes is allowed, as the official few-shot and Point-BERT
  // ScanObjectNN configs train 40 outputs (cls_dim 40) for 5, 10 or 15 classes.
  if (cfg.model.num_classes <= task.num_classes) settle(cfg.model.num_classes, task.num_classes, "num_classes");
  if (!task.category_names.empty())
    settle(cfg.model.num_categories, static_cast<int64_t>(task.category_names.size()), "num_categories");
  if (task.img_size > 0 && task.img_size % cfg.model.patch_size != 0)
    fail("model.patch_size: " + std::to_string(cfg.model.patch_size) + " does not divide the image size " +
         std::to_string(task.img_size));
  return settled.empty() ? cfg : cfg.with(settled);
}

namespace {

// Classification (from scratch or fine-tuning): cross-entropy (+ routed MoE auxiliary loss),
// OA / mAcc / confusion on the evaluation splits.
class ClassificationTask : public Task {
 public:
  ClassificationTask(const Config& cfg, std::shared_ptr<models::ClassifierImpl> model, std::vector<std::string> class_names,
                     data::BatchSource* test, torch::Device device)
      : cfg_(cfg), model_(std::move(model)), class_names_(std::move(class_names)), test_(test), device_(device),
        loss_options_(F::CrossEntropyFuncOptions().label_smoothing(cfg.optim.label_smoothing)) {
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
    s += model_kind(cfg_).input == ModelInput::Images ? " patch=" + std::to_string(m.patch_size)
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
    auto logits = model_->forward(x);
    auto loss = F::cross_entropy(logits, y, loss_options_);
    if (auto aux = model_->aux_loss(); aux.defined() && cfg_.moe.aux_loss_weight > 0)
      loss = loss + cfg_.moe.aux_loss_weight * aux;
    return {loss, logits.argmax(1).eq(y).sum(), y.size(0)};
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
};

class ClassificationMaker : public TaskMaker {
 public:
  std::unique_ptr<Task> make(const Config& cfg, data::TaskData& data, torch::Device device, const TrainOptions& options,
                             const Reporter& report) override {
    auto model = models::build_model(cfg);
    if (!cfg.finetune.init.empty() && options.resume.empty()) report(init_from_pretrained(*model, cfg).table());
    return std::make_unique<ClassificationTask>(cfg, model, data.class_names, data.test.get(), device);
  }
};

}  // namespace

Config resolve_for_weights(Config cfg, const io::StateDict& weights) {
  const auto sd = io::normalize_keys(weights.tensors);
  const ModelKind& kind = model_kind(cfg);
  const bool vit = kind.input == ModelInput::Images, seg = kind.is_segmenter();
  std::map<std::string, nlohmann::json> found;
  if (seg) {  // parts from the last head layer, categories from the label embedding
    if (const auto* t = sd.find("convs3.weight"); t && cfg.model.num_classes == 0) found["model.num_classes"] = t->size(0);
    if (const auto* t = sd.find("label_conv.0.weight"); t && t->dim() >= 2 && cfg.model.num_categories == 0)
      found["model.num_categories"] = t->size(1);
  } else if (cfg.model.num_classes == 0) {
    const std::string prefix = vit ? "head." : "cls_head_finetune.";
    for (const auto& item : sd)
      if (item.key().rfind(prefix, 0) == 0 && item.value().dim() == 2) found["model.num_classes"] = item.value().size(0);
  }
  if (cfg.model.in_chans == 0) {
    const std::string key = vit ? "patch_embed.proj.weight" : "encoder.first_conv.0.weight";
    if (const auto* t = sd.find(key); t && t->dim() >= 2) found["model.in_chans"] = t->size(1);
  }
  if (vit && cfg.model.img_size == 0) {
    if (const auto* t = sd.find("pos_embed"); t && t->dim() == 3)
      found["model.img_size"] = static_cast<int64_t>(std::lround(std::sqrt(double(t->size(1) - 1)))) * cfg.model.patch_size;
  }
  return found.empty() ? cfg : cfg.with(found);
}

std::pair<std::shared_ptr<models::ClassifierImpl>, io::LoadReport> load_classifier(const Config& cfg,
                                                                                  const io::StateDict& weights,
                                                                                  const std::string& path) {
  auto model = models::build_model(cfg);
  auto report = io::load_pretrained(*model, weights, io::LoadOptions{}, path);
  model->eval();
  return {model, report};
}

io::LoadReport load_finetune_init(torch::nn::Module& model, const Config& cfg,
                                  const std::function<bool(const std::string&)>& may_be_fresh) {
  io::LoadOptions options;
  options.allow_missing = cfg.finetune.allow_missing;
  options.missing_hint = "pass --set finetune.allow_missing=true to start them fresh";
  options.may_be_fresh = may_be_fresh;
  return io::load_pretrained(model, io::read_state_dict(cfg.finetune.init), options, cfg.finetune.init);
}

io::LoadReport init_from_pretrained(models::ClassifierImpl& model, const Config& cfg) {
  return load_finetune_init(model, cfg, [&model](const std::string& n) { return model.may_start_fresh(n); });
}

std::shared_ptr<models::ClassifierImpl> initial_model(const Config& cfg) {
  torch::manual_seed(static_cast<uint64_t>(cfg.train.seed));
  return models::build_model(cfg);
}

std::unique_ptr<TaskMaker> classification_maker() { return std::make_unique<ClassificationMaker>(); }

}  // namespace ewa::train
