#include "data/mix.h"

#include <algorithm>
#include <cmath>

namespace ewa::data {

MixDraw draw_mix(const MixSettings& s, int64_t height, int64_t width, Draws& draws) {
  MixDraw d;
  if (!s.enabled()) return d;
  d.u_prob = draws.uniform(0.0, 1.0);
  if (!(d.u_prob < s.prob)) return d;
  if (s.mixup_alpha > 0 && s.cutmix_alpha > 0) {
    d.u_switch = draws.uniform(0.0, 1.0);
    d.cutmix = d.u_switch < s.switch_prob;
  } else {
    d.cutmix = s.cutmix_alpha > 0;
  }
  d.lam = draws.beta(d.cutmix ? s.cutmix_alpha : s.mixup_alpha);
  if (d.cutmix) {  // np.random.randint(0, H), then (0, W)
    d.cy = draws.randint(0, height);
    d.cx = draws.randint(0, width);
  }
  return d;
}

MixBox cutmix_box(int64_t height, int64_t width, double lam, int64_t cy, int64_t cx) {
  const double ratio = std::sqrt(1.0 - lam);
  const auto cut_h = static_cast<int64_t>(double(height) * ratio), cut_w = static_cast<int64_t>(double(width) * ratio);
  MixBox b;  // np.clip(c -/+ cut // 2, 0, size)
  b.y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, height);
  b.y1 = std::clamp<int64_t>(cy + cut_h / 2, 0, height);
  b.x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, width);
  b.x1 = std::clamp<int64_t>(cx + cut_w / 2, 0, width);
  return b;
}

torch::Tensor mix_targets(const torch::Tensor& labels, int64_t num_classes, double lam, double smoothing) {
  const double off = smoothing / double(num_classes), on = 1.0 - smoothing + off;
  auto one_hot = [&](const torch::Tensor& l) {
    return torch::full({l.size(0), num_classes}, off, torch::TensorOptions(torch::kFloat).device(l.device()))
        .scatter_(1, l.view({-1, 1}).to(torch::kLong), on);
  };
  return one_hot(labels) * lam + one_hot(labels.flip(0)) * (1.0 - lam);
}

torch::Tensor apply_mix(torch::Tensor& images, const torch::Tensor& labels, const MixDraw& d, const MixSettings& s) {
  double lam = d.lam;
  if (lam != 1.0) {
    torch::NoGradGuard no_grad;
    if (d.cutmix) {
      const int64_t h = images.size(2), w = images.size(3);
      const MixBox b = cutmix_box(h, w, lam, d.cy, d.cx);
      const auto flipped = images.flip(0);  // a copy: the box comes from the batch as it was
      images.narrow(2, b.y0, b.y1 - b.y0).narrow(3, b.x0, b.x1 - b.x0)
          .copy_(flipped.narrow(2, b.y0, b.y1 - b.y0).narrow(3, b.x0, b.x1 - b.x0));
      lam = 1.0 - double((b.y1 - b.y0) * (b.x1 - b.x0)) / double(h * w);  // correct_lam: the box as clipped
    } else {
      const auto flipped = images.flip(0).mul_(1.0 - lam);
      images.mul_(lam).add_(flipped);
    }
  }
  return mix_targets(labels, s.num_classes, lam, s.label_smoothing);
}

torch::Tensor soft_target_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::sum(-targets * torch::log_softmax(logits, -1), -1).mean();
}

}  // namespace ewa::data
