#include "data/image_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"

namespace ewa::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // as Pillow: 8 bits of result, 2 of headroom

double bilinear(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic(double x) {  // a = -0.5
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// The taps of one pass: for each output position its first input index, its count, and its
// fixed-point weights (ksize per position), as Pillow's precompute_coeffs and
// normalize_coeffs_8bpc compute them (the box is the whole input: in0 = 0, in1 = in_size).
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

Taps taps(int in_size, int out_size, Resample filter) {
  const double support_1 = filter == Resample::Bicubic ? 2.0 : 1.0;
  double (*kernel)(double) = filter == Resample::Bicubic ? bicubic : bilinear;
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);  // Pillow's box is float
  const double scale = double(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = support_1 * filterscale;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(size_t(out_size));
  t.count.resize(size_t(out_size));
  t.weights.assign(size_t(out_size) * size_t(t.ksize), 0);
  std::vector<double> k(size_t(t.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[size_t(x)] = kernel((x + xmin - center + 0.5) * ss);
      ww += k[size_t(x)];
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[size_t(x)] / ww : k[size_t(x)];
      t.weights[size_t(xx) * size_t(t.ksize) + size_t(x)] =
          w < 0 ? static_cast<int32_t>(-0.5 + w * (1 << kPrecisionBits)) : static_cast<int32_t>(0.5 + w * (1 << kPrecisionBits));
    }
    t.first[size_t(xx)] = xmin;
    t.count[size_t(xx)] = xmax;
  }
  return t;
}

inline uint8_t clip8(int32_t v) {
  const int32_t s = v >> kPrecisionBits;
  return static_cast<uint8_t>(s < 0 ? 0 : s > 255 ? 255 : s);
}

}  // namespace

torch::Tensor resize_like_pil(const torch::Tensor& image, int64_t out_h, int64_t out_w, Resample filter) {
  if (image.dim() != 3 || image.scalar_type() != torch::kUInt8 || !image.device().is_cpu())
    fail("resize_like_pil: expected a uint8 CPU image [H, W, C], got " + std::string(image.toString()) + " " +
         c10::str(image.sizes()));
  if (out_h <= 0 || out_w <= 0) fail("resize_like_pil: the output size must be positive");
  const auto in = image.contiguous();
  const int H = static_cast<int>(in.size(0)), W = static_cast<int>(in.size(1));
  const int64_t C = in.size(2);
  const bool horizontal = out_w != W, vertical = out_h != H;
  if (!horizontal && !vertical) return in.clone();
  const Taps vt = taps(H, static_cast<int>(out_h), filter);
  // The horizontal pass covers only the rows the vertical one reads, as Pillow's does.
  const int y_first = vertical ? vt.first[0] : 0;
  const int y_last = vertical ? vt.first[size_t(out_h) - 1] + vt.count[size_t(out_h) - 1] : H;
  torch::Tensor mid = in.narrow(0, y_first, y_last - y_first);
  if (horizontal) {
    const Taps ht = taps(W, static_cast<int>(out_w), filter);
    auto out = torch::empty({y_last - y_first, out_w, C}, torch::kUInt8);
    const uint8_t* src = in.data_ptr<uint8_t>();
    uint8_t* dst = out.data_ptr<uint8_t>();
    at::parallel_for(0, y_last - y_first, 16, [&](int64_t y0, int64_t y1) {
      std::vector<int32_t> acc(static_cast<size_t>(C), 0);
      for (int64_t y = y0; y < y1; ++y) {
        const uint8_t* row = src + (size_t(y + y_first) * size_t(W)) * size_t(C);
        for (int64_t xx = 0; xx < out_w; ++xx) {
          const int32_t* k = ht.weights.data() + size_t(xx) * size_t(ht.ksize);
          const int xmin = ht.first[size_t(xx)], n = ht.count[size_t(xx)];
          std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
          for (int x = 0; x < n; ++x)
            for (int64_t c = 0; c < C; ++c) acc[size_t(c)] += int32_t(row[size_t(x + xmin) * size_t(C) + size_t(c)]) * k[x];
          for (int64_t c = 0; c < C; ++c) dst[(size_t(y) * size_t(out_w) + size_t(xx)) * size_t(C) + size_t(c)] = clip8(acc[size_t(c)]);
        }
      }
    });
    mid = out;
  } else {
    mid = mid.contiguous();
  }
  if (!vertical) return mid;
  const int64_t MW = mid.size(1);
  auto out = torch::empty({out_h, MW, C}, torch::kUInt8);
  const uint8_t* src = mid.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  at::parallel_for(0, out_h, 16, [&](int64_t y0, int64_t y1) {
    for (int64_t yy = y0; yy < y1; ++yy) {
      const int32_t* k = vt.weights.data() + size_t(yy) * size_t(vt.ksize);
      const int ymin = vt.first[size_t(yy)] - y_first, n = vt.count[size_t(yy)];
      for (int64_t i = 0; i < MW * C; ++i) {
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (int y = 0; y < n; ++y) acc += int32_t(src[size_t(ymin + y) * size_t(MW * C) + size_t(i)]) * k[y];
        dst[size_t(yy) * size_t(MW * C) + size_t(i)] = clip8(acc);
      }
    }
  });
  return out;
}

torch::Tensor resize_shorter_side(const torch::Tensor& image, int64_t size, Resample filter) {
  const int64_t h = image.size(0), w = image.size(1);
  const bool wide = w >= h;
  const int64_t shorter = wide ? h : w, longer = wide ? w : h;
  if (shorter == size) return image;  // torchvision returns the image unchanged
  const auto new_long = static_cast<int64_t>(double(size) * double(longer) / double(shorter));
  return wide ? resize_like_pil(image, size, new_long, filter) : resize_like_pil(image, new_long, size, filter);
}

torch::Tensor center_crop(const torch::Tensor& image, int64_t size) {
  auto img = image;
  int64_t h = img.size(0), w = img.size(1);
  if (h < size || w < size) {  // torchvision pads: left/top = (size - w) // 2, the rest right/bottom
    const int64_t pad_w = std::max<int64_t>(0, size - w), pad_h = std::max<int64_t>(0, size - h);
    img = torch::constant_pad_nd(img, {0, 0, pad_w / 2, pad_w - pad_w / 2, pad_h / 2, pad_h - pad_h / 2}, 0);
    h = img.size(0), w = img.size(1);
  }
  const auto top = static_cast<int64_t>(std::nearbyint(double(h - size) / 2.0));  // round half to even
  const auto left = static_cast<int64_t>(std::nearbyint(double(w - size) / 2.0));
  return img.narrow(0, top, size).narrow(1, left, size).contiguous();
}

CropBox random_resized_crop_box(int64_t height, int64_t width, double scale_lo, double scale_hi, double ratio_lo,
                                double ratio_hi, std::optional<at::Generator> gen) {
  const double area = double(height) * double(width);
  const auto log_ratio = torch::log(torch::tensor({ratio_lo, ratio_hi}, torch::kFloat));  // float32, as torch.tensor(ratio)
  const double lo = log_ratio[0].item<double>(), hi = log_ratio[1].item<double>();
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * torch::empty({1}, torch::kFloat).uniform_(scale_lo, scale_hi, gen).item<double>();
    const double aspect = torch::exp(torch::empty({1}, torch::kFloat).uniform_(lo, hi, gen)).item<double>();
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area * aspect)));  // Python's round: half to even
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      CropBox b;
      b.height = h, b.width = w;
      b.top = torch::randint(0, height - h + 1, {1}, gen, torch::kLong).item<int64_t>();
      b.left = torch::randint(0, width - w + 1, {1}, gen, torch::kLong).item<int64_t>();
      return b;
    }
  }
  CropBox b;  // the fallback: the centre crop, its ratio clamped into the range
  const double in_ratio = double(width) / double(height);
  if (in_ratio < std::min(ratio_lo, ratio_hi)) {
    b.width = width;
    b.height = static_cast<int64_t>(std::nearbyint(double(b.width) / std::min(ratio_lo, ratio_hi)));
  } else if (in_ratio > std::max(ratio_lo, ratio_hi)) {
    b.height = height;
    b.width = static_cast<int64_t>(std::nearbyint(double(b.height) * std::max(ratio_lo, ratio_hi)));
  } else {
    b.width = width, b.height = height;
  }
  b.top = (height - b.height) / 2;
  b.left = (width - b.width) / 2;
  return b;
}

torch::Tensor evaluation_crop(const torch::Tensor& image, int64_t size, double crop_pct, Resample filter) {
  const auto resized = static_cast<int64_t>(std::floor(double(size) / crop_pct));  // timm: int(math.floor(size / crop_pct))
  return center_crop(resize_shorter_side(image, resized, filter), size);
}

const std::vector<float>& imagenet_mean() {
  static const std::vector<float> m = {0.485f, 0.456f, 0.406f};
  return m;
}
const std::vector<float>& imagenet_std() {
  static const std::vector<float> s = {0.229f, 0.224f, 0.225f};
  return s;
}

torch::Tensor to_normalized_chw(const torch::Tensor& image, const std::vector<float>& mean, const std::vector<float>& std) {
  auto x = image.permute({2, 0, 1}).to(torch::kFloat).div_(255.0f);
  return x.sub_(torch::tensor(mean).view({-1, 1, 1})).div_(torch::tensor(std).view({-1, 1, 1}));
}

}  // namespace ewa::data
