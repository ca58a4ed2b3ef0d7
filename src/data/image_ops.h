// Image operations of the input pipeline on 8-bit images [H, W, C] (uint8, CPU), written to give
// the bytes PIL gives, since timm's and torchvision's transforms run on PIL images: a model
// trained or evaluated here sees the pixels it would see there.
#pragma once
#include <cstdint>

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

}  // namespace ewa::data
