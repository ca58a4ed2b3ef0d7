#include "datasets/image_loader.h"

namespace ewa::data {

ImageBatcher::ImageBatcher(const ImageDataset& ds, int64_t batch_size, bool shuffle, uint64_t seed, Augment augment)
    : ds_(ds), batch_size_(batch_size), shuffle_(shuffle), seed_(seed), augment_(augment) {
  mean_ = torch::tensor(ds.mean).view({1, -1, 1, 1});
  inv_std_ = 1.0 / torch::tensor(ds.std).view({1, -1, 1, 1});
  order_ = torch::arange(ds.size());
}

int64_t ImageBatcher::num_batches() const { return (ds_.size() + batch_size_ - 1) / batch_size_; }

void ImageBatcher::start_epoch(int64_t epoch) {
  if (!shuffle_) return;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed_ * 1000003ULL + static_cast<uint64_t>(epoch));
  order_ = torch::randperm(ds_.size(), gen, torch::kLong);
}

std::pair<torch::Tensor, torch::Tensor> ImageBatcher::batch(int64_t i) const {
  const int64_t start = i * batch_size_;
  const int64_t len = std::min(batch_size_, ds_.size() - start);
  auto idx = order_.narrow(0, start, len);
  auto x = ds_.images.index_select(0, idx).to(torch::kFloat).div_(255.0f);
  if (augment_.crop_padding > 0) x = random_crop(x, augment_.crop_padding);
  if (augment_.hflip) x = random_hflip(x);
  x = (x - mean_) * inv_std_;
  return {x, ds_.labels.index_select(0, idx)};
}

torch::Tensor random_crop(const torch::Tensor& images, int64_t pad) {
  const int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  auto padded = torch::constant_pad_nd(images, {pad, pad, pad, pad}, 0.0);
  auto shifts = torch::randint(0, 2 * pad + 1, {b, 2}, torch::kLong);
  auto acc = shifts.accessor<int64_t, 2>();
  auto out = torch::empty_like(images);
  for (int64_t i = 0; i < b; ++i) out[i].copy_(padded[i].narrow(1, acc[i][0], h).narrow(2, acc[i][1], w));
  return out;
}

torch::Tensor random_hflip(const torch::Tensor& images) {
  auto flip = torch::rand({images.size(0)}) < 0.5;
  return torch::where(flip.view({-1, 1, 1, 1}), images.flip({3}), images);
}

}  // namespace ewa::data
