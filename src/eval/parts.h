// Part segmentation's evaluation (Point-MAE's ShapeNetPart protocol, docs/protocols.md "Part
// segmentation"): the prediction restricted to the shape's category and the mIoU metrics, as
// training, `ewa eval`, predict and the gallery compute them.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "data/batch_source.h"
#include "models/point_seg.h"

namespace ewa::eval {

// The category of every shape of a batch: the category of the part of its first point (as the
// official evaluation takes it; every point of a shape has a part of the same category).
torch::Tensor shape_categories(const torch::Tensor& labels, const torch::Tensor& part_category);

// Prediction restricted to the shape's category: the argmax over that category's parts only.
// logits [B, N, P], category [B], part_category int64 [P] -> int64 [B, N].
torch::Tensor restricted_prediction(const torch::Tensor& logits, const torch::Tensor& category,
                                    const torch::Tensor& part_category);

// Point-MAE's part-segmentation metrics, accumulated shape by shape:
//   part IoU = |gt n pred| / |gt u pred|, 1 when the part is in neither; shape IoU = mean over the
//   parts of the shape's category; instance mIoU = mean over shapes; class mIoU = mean over the
//   categories present of their shapes' mean; accuracy = right points / points.
class PartMetrics {
 public:
  PartMetrics(std::vector<int64_t> part_category, std::vector<std::string> category_names);
  // Adds the shapes of a batch: prediction and labels int64 [B, N].
  void add(const torch::Tensor& prediction, const torch::Tensor& labels);
  int64_t shapes() const { return static_cast<int64_t>(shape_iou_.size()); }
  double instance_miou() const;
  double class_miou() const;
  double accuracy() const { return points_ ? double(correct_) / double(points_) : 0.0; }
  // {category: {"miou", "shapes"}} for the categories present.
  nlohmann::json per_category() const;
  nlohmann::json to_json() const;  // instance_miou, class_miou, acc, count
  std::string text() const;        // "ins. mIoU 0.8612 cls. mIoU 0.8431 acc 0.9402"

 private:
  // Per category present: (sum of its shapes' IoUs, number of shapes).
  std::map<int64_t, std::pair<double, int64_t>> category_sums() const;
  std::vector<int64_t> part_category_;
  std::vector<std::string> category_names_;
  std::vector<double> shape_iou_;
  std::vector<int64_t> shape_category_;
  int64_t correct_ = 0, points_ = 0;
};

// Evaluates `model` on `source` as the epochs do (resampled with a fixed seed, restricted
// prediction); returns the metrics and adds the mean loss to *loss when given.
PartMetrics evaluate_segmentation(models::PointSegImpl& model, data::BatchSource& source,
                                  const data::TaskData& task, torch::Device device, double* loss = nullptr);


// The label every segmentation report carries.
std::string segmentation_protocol_label(const Config& cfg);

}  // namespace ewa::eval
