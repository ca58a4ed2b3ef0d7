#include "data/batch_source.h"

#include <algorithm>

#include "common/error.h"
#include "common/random.h"
#include "dist/dist.h"

namespace ewa::data {

IndexedBatchSource::IndexedBatchSource(int64_t size, int64_t batch_size, bool shuffle, uint64_t seed, bool drop_last)
    : size_(size), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed), order_(torch::arange(size)) {}

int64_t IndexedBatchSource::num_batches() const {
  return drop_last_ ? size_ / batch_size_ : (size_ + batch_size_ - 1) / batch_size_;
}

int64_t IndexedBatchSource::global_batch_size(int64_t i) const { return std::min(batch_size_, size_ - i * batch_size_); }

void IndexedBatchSource::start_epoch(int64_t epoch) {
  if (!shuffle_) return;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed_ * 1000003ULL + static_cast<uint64_t>(epoch));
  order_ = torch::randperm(size_, gen, torch::kLong);
}

void IndexedBatchSource::place(torch::Device device, int64_t rank, int64_t world) {
  device_ = device;
  rank_ = rank;
  world_ = world;
}

std::pair<torch::Tensor, torch::Tensor> BatchSource::training_batch(int64_t i, uint64_t seed) const {
  return with_cpu_seed(seed, [&] { return batch(i, View::Training); });
}

torch::Tensor IndexedBatchSource::indices(int64_t i) const {
  const int64_t start = i * batch_size_;
  auto rows = order_.narrow(0, start, global_batch_size(i));
  if (world_ <= 1) return rows;
  const auto [lo, hi] = dist::shard(rows.size(0), rank_, world_);
  return rows.narrow(0, lo, hi - lo);
}

std::pair<torch::Tensor, torch::Tensor> validation_split(int64_t n, double fraction, uint64_t seed) {
  const int64_t n_val = std::max<int64_t>(1, static_cast<int64_t>(n * fraction));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x5eedULL);
  auto perm = torch::randperm(n, gen, torch::kLong);
  return {std::get<0>(perm.narrow(0, 0, n_val).sort()), std::get<0>(perm.narrow(0, n_val, n - n_val).sort())};
}

torch::Tensor per_class_subset(const torch::Tensor& labels, int64_t per_class, uint64_t seed) {
  const auto l = labels.to(torch::kLong).contiguous();
  const int64_t n = l.numel(), classes = n ? l.max().item<int64_t>() + 1 : 0;
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(classes));
  const int64_t* p = l.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) members[static_cast<size_t>(p[i])].push_back(i);
  std::vector<int64_t> keep;
  for (int64_t c = 0; c < classes; ++c) {
    const auto& m = members[static_cast<size_t>(c)];
    if (m.empty()) continue;
    // Each class on a generator of its own, so the subset of one class does not depend on the others.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(derive_seed(seed, Stream::kSubset, uint64_t(c)));
    const auto perm = torch::randperm(int64_t(m.size()), gen, torch::kLong);
    const int64_t take = std::min<int64_t>(per_class, int64_t(m.size()));
    for (int64_t j = 0; j < take; ++j) keep.push_back(m[static_cast<size_t>(perm[j].item<int64_t>())]);
  }
  std::sort(keep.begin(), keep.end());
  return torch::tensor(keep, torch::kLong);
}

std::string classes_present_note(const torch::Tensor& labels, int64_t num_classes, int64_t limit) {
  const int64_t present = labels.numel() ? std::get<0>(torch::_unique(labels.to(torch::kLong))).size(0) : 0;
  if (present >= num_classes) return "";
  return "note: data.train_limit = " + std::to_string(limit) + " keeps the first samples in stored order: " +
         std::to_string(present) + " of " + std::to_string(num_classes) +
         " classes have training samples (data.train_per_class draws a class-balanced subset)";
}

const std::vector<std::string>& split_names() {
  static const std::vector<std::string> names = {"train", "val", "test"};
  return names;
}

namespace {
void require_split_name(const std::string& split) {
  if (std::find(split_names().begin(), split_names().end(), split) == split_names().end())
    fail("--split: expected train, val or test, got '" + split + "'");
}
}  // namespace

Use use_for_split(const std::string& split) {
  require_split_name(split);
  return split == "train" ? Use::Features : Use::Training;
}

BatchSource& split_source(TaskData& task, const std::string& split) {
  require_split_name(split);
  BatchSource* source = split == "train" ? task.train.get() : split == "val" ? task.val.get() : task.test.get();
  if (!source) fail("--split " + split + ": " + task.description + " has no validation split (data.val_fraction is 0)");
  return *source;
}

}  // namespace ewa::data
