#include "datasets/batch_source.h"

namespace ewa::data {

IndexedBatchSource::IndexedBatchSource(int64_t size, int64_t batch_size, bool shuffle, uint64_t seed)
    : size_(size), batch_size_(batch_size), shuffle_(shuffle), seed_(seed), order_(torch::arange(size)) {}

int64_t IndexedBatchSource::num_batches() const { return (size_ + batch_size_ - 1) / batch_size_; }

void IndexedBatchSource::start_epoch(int64_t epoch) {
  if (!shuffle_) return;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed_ * 1000003ULL + static_cast<uint64_t>(epoch));
  order_ = torch::randperm(size_, gen, torch::kLong);
}

torch::Tensor IndexedBatchSource::indices(int64_t i) const {
  const int64_t start = i * batch_size_;
  return order_.narrow(0, start, std::min(batch_size_, size_ - start));
}

}  // namespace ewa::data
