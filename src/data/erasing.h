// Random erasing of normalised images, as timm 0.4.5's RandomErasing runs in DeiT's training
// transform (timm/data/random_erasing.py, applied per image after Normalize, device cpu,
// num_splits 0): with probability `probability` each image gets `count` boxes (count uniform in
// [min_count, max_count]), each of a target area share uniform in [min_area, max_area] / count
// and a log-uniform aspect ratio in [min_aspect, 1 / min_aspect], up to ten tries to fit one
// strictly inside the image, filled with zeros (const), one normal draw per channel (rand) or
// per pixel (pixel).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/draws.h"

namespace ewa::data {

struct ErasingSettings {
  double probability = 0;                // data.reprob: 0 = off
  std::string mode = "pixel";            // data.remode: const, rand or pixel
  int64_t min_count = 1, max_count = 1;  // data.recount is max_count
  double min_area = 0.02, max_area = 1.0 / 3.0, min_aspect = 0.3;
};

struct ErasingBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// What erasing one image drew, in timm's order: random.random() (erased when not above the
// probability), the count (random.randint, only when min_count < max_count), then per box its
// tries' area share and log aspect (random.uniform) until one fits, the fitted box's top and left
// (random.randint) and its fill.
struct ErasingDraw {
  double u = 1;
  int64_t count = 0;                 // 0: not erased
  std::vector<ErasingBox> boxes;
  std::vector<torch::Tensor> fills;  // float [C, h, w] (pixel) or [C, 1, 1] (rand, const)
};

// The draws for one C x H x W image.
ErasingDraw draw_erasing(const ErasingSettings& s, int64_t channels, int64_t height, int64_t width, Draws& draws);

// Fills the drawn boxes of `image` (float [C, H, W]) in place.
void apply_erasing(torch::Tensor image, const ErasingDraw& d);

}  // namespace ewa::data
