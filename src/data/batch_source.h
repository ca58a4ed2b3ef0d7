// The data interface of the library (the trainer, evaluation, inference): what they need from
// any dataset split, and how they ask for a dataset. What the trainer needs from any dataset split: batches of (inputs, labels) in an order fixed
// by (seed, epoch), in one of the views below.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace ewa {
struct Config;
}

namespace ewa::data {

// How a batch is drawn from the stored samples (docs/protocols.md).
enum class View {
  Plain,      // as stored: images normalised; point clouds the first data.num_points points of their FPS order
  Augmented,  // Plain plus the split's augmentation (test-time augmentation, protocol "tta")
  Training,   // what a training step sees: Augmented, and point clouds resampled every step when
              // data.pipeline = "resample" (shuffle, FPS to data.fps_points, a random num_points of them)
  VoteView,   // one view of the official vote: a random num_points of the first data.fps_points FPS
              // points of each test cloud (one subset for the batch), plus the augmentation; point clouds only
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_batches() const = 0;
  // Samples in global batch i (of every rank together).
  virtual int64_t global_batch_size(int64_t i) const = 0;
  // Fixes the order of the coming epoch (a no-op for unshuffled sources).
  virtual void start_epoch(int64_t epoch) = 0;
  // Where batches go: a source builds them on `device` where it can (point clouds are resampled
  // there, with our FPS kernel on a GPU), and with `world` > 1 ranks batch(i) holds only rank
  // `rank`'s share of global batch i (dist::shard).
  virtual void place(torch::Device device, int64_t rank = 0, int64_t world = 1) = 0;
  // Batch i of the current epoch in `view`: inputs (float, model-ready) and int64 labels [B]
  // (part segmentation: [B, P], the part of every point).
  // Random draws (augmentation, resampling, vote subsets) come from torch's default CPU generator.
  virtual std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, View view) const = 0;
  // Batch i in View::Training for a training step whose draws are seeded `seed`: by default
  // batch(i, View::Training) on torch's default generator seeded to `seed` (with_cpu_seed), which
  // the step's dropout then reseeds. A source that draws this batch from a generator of its own
  // (never the default one) and reads nothing another thread writes says so in builds_ahead():
  // the training loop then builds the next step's batch on a thread of its own while the step
  // runs. Both give the same batch for the same (i, seed).
  virtual std::pair<torch::Tensor, torch::Tensor> training_batch(int64_t i, uint64_t seed) const;
  virtual bool builds_ahead() const { return false; }
};

// The batching every in-memory split shares: batch i holds rows order[i*B, (i+1)*B) where the
// order is a permutation fixed by (seed, epoch) when shuffled, and the identity otherwise. With
// drop_last the last partial batch is left out (as the official training loaders do).
class IndexedBatchSource : public BatchSource {
 public:
  IndexedBatchSource(int64_t size, int64_t batch_size, bool shuffle, uint64_t seed, bool drop_last = false);
  int64_t size() const override { return size_; }
  int64_t num_batches() const override;
  int64_t global_batch_size(int64_t i) const override;
  void start_epoch(int64_t epoch) override;
  void place(torch::Device device, int64_t rank = 0, int64_t world = 1) override;

 protected:
  // Row indices (int64) of this rank's share of batch i of the current epoch.
  torch::Tensor indices(int64_t i) const;
  torch::Device device() const { return device_; }

 private:
  int64_t size_, batch_size_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  torch::Tensor order_;
  torch::Device device_ = torch::kCPU;
  int64_t rank_ = 0, world_ = 1;
};

// The validation split every dataset draws the same way: floor(n * fraction) (at least 1) of
// the n training samples, picked by a permutation seeded from `seed`. Returns the sorted indices
// of the validation samples and of the rest.
std::pair<torch::Tensor, torch::Tensor> validation_split(int64_t n, double fraction, uint64_t seed);

// data.train_per_class: the sorted indices of a class-stratified subset of `labels` (int64 [n]),
// `per_class` of every class (all of a class with fewer), each class drawn on its own stream of
// `seed` (Stream::kSubset, so one class's subset does not depend on the others).
torch::Tensor per_class_subset(const torch::Tensor& labels, int64_t per_class, uint64_t seed);

// data.train_limit's note for the start-up table when the first `limit` samples leave classes
// without training samples ("" when every one of `num_classes` classes is present).
std::string classes_present_note(const torch::Tensor& labels, int64_t num_classes, int64_t limit);

// A dataset ready for training: its splits and the facts a model config is resolved from.
struct TaskData {
  std::string description;  // e.g. "fashion_mnist (/usr/share/datasets/fashion-mnist)"
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  int64_t img_size = 0;     // images: height = width; 0 for point clouds
  int64_t in_chans = 0;     // image channels, or point channels (3 or 6)
  int64_t num_points = 0;   // point clouds: points per sample fed to the model
  std::vector<std::string> notes;  // what loading did worth saying (cache read or written, ...)
  // Part segmentation (labels are int64 [B, P], a part per point; class_names name the parts):
  // the object category of every part, and the categories' names. Empty for classification.
  std::vector<int64_t> part_category;
  std::vector<std::string> category_names;
  std::unique_ptr<BatchSource> train;  // shuffled
  std::unique_ptr<BatchSource> val;    // null when there is no validation split
  std::unique_ptr<BatchSource> test;
};

// What a dataset is loaded for: training (the train split shuffled, data.drop_last as
// configured) or features (every training sample in stored order, none dropped, read as the test
// split is: the SVM probe's training features).
enum class Use { Training, Features };

// The splits a command evaluates or shows (--split): "train", "val", "test".
const std::vector<std::string>& split_names();
// What to load to read `split` sample by sample: Use::Features for train (every sample in stored
// order, read as the test split is), Use::Training otherwise. Fails naming --split for any other name.
Use use_for_split(const std::string& split);
// The source of `split` in `task`; one-line errors naming --split when it is not one of
// split_names() or the task has no validation split.
BatchSource& split_source(TaskData& task, const std::string& split);

// How the library gets a dataset. The library never reads datasets itself: the commands pass it
// the dataset library's loader (datasets/registry.h: datasets::load_task), tests may pass their own.
using TaskLoader = std::function<TaskData(const Config& cfg, Use use)>;

}  // namespace ewa::data
