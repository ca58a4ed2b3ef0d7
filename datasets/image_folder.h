// Users' image folders, and Tiny-ImageNet in its released layout: the files of each split with
// their classes, decoded once (io/image_file.h: as PIL's convert("RGB") reads them) and kept in
// the data cache, so later runs read pixels, not files.
//   image_folder: <root>/train/<class>/.../<image> and <root>/val/<class>/.../<image>, the layout
//     torchvision's ImageFolder reads (timm and DeiT train from it): the classes are the folders
//     of train/ in sorted order; a class's images are the files below its folder, at any depth,
//     whose names end in .png, .jpg, .jpeg or .bmp (any case), in sorted order (folder, then
//     name, as ImageFolder walks them). A file with one of the other extensions ImageFolder
//     reads (.ppm .pgm .tif .tiff .webp) is refused by name, so no image is left out silently;
//     other files are skipped, as ImageFolder skips them. Every folder of val/ must be a class of
//     train/ (ImageFolder would number val's classes on their own and mislabel them).
//   tiny_imagenet: <root>/wnids.txt (the 200 classes), <root>/words.txt (optional: their names),
//     <root>/train/<wnid>/images/*.JPEG, and <root>/val/images/*.JPEG labelled by
//     <root>/val/val_annotations.txt ("<file> TAB <wnid> TAB <box>"). The classes in sorted wnid
//     order (what ImageFolder gives on train/, as Tiny-ImageNet's users read it); test/ has no
//     labels and is not read.
// val/ is what ewa evaluates as its test split (DeiT and timm report ImageNet's val);
// data.val_fraction carves a validation split from train/ as for every dataset.
#pragma once
#include <string>
#include <vector>

#include <torch/torch.h>

#include "config/config.h"
#include "data/batch_source.h"
#include "data/erasing.h"
#include "data/image_ops.h"

namespace ewa::datasets {

struct ImageFileSplit {
  std::vector<std::string> files;
  std::vector<int64_t> labels;
};

struct ImageFileListing {
  std::vector<std::string> class_names;  // folder names (wnids for tiny_imagenet)
  std::vector<std::string> class_words;  // tiny_imagenet: words.txt's names of the classes; else empty
  ImageFileSplit train, val;
};

// The listings; one-line errors name the folder or file and what was expected.
ImageFileListing list_image_folder(const std::string& root);
ImageFileListing list_tiny_imagenet(const std::string& root);

// The decoded images of one split, of any sizes, in one buffer.
struct DecodedImages {
  torch::Tensor pixels;   // uint8 [total]: every image's [H, W, 3] bytes, one after another
  torch::Tensor offsets;  // int64 [N]: where each image starts in `pixels`
  torch::Tensor shapes;   // int64 [N, 2]: height, width
  torch::Tensor labels;   // int64 [N]
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  int64_t height(int64_t i) const { return shapes.data_ptr<int64_t>()[2 * i]; }
  int64_t width(int64_t i) const { return shapes.data_ptr<int64_t>()[2 * i + 1]; }
  torch::Tensor image(int64_t i) const;  // uint8 [H, W, 3], a view into `pixels`
};

// Decodes the files of `split` (on every thread); the first file that fails stops it with its
// one-line error.
DecodedImages decode_images(const ImageFileSplit& split);

struct DecodedSplits {
  DecodedImages train, val;
  std::vector<std::string> notes;  // what the cache did
};

// The splits of `listing` decoded: read from the data cache file
// <cache_dir_for(cache_dir, root)>/<dataset>_images_<fingerprint>.pt when there is one (its key
// holds every file's path, size and time and the decoder's version), else decoded and written
// there. A cache file that cannot be read is decoded again; one that cannot be written only costs
// time; `notes` says which happened.
DecodedSplits load_decoded(const ImageFileListing& listing, const std::string& dataset, const std::string& root,
                           const std::string& cache_dir);

// The folder datasets' names (data.dataset): image_folder, tiny_imagenet.
std::vector<std::string> folder_dataset_names();

// What a folder dataset feeds the model, as timm's and DeiT's pipelines make it from PIL images:
// training (View::Training and View::Augmented) torchvision's RandomResizedCrop(image_size,
// scale=(data.rrc_scale_min, 1), ratio=(3/4, 4/3)), a horizontal flip with probability 1/2 when
// data.hflip, and data.random_crop_padding's shifted crop when it is not 0; evaluation
// (View::Plain) Resize(floor(image_size / crop_pct)) and CenterCrop(image_size); then ToTensor and
// Normalize with ImageNet's mean and std, and for training batches random erasing (data.reprob:
// data/erasing.h) after it. Random draws come image by image in torchvision's order
// (the crop, then the flip), the erasing draws after every image's crop and flip: a training
// step's from a generator of the batch's own seeded by the step (so the loop builds the next
// batch while a step runs: data::BatchSource::builds_ahead), test-time augmentation's from
// torch's default CPU generator.
struct FolderTransform {
  int64_t image_size = 224;
  double crop_pct = 0.875, rrc_scale_min = 0.08;
  data::Resample filter = data::Resample::Bicubic;  // data.interpolation
  bool hflip = true;
  int64_t crop_padding = 0;
  data::ErasingSettings erasing;  // training batches only, after Normalize (timm's RandomErasing)
};
// The training transform's draws for one image of `height` x `width` (the crop box, then the flip),
// and the transform with given draws: uint8 [image_size, image_size, 3].
struct TrainingDraw {
  data::CropBox box;
  bool flip = false;
};
TrainingDraw draw_training(int64_t height, int64_t width, const FolderTransform& t,
                           std::optional<at::Generator> gen = std::nullopt);
torch::Tensor apply_training(const torch::Tensor& image, const TrainingDraw& d, const FolderTransform& t);
torch::Tensor apply_evaluation(const torch::Tensor& image, const FolderTransform& t);

// Loads a folder dataset (listing, decoded images from the cache, data.train_limit /
// train_per_class / test_limit / val_fraction applied) as train / val / test sources.
data::TaskData load_folder_task(const DataConfig& cfg, uint64_t seed, data::Use use = data::Use::Training);

}  // namespace ewa::datasets
