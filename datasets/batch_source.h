// What the trainer needs from any dataset split: batches of (inputs, labels) in an order fixed
// by (seed, epoch), optionally augmented.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace ewa::data {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_batches() const = 0;
  // Fixes the order of the coming epoch (a no-op for unshuffled sources).
  virtual void start_epoch(int64_t epoch) = 0;
  // Batch i of the current epoch: inputs (float, model-ready) and int64 labels [B]. With
  // `augment` the split's augmentation is applied (drawing from torch's default generator).
  virtual std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, bool augment) const = 0;
};

// The batching every in-memory split shares: batch i holds rows order[i*B, (i+1)*B) where the
// order is a permutation fixed by (seed, epoch) when shuffled, and the identity otherwise.
class IndexedBatchSource : public BatchSource {
 public:
  IndexedBatchSource(int64_t size, int64_t batch_size, bool shuffle, uint64_t seed);
  int64_t size() const override { return size_; }
  int64_t num_batches() const override;
  void start_epoch(int64_t epoch) override;

 protected:
  // Row indices (int64) of batch i of the current epoch.
  torch::Tensor indices(int64_t i) const;

 private:
  int64_t size_, batch_size_;
  bool shuffle_;
  uint64_t seed_;
  torch::Tensor order_;
};

// A dataset ready for training: its splits and the facts a model config is resolved from.
struct TaskData {
  std::string description;  // e.g. "fashion_mnist (/usr/share/datasets/fashion-mnist)"
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  int64_t img_size = 0;     // images: height = width; 0 for point clouds
  int64_t in_chans = 0;     // image channels, or point channels (3 or 6)
  int64_t num_points = 0;   // point clouds: points per sample fed to the model
  std::unique_ptr<BatchSource> train;  // shuffled
  std::unique_ptr<BatchSource> val;    // null when there is no validation split
  std::unique_ptr<BatchSource> test;
};

}  // namespace ewa::data
