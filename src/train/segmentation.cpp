#include "train/segmentation.h"

#include <cstdio>
#include <map>

#include "common/error.h"
#include "common/random.h"
#include "train/eval_mode.h"
#include "train/run_task.h"
#include "train/trainer.h"

namespace ewa::train {
namespace {

// Evaluation resamples every shape (as upstream) from this seed, so each epoch sees the same
// points and the epochs' figures compare.
constexpr uint64_t kEvalResampleSeed = 20481;

bool is_backbone(const std::string& name) {
  for (const char* p : {"encoder.", "pos_embed.", "blocks.", "norm."})
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

}  // namespace

torch::Tensor shape_categories(const torch::Tensor& labels, const torch::Tensor& part_category) {
  return part_category.to(labels.device()).index_select(0, labels.select(1, 0));
}

torch::Tensor restricted_prediction(const torch::Tensor& logits, const torch::Tensor& category,
                                    const torch::Tensor& part_category) {
  auto allowed = part_category.to(logits.device()).unsqueeze(0).eq(category.unsqueeze(1));  // [B, P]
  auto masked = logits.to(torch::kFloat).masked_fill(allowed.logical_not().unsqueeze(1), -INFINITY);
  return masked.argmax(2);
}

PartMetrics::PartMetrics(std::vector<int64_t> part_category, std::vector<std::string> category_names)
    : part_category_(std::move(part_category)), category_names_(std::move(category_names)) {}

void PartMetrics::add(const torch::Tensor& prediction, const torch::Tensor& labels) {
  auto pred = prediction.to(torch::kCPU, torch::kLong).contiguous(), gt = labels.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t B = gt.size(0), N = gt.size(1), P = static_cast<int64_t>(part_category_.size());
  correct_ += pred.eq(gt).sum().item<int64_t>();
  points_ += B * N;
  auto pa = pred.accessor<int64_t, 2>(), ga = gt.accessor<int64_t, 2>();
  std::vector<int64_t> inter(P), uni(P);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t first = ga[b][0];
    if (first < 0 || first >= P) fail("part label " + std::to_string(first) + " outside 0.." + std::to_string(P - 1));
    const int64_t cat = part_category_[first];
    std::fill(inter.begin(), inter.end(), 0);
    std::fill(uni.begin(), uni.end(), 0);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t p = pa[b][n], g = ga[b][n];
      if (p == g) {
        ++inter[g];
        ++uni[g];
      } else {
        if (g >= 0 && g < P) ++uni[g];
        if (p >= 0 && p < P) ++uni[p];
      }
    }
    double sum = 0;
    int64_t parts = 0;
    for (int64_t l = 0; l < P; ++l) {
      if (part_category_[l] != cat) continue;
      sum += uni[l] == 0 ? 1.0 : double(inter[l]) / double(uni[l]);  // absent from both: 1
      ++parts;
    }
    shape_iou_.push_back(sum / double(parts));
    shape_category_.push_back(cat);
  }
}

double PartMetrics::instance_miou() const {
  double s = 0;
  for (double v : shape_iou_) s += v;
  return shape_iou_.empty() ? 0.0 : s / double(shape_iou_.size());
}

std::map<int64_t, std::pair<double, int64_t>> PartMetrics::category_sums() const {
  std::map<int64_t, std::pair<double, int64_t>> per;
  for (size_t i = 0; i < shape_iou_.size(); ++i) {
    per[shape_category_[i]].first += shape_iou_[i];
    per[shape_category_[i]].second += 1;
  }
  return per;
}

double PartMetrics::class_miou() const {
  const auto per = category_sums();
  double s = 0;
  for (const auto& [c, v] : per) s += v.first / double(v.second);
  return per.empty() ? 0.0 : s / double(per.size());
}

nlohmann::json PartMetrics::per_category() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [c, v] : category_sums()) {
    const std::string name = c < static_cast<int64_t>(category_names_.size()) ? category_names_[c] : std::to_string(c);
    j[name] = {{"miou", v.first / double(v.second)}, {"shapes", v.second}};
  }
  return j;
}

nlohmann::json PartMetrics::to_json() const {
  return {{"instance_miou", instance_miou()}, {"class_miou", class_miou()}, {"acc", accuracy()}, {"count", shapes()}};
}

std::string PartMetrics::text() const {
  char b[128];
  std::snprintf(b, sizeof b, "ins. mIoU %.4f cls. mIoU %.4f acc %.4f", instance_miou(), class_miou(), accuracy());
  return b;
}

std::string segmentation_protocol_label(const Config& cfg) {
  return "single pass, " + std::to_string(cfg.data.num_points) +
         " points drawn with replacement per shape (fixed seed), prediction restricted to the shape's category";
}

PartMetrics evaluate_segmentation(models::PointSegImpl& model, data::BatchSource& source, const data::TaskData& task,
                                  torch::Device device, double* loss) {
  auto part_category = torch::tensor(task.part_category, torch::kLong).to(device);
  PartMetrics metrics(task.part_category, task.category_names);
  torch::NoGradGuard guard;
  EvalMode eval_mode(model);
  double loss_sum = 0;
  with_cpu_seed(kEvalResampleSeed, [&] {
    for (int64_t i = 0; i < source.num_batches(); ++i) {
      auto [x, y] = source.batch(i, data::View::Plain);
      x = x.to(device);
      y = y.to(device);
      auto category = shape_categories(y, part_category);
      auto logits = model.forward(x, category);
      if (loss)
        loss_sum += torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(2)}).to(torch::kFloat), y.reshape(-1))
                        .item<double>() * double(y.size(0));
      metrics.add(restricted_prediction(logits, category, part_category), y);
    }
    return 0;
  });
  if (loss) *loss = metrics.shapes() ? loss_sum / double(metrics.shapes()) : 0.0;
  return metrics;
}

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

std::pair<models::PointSeg, io::LoadReport> load_segmenter(const Config& cfg, const io::StateDict& weights,
                                                           const std::string& path) {
  models::PointSeg model(cfg);
  auto report = io::load_pretrained(*model, weights, io::LoadOptions{}, path);
  model->eval();
  return {model, report};
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

}  // namespace ewa::train
