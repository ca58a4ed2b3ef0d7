// Classification metrics from a confusion matrix.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

namespace ewa::eval {

struct ClassificationMetrics {
  double loss = 0;                 // mean cross-entropy (no label smoothing)
  double overall_accuracy = 0;     // OA: correct / total
  double mean_class_accuracy = 0;  // mAcc: mean over classes present of per-class recall
  int64_t count = 0;
  torch::Tensor confusion;         // int64 [C, C], rows = true class, columns = prediction

  nlohmann::json to_json(bool with_confusion = false) const;
};

// Adds predictions (int64 [B]) against labels (int64 [B]) into confusion (int64 [C, C], contiguous, on
// any device; labels and predictions are moved to it).
void accumulate_confusion(torch::Tensor& confusion, const torch::Tensor& labels, const torch::Tensor& predictions);

// OA and mAcc of a confusion matrix (classes with no samples are left out of mAcc).
ClassificationMetrics metrics_from_confusion(const torch::Tensor& confusion);

}  // namespace ewa::eval
