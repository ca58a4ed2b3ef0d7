#include "tasks/segmentation.h"

#include <cstdio>
#include <map>

#include "common/error.h"
#include "common/random.h"
#include "eval/parts.h"
#include "tasks/run_task.h"
#include "train/eval_mode.h"
#include "train/setup.h"

namespace ewa::tasks {
using eval::evaluate_segmentation;
using eval::segmentation_protocol_label;
using eval::shape_categories;
using train::ParamGroup;
using train::layer_decay_groups;
using train::load_finetune_init;

namespace {

bool is_backbone(const std::string& name) {
  for (const char* p : {"encoder.", "pos_embed.", "blocks.", "norm."})
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

}  // namespace

namespace {

class SegmentationTask : public Task {
 public:
  SegmentationTask(const Config& cfg, models::PointSeg model, const data::TaskData& data, torch::Device device)
      : cfg_(cfg), model_(std::move(model)), data_(data), device_(device),
        part_category_(torch::tensor(data.part_category, torch::kLong).to(device)) {
    if (cfg.finetune.freeze_encoder)
      for (const auto& p : model_->named_parameters()) p.value().set_requires_grad(!is_backbone(p.key()));
  }
  torch::nn::Module& model() override { return *model_; }
  // finetune.layer_decay: encoder and position embedding = layer 0, block i = i + 1, the norm and
  // everything after it = depth + 1 (as the classifiers).
  std::vector<ParamGroup> parameter_groups() override {
    const int64_t depth = cfg_.model.depth;
    return layer_decay_groups(*model_, cfg_.finetune.layer_decay, depth + 1, [depth](const std::string& n) -> int64_t {
      const int64_t b = models::block_layer(n, "blocks.blocks.");
      if (b >= 0) return b;
      return n.rfind("encoder.", 0) == 0 || n.rfind("pos_embed.", 0) == 0 ? 0 : depth + 1;
    });
  }
  // finetune.freeze_encoder: the frozen backbone keeps its BatchNorm statistics and runs without
  // dropout; the label embedding, propagation and head train.
  void set_training() override {
    model_->train();
    if (!cfg_.finetune.freeze_encoder) return;
    model_->encoder->eval();
    model_->pos_embed->eval();
    model_->blocks->eval();
    model_->norm->eval();
  }
  std::string describe_model() override {
    const auto& m = cfg_.model;
    const auto fetch = models::seg_feature_blocks(m.depth);
    return "point_seg D=" + std::to_string(m.embed_dim) + " depth=" + std::to_string(m.depth) + " heads=" +
           std::to_string(m.num_heads) + " groups=" + std::to_string(m.num_groups) + "x" + std::to_string(m.group_size) +
           ", features of blocks " + std::to_string(fetch[0] + 1) + "/" + std::to_string(fetch[1] + 1) + "/" +
           std::to_string(fetch[2] + 1) + ", " + std::to_string(m.num_classes) + " parts of " +
           std::to_string(m.num_categories) + " categories" +
           (cfg_.finetune.freeze_encoder ? ", backbone frozen" : "");
  }
  StepOutput training_step(const torch::Tensor& x, const torch::Tensor& y) override {
    auto logits = model_->forward(x, shape_categories(y, part_category_));
    // log_softmax + nll_loss over every point, as upstream (optim.label_smoothing: 0 in the seg configs).
    auto loss = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(2)}), y.reshape(-1),
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(cfg_.optim.label_smoothing));
    return {loss, {}, y.size(0)};
  }
  EvalResult evaluate(data::BatchSource& source) override {
    double loss = 0;
    const auto m = evaluate_segmentation(*model_, source, data_, device_, &loss);
    auto json = m.to_json();
    json["loss"] = loss;
    auto detail = json;
    detail["per_category"] = m.per_category();
    return {json, detail, m.text(), m.instance_miou()};
  }
  std::string eval_label() const override { return segmentation_protocol_label(cfg_); }
  nlohmann::json extra_metrics() const override {
    nlohmann::json j = {{"part_names", data_.class_names}, {"category_names", data_.category_names}};
    if (!cfg_.finetune.init.empty()) j["init"] = cfg_.finetune.init;
    return j;
  }

 private:
  Config cfg_;
  models::PointSeg model_;
  const data::TaskData& data_;
  torch::Device device_;
  torch::Tensor part_category_;
};

}  // namespace

io::LoadReport init_segmentation(models::PointSegImpl& model, const Config& cfg) {
  return load_finetune_init(model, cfg, [](const std::string& n) { return !is_backbone(n); });
}

namespace {

class SegmentationMaker : public TaskMaker {
 public:
  void prepare(Config& cfg, data::TaskData& data, const data::TaskLoader&, const Reporter&) override {
    if (data.part_category.empty()) fail("data.dataset: " + cfg.data.dataset + " has no per-point part labels");
  }
  std::unique_ptr<Task> make(const Config& cfg, data::TaskData& data, torch::Device device, const TrainOptions& options,
                             const Reporter& report) override {
    models::PointSeg model(cfg);
    if (!cfg.finetune.init.empty() && options.resume.empty()) report(init_segmentation(*model, cfg).table());
    return std::make_unique<SegmentationTask>(cfg, model, data, device);
  }
};

}  // namespace

std::unique_ptr<TaskMaker> segmentation_maker() { return std::make_unique<SegmentationMaker>(); }

}  // namespace ewa::tasks
