#include "eval/mae_views.h"

#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/random.h"
#include "io/point_io.h"
#include "train/eval_mode.h"

namespace ewa::eval {
using train::EvalMode;

namespace {
// The views of one batch with the generator as it stands (the callers seed it); eval mode is theirs.
std::vector<MaeView> views_of_batch(models::PointMaeImpl& model, const torch::Tensor& points, torch::Device device) {
  auto out = model.forward(points.to(device));
  auto centers = out.centers.cpu(), groups = out.neighborhoods.cpu(), mask = out.mask.cpu();
  auto predicted = out.predicted.cpu(), masked_index = out.masked_index.cpu();
  std::vector<MaeView> views;
  for (int64_t i = 0; i < points.size(0); ++i) {
    auto points_of = [&](const torch::Tensor& idx) {
      return (groups[i].index_select(0, idx).narrow(2, 0, 3) + centers[i].index_select(0, idx).unsqueeze(1)).reshape({-1, 3});
    };
    auto masked_centers = centers[i].index_select(0, masked_index[i]);
    views.push_back({points[i].narrow(1, 0, 3).cpu(), points_of((~mask[i]).nonzero().squeeze(1)), points_of(masked_index[i]),
                     (predicted[i] + masked_centers.unsqueeze(1)).reshape({-1, 3})});
  }
  return views;
}

// Runs `fn` in eval mode without gradients with the fixed evaluation masks, restoring both after.
template <typename Fn>
auto with_eval_masks(models::PointMaeImpl& model, Fn fn) {
  torch::NoGradGuard guard;
  EvalMode eval_mode(model);
  return with_cpu_seed(kMaeEvalMaskSeed, fn);
}
}  // namespace

double reconstruction_loss(models::PointMaeImpl& model, data::BatchSource& source, torch::Device device) {
  return with_eval_masks(model, [&] {
    auto sum = torch::zeros({}, torch::TensorOptions(torch::kDouble).device(device));  // read back once, at the end
    int64_t count = 0;
    for (int64_t i = 0; i < source.num_batches(); ++i) {
      auto x = source.batch(i, data::View::Plain).first.to(device);
      sum += model.forward(x).loss.to(torch::kDouble) * double(x.size(0));
      count += x.size(0);
    }
    return count > 0 ? sum.item<double>() / double(count) : 0.0;
  });
}

std::vector<MaeView> mae_views(models::PointMaeImpl& model, const torch::Tensor& points, torch::Device device) {
  return with_eval_masks(model, [&] { return views_of_batch(model, points, device); });
}

int64_t write_reconstructions(models::PointMaeImpl& model, data::BatchSource& source, int64_t count,
                              const std::string& dir, torch::Device device) {
  ensure_writable_dir(dir);
  // One seeded stream over the batches, so the masks are those of reconstruction_loss.
  return with_eval_masks(model, [&] {
    int64_t written = 0;
    for (int64_t b = 0; b < source.num_batches() && written < count; ++b)
      for (const auto& v : views_of_batch(model, source.batch(b, data::View::Plain).first, device)) {
        if (written >= count) break;
        const std::string stem = dir + "/" + std::to_string(written++);
        io::write_ply_points(stem + "_input.ply", v.input);
        io::write_ply_points(stem + "_visible.ply", v.visible);
        io::write_ply_points(stem + "_predicted.ply", v.predicted);
        auto colors = torch::cat({torch::full({v.visible.size(0), 3}, 160, torch::kUInt8),
                                  torch::tensor({220, 40, 40}, torch::kUInt8).expand({v.predicted.size(0), 3})});
        io::write_ply_points(stem + "_combined.ply", torch::cat({v.visible, v.predicted}), colors);
      }
    return written;
  });
}

}  // namespace ewa::eval
