// Mini-batches of an ImageDataset as normalised float tensors, with the 2D augmentations
// (random crop with zero padding, horizontal flip). Data order is a pure function of
// (seed, epoch), so a resumed run sees the same order; augmentation draws from torch's
// default generator, whose state the checkpoint stores.
#pragma once
#include <torch/torch.h>

#include "data/batch_source.h"
#include "data/erasing.h"
#include "datasets/image_datasets.h"

namespace ewa::datasets {

struct Augment {
  int64_t crop_padding = 0;  // 0 = no random crop
  bool hflip = false;
  data::ErasingSettings erasing;  // training batches only (not test-time augmentation)
};

class ImageBatcher : public data::IndexedBatchSource {
 public:
  ImageBatcher(ImageDataset ds, int64_t batch_size, bool shuffle, uint64_t seed, Augment augment = {},
               bool drop_last = false);

  // Batch i of the current epoch: images float [B, C, H, W] (normalised), labels int64 [B];
  // data::View::Augmented and data::View::Training apply the crop and flip; data::View::VoteView is an error (the
  // official vote resamples point clouds).
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, data::View view) const override;

 private:
  ImageDataset ds_;
  Augment augment_;
  torch::Tensor mean_, inv_std_;
};

// Loads an image dataset (data.dataset of images) as train / val / test sources.
data::TaskData load_image_task(const DataConfig& cfg, uint64_t seed, data::Use use = data::Use::Training);

// Random crop of each image from its zero-padded copy (shifts in [-pad, pad]), [B, C, H, W];
// drawn from `gen` (torch's default CPU generator when none).
torch::Tensor random_crop(const torch::Tensor& images, int64_t pad, std::optional<at::Generator> gen = std::nullopt);
// data.reprob / remode / recount as timm's RandomErasing settings.
data::ErasingSettings erasing_settings(const DataConfig& cfg);
// Random erasing of every image of a normalised batch (float [B, C, H, W], in place), image by
// image, drawn from `gen` (torch's default CPU generator when none).
void erase_images(torch::Tensor& images, const data::ErasingSettings& s, std::optional<at::Generator> gen = std::nullopt);
// Flips each image left-right with probability 1/2.
torch::Tensor random_hflip(const torch::Tensor& images);

}  // namespace ewa::datasets
