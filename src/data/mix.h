// Mixup and CutMix of a training batch with their soft targets, as timm 0.4.5's Mixup runs them in
// DeiT's recipe (timm/data/mixup.py: Mixup in mode "batch", correct_lam on, no cutmix_minmax):
// with probability `prob` the batch is mixed with itself in reverse order, by CutMix (with
// probability `switch_prob` when both are on) or by Mixup, with lambda ~ Beta(alpha, alpha); the
// targets are the label-smoothed one-hot rows mixed by the same lambda (for CutMix the share of
// the image the box leaves, after clipping it to the image).
#pragma once
#include <optional>

#include <torch/torch.h>

#include "data/draws.h"

namespace ewa::data {

struct MixSettings {
  double mixup_alpha = 0, cutmix_alpha = 0;  // data.mixup, data.cutmix: 0 = off
  double prob = 1.0, switch_prob = 0.5;      // data.mixup_prob, data.mixup_switch_prob
  double label_smoothing = 0.1;              // optim.label_smoothing
  int64_t num_classes = 0;
  bool enabled() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
};

// What one batch's mix drew, in timm's order of draws (_params_per_batch, then rand_bbox).
struct MixDraw {
  double u_prob = 0;     // uniform [0, 1): mixed when < prob
  double u_switch = 0;   // uniform [0, 1): CutMix when < switch_prob (drawn only when both are on)
  double lam = 1;        // the Beta(alpha, alpha) draw (1 when not mixed)
  bool cutmix = false;
  int64_t cy = 0, cx = 0;  // CutMix: the box's centre, uniform in [0, H) and [0, W)
};

// The draws for a batch of H x W images.
MixDraw draw_mix(const MixSettings& s, int64_t height, int64_t width, Draws& draws);

// CutMix's box (timm's rand_bbox): rows [y0, y1) and columns [x0, x1) of an H x W image for
// lambda `lam` centred at (cy, cx), clipped to the image.
struct MixBox {
  int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};
MixBox cutmix_box(int64_t height, int64_t width, double lam, int64_t cy, int64_t cx);

// timm's mixup_target: label-smoothed one-hot rows (off value smoothing / C, on value
// 1 - smoothing + off) of `labels` (int64 [B]) mixed with those of the reversed batch:
// lam * y + (1 - lam) * y.flip(0), float [B, C].
torch::Tensor mix_targets(const torch::Tensor& labels, int64_t num_classes, double lam, double smoothing);

// The mixed batch and its soft targets: `images` float [B, C, H, W] (mixed in place) and
// `labels` int64 [B] -> float [B, num_classes]. A batch the draw leaves unmixed still gets the
// smoothed one-hot targets, as in timm.
torch::Tensor apply_mix(torch::Tensor& images, const torch::Tensor& labels, const MixDraw& d, const MixSettings& s);

// timm's SoftTargetCrossEntropy: mean over the batch of sum_c -target_c * log_softmax(logits)_c.
torch::Tensor soft_target_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace ewa::data
