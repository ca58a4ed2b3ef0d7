#include "eval/parts.h"

#include <cstdio>

#include "common/error.h"
#include "common/random.h"
#include "train/eval_mode.h"

namespace ewa::eval {
using train::EvalMode;

namespace {

// Evaluation resamples every shape (as upstream) from this seed, so each epoch sees the same
// points and the epochs' figures compare.
constexpr uint64_t kEvalResampleSeed = 20481;

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

}  // namespace ewa::eval
