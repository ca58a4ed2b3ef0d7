#include "eval/metrics.h"

namespace ewa::eval {

void accumulate_confusion(torch::Tensor& confusion, const torch::Tensor& labels, const torch::Tensor& predictions) {
  const int64_t c = confusion.size(0);
  // On the confusion matrix's device, without a read back (bincount on a GPU reads the maximum).
  auto flat = (labels.to(confusion.device()) * c + predictions.to(confusion.device())).to(torch::kLong);
  confusion.view({c * c}).index_add_(0, flat, torch::ones_like(flat));
}

ClassificationMetrics metrics_from_confusion(const torch::Tensor& confusion) {
  ClassificationMetrics m;
  m.confusion = confusion;
  auto conf = confusion.to(torch::kDouble);
  const double total = conf.sum().item<double>();
  m.count = static_cast<int64_t>(total);
  m.overall_accuracy = total > 0 ? conf.diagonal().sum().item<double>() / total : 0.0;
  auto support = conf.sum(1);
  auto present = support > 0;
  if (present.any().item<bool>()) {
    auto recall = conf.diagonal().masked_select(present) / support.masked_select(present);
    m.mean_class_accuracy = recall.mean().item<double>();
  }
  return m;
}

nlohmann::json ClassificationMetrics::to_json(bool with_confusion) const {
  nlohmann::json j = {{"loss", loss}, {"oa", overall_accuracy}, {"macc", mean_class_accuracy}, {"count", count}};
  if (with_confusion && confusion.defined()) {
    auto c = confusion.to(torch::kLong).contiguous();
    std::vector<std::vector<int64_t>> rows(c.size(0));
    auto a = c.accessor<int64_t, 2>();
    for (int64_t i = 0; i < c.size(0); ++i)
      for (int64_t k = 0; k < c.size(1); ++k) rows[i].push_back(a[i][k]);
    j["confusion"] = rows;
  }
  return j;
}

}  // namespace ewa::eval
