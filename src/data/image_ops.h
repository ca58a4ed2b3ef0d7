// Image operations of the input pipeline on 8-bit images [H, W, C] (uint8, CPU), written to give
// the bytes PIL gives, since timm's and torchvision's transforms run on PIL images: a model
// trained or evaluated here sees the pixels it would see there.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include <torch/torch.h>

namespace ewa::data {

enum class Resample { Bilinear, Bicubic };

// PIL's Image.resize((out_w, out_h), resample) of `image` [H, W, C] uint8: Pillow's separable
// two-pass filter (libImaging/Resample.c: horizontal pass first, the filter's support widened by
// the reduction factor, so a reduction is antialiased; bicubic with a = -0.5; coefficients in
// 22-bit fixed point, each pass rounded and clipped to 8 bits). Identical output, byte for byte.
torch::Tensor resize_like_pil(const torch::Tensor& image, int64_t out_h, int64_t out_w, Resample filter);

// torchvision's Resize(size) of a PIL image: the shorter side to `size`, the longer to
// int(size * long / short), then resize_like_pil.
torch::Tensor resize_shorter_side(const torch::Tensor& image, int64_t size, Resample filter);

// torchvision's CenterCrop(size): the box at top = round((H - size) / 2), left = round((W - size) / 2)
// with Python's round (half to even); an image smaller than `size` is padded with zeros first, as
// torchvision pads it. Returns [size, size, C].
torch::Tensor center_crop(const torch::Tensor& image, int64_t size);

// A crop box: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

// torchvision's RandomResizedCrop.get_params for an image of `height` x `width`: up to ten draws
// of an area share in [scale_lo, scale_hi] and a log-uniform aspect ratio in [ratio_lo, ratio_hi]
// until the box fits, then its position; else the centre crop clamped to the ratio range. Drawn
// from `gen` (torch's default CPU generator when none) with torchvision's own calls (float32
// uniforms, int64 randint), so after the same manual_seed both give the same box.
CropBox random_resized_crop_box(int64_t height, int64_t width, double scale_lo, double scale_hi, double ratio_lo,
                                double ratio_hi, std::optional<at::Generator> gen = std::nullopt);

// timm's evaluation transform (transforms_factory.transforms_imagenet_eval): the shorter side
// resized to floor(size / crop_pct), then the centre size x size crop; uint8 [size, size, 3].
torch::Tensor evaluation_crop(const torch::Tensor& image, int64_t size, double crop_pct, Resample filter);

// ImageNet's mean and std (timm's IMAGENET_DEFAULT_MEAN / _STD), what image folders normalise with.
const std::vector<float>& imagenet_mean();
const std::vector<float>& imagenet_std();

// What torchvision's transforms give as the model's input, float [3, size, size]: the image's
// bytes / 255, minus `mean`, divided by `std` (ToTensor then Normalize, in that order).
torch::Tensor to_normalized_chw(const torch::Tensor& image, const std::vector<float>& mean, const std::vector<float>& std);

}  // namespace ewa::data
