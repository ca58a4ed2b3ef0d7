#include "data/erasing.h"

#include <cmath>

namespace ewa::data {

ErasingDraw draw_erasing(const ErasingSettings& s, int64_t channels, int64_t height, int64_t width, Draws& draws) {
  ErasingDraw d;
  if (s.probability <= 0) return d;
  d.u = draws.uniform(0.0, 1.0);
  if (d.u > s.probability) return d;  // timm: if random.random() > probability: return
  d.count = s.min_count == s.max_count ? s.min_count : draws.randint(s.min_count, s.max_count + 1);
  const double area = double(height) * double(width);
  const double log_lo = std::log(s.min_aspect), log_hi = std::log(1.0 / s.min_aspect);
  for (int64_t c = 0; c < d.count; ++c) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double share = draws.uniform(s.min_area, s.max_area);
      const double log_aspect = draws.uniform(log_lo, log_hi);
      const double target = share * area / double(d.count), aspect = std::exp(log_aspect);
      const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));  // int(round(...)): half to even
      const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
      if (w < width && h < height) {
        ErasingBox b;
        b.top = draws.randint(0, height - h + 1);  // random.randint(0, H - h): inclusive
        b.left = draws.randint(0, width - w + 1);
        b.height = h, b.width = w;
        d.boxes.push_back(b);
        if (s.mode == "pixel")
          d.fills.push_back(draws.normal({channels, h, w}));
        else if (s.mode == "rand")
          d.fills.push_back(draws.normal({channels, 1, 1}));
        else
          d.fills.push_back(torch::zeros({channels, 1, 1}, torch::kFloat));
        break;
      }
    }
  }
  return d;
}

void apply_erasing(torch::Tensor image, const ErasingDraw& d) {
  for (size_t k = 0; k < d.boxes.size(); ++k) {
    const auto& b = d.boxes[k];
    image.narrow(1, b.top, b.height).narrow(2, b.left, b.width).copy_(d.fills[k]);
  }
}

}  // namespace ewa::data
