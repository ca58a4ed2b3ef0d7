// Image classification datasets in their published on-disk formats (datasets/README.md):
//   fashion_mnist, mnist: IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
//     t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), gzip-compressed (.gz) or raw.
//   cifar10: cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin, records of
//     <1 label byte><3072 pixel bytes: 1024 R, 1024 G, 1024 B, row-major 32x32>.
//   cifar100: cifar-100-binary/{train,test}.bin, records of <coarse byte><fine byte><3072 bytes>;
//     the fine label (100 classes) is used.
#pragma once
#include <array>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "config/config.h"

namespace ewa::datasets {

struct ImageDataset {
  torch::Tensor images;  // uint8 [N, C, H, W]
  torch::Tensor labels;  // int64 [N], in [0, num_classes)
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<float> mean, std;  // per-channel normalisation of pixel/255

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  int64_t channels() const { return images.size(1); }
  int64_t image_size() const { return images.size(2); }
};

struct ImageSplits {
  ImageDataset train, val, test;  // val is empty unless data.val_fraction > 0
  std::vector<std::string> notes;  // what loading did worth saying (subsets)
};

// Reads an IDX images/labels pair. Throws ewa::Error naming the file and the problem
// (missing, bad magic, truncated, count mismatch, label out of range).
ImageDataset read_idx(const std::string& images_path, const std::string& labels_path, int64_t num_classes);

// Reads CIFAR binary batch files; label_bytes is 1 (CIFAR-10) or 2 (CIFAR-100, fine label).
ImageDataset read_cifar(const std::vector<std::string>& files, int64_t label_bytes, int64_t num_classes);

// Loads the train/test splits of cfg.dataset from cfg.root, applies train/test limits and carves
// the validation split (seeded) from the training set.
ImageSplits load_image_splits(const DataConfig& cfg, uint64_t seed);
// The image datasets load_image_splits reads (its table of formats).
std::vector<std::string> image_dataset_names();

// Rows `index` of a dataset (shares metadata).
ImageDataset subset(const ImageDataset& ds, const torch::Tensor& index);

}  // namespace ewa::datasets
