#include "datasets/image_loader.h"

#include "common/error.h"

namespace ewa::datasets {
using data::IndexedBatchSource;
using data::TaskData;
using data::Use;
using data::View;

ImageBatcher::ImageBatcher(ImageDataset ds, int64_t batch_size, bool shuffle, uint64_t seed, Augment augment, bool drop_last)
    : IndexedBatchSource(ds.size(), batch_size, shuffle, seed, drop_last), ds_(std::move(ds)), augment_(augment) {
  mean_ = torch::tensor(ds_.mean).view({1, -1, 1, 1});
  inv_std_ = 1.0 / torch::tensor(ds_.std).view({1, -1, 1, 1});
}

std::pair<torch::Tensor, torch::Tensor> ImageBatcher::batch(int64_t i, View view) const {
  if (view == View::VoteView) fail("the official vote (eval protocol 'vote') resamples point clouds; images have the protocols single and tta");
  const bool augment = view != View::Plain;
  auto idx = indices(i);
  auto x = ds_.images.index_select(0, idx).to(torch::kFloat).div_(255.0f);
  if (augment && augment_.crop_padding > 0) x = random_crop(x, augment_.crop_padding);
  if (augment && augment_.hflip) x = random_hflip(x);
  x = (x - mean_) * inv_std_;
  if (view == View::Training) erase_images(x, augment_.erasing);
  return {x, ds_.labels.index_select(0, idx)};
}

TaskData load_image_task(const DataConfig& cfg, uint64_t seed, Use use) {
  auto splits = load_image_splits(cfg, seed);
  TaskData t;
  t.description = cfg.dataset + " (" + cfg.root + ")";
  t.num_classes = splits.train.num_classes;
  t.class_names = splits.train.class_names;
  t.img_size = splits.train.image_size();
  t.in_chans = splits.train.channels();
  t.notes = splits.notes;
  const Augment augment{cfg.random_crop_padding, cfg.hflip, erasing_settings(cfg)};
  const bool training = use == Use::Training;
  t.train = std::make_unique<ImageBatcher>(splits.train, cfg.batch_size, /*shuffle=*/training, seed, augment,
                                           /*drop_last=*/training && cfg.drop_last);
  if (splits.val.size() > 0) t.val = std::make_unique<ImageBatcher>(splits.val, cfg.eval_batch_size, false, seed, augment);
  t.test = std::make_unique<ImageBatcher>(splits.test, cfg.eval_batch_size, false, seed, augment);
  return t;
}

torch::Tensor random_crop(const torch::Tensor& images, int64_t pad, std::optional<at::Generator> gen) {
  const int64_t b = images.size(0), h = images.size(2), w = images.size(3);
  auto padded = torch::constant_pad_nd(images, {pad, pad, pad, pad}, 0.0);
  auto shifts = torch::randint(0, 2 * pad + 1, {b, 2}, gen, torch::kLong);
  auto acc = shifts.accessor<int64_t, 2>();
  auto out = torch::empty_like(images);
  for (int64_t i = 0; i < b; ++i) out[i].copy_(padded[i].narrow(1, acc[i][0], h).narrow(2, acc[i][1], w));
  return out;
}

data::ErasingSettings erasing_settings(const DataConfig& cfg) {
  data::ErasingSettings s;
  s.probability = cfg.reprob;
  s.mode = cfg.remode;
  s.max_count = cfg.recount;  // DeiT: RandomErasing(reprob, mode=remode, max_count=recount)
  return s;
}

void erase_images(torch::Tensor& images, const data::ErasingSettings& s, std::optional<at::Generator> gen) {
  if (s.probability <= 0) return;
  data::GeneratorDraws draws(std::move(gen));
  for (int64_t k = 0; k < images.size(0); ++k)
    data::apply_erasing(images[k], data::draw_erasing(s, images.size(1), images.size(2), images.size(3), draws));
}

torch::Tensor random_hflip(const torch::Tensor& images) {
  auto flip = torch::rand({images.size(0)}) < 0.5;
  return torch::where(flip.view({-1, 1, 1, 1}), images.flip({3}), images);
}

}  // namespace ewa::datasets
