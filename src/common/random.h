// Runs code on a seeded stream of torch's default CPU generator without disturbing the stream
// a training run draws from.
#pragma once
#include <cstdint>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

namespace ewa {

// The random streams of a training run (docs/protocols.md, "Random streams"). Each draws from
// a seed derived from train.seed alone, so two runs of one seed that differ only in their MoE or
// EWA settings see the same batches, initial shared parameters and dropout:
//   torch's default generator, seeded with train.seed   the model's initialisation, FFNs aside;
//   kFfnInit (block)                                    each block's FFN (dense or experts);
//   kData (rank, step)                                  augmentation and resampling of a batch;
//   kPartition (rank, step)                             the RupMoE token partitions of a step;
//   kDropout (rank, step)                               dropout, drop path, masks of a step;
//   kSubset (class)                                     data.train_per_class's subset.
// (The order of the data is a permutation seeded by (train.seed, epoch): data/batch_source.h.)
enum class Stream : uint64_t { kFfnInit = 1, kData = 2, kPartition = 3, kDropout = 4, kSubset = 5 };

// A well-mixed seed for (seed, stream, a, b): splitmix64 over the four, so that no two streams,
// ranks or steps share a sequence.
inline uint64_t derive_seed(uint64_t seed, Stream stream, uint64_t a = 0, uint64_t b = 0) {
  uint64_t h = seed;
  for (const uint64_t v : {static_cast<uint64_t>(stream), a, b}) {
    h += 0x9e3779b97f4a7c15ull + v;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
  }
  return h;
}

// Calls `fn` with torch's default CPU generator seeded to `seed`, then restores its state, so an
// evaluation (fixed masks, vote subsets) gives the same result whenever it runs and the training
// run's random stream is unchanged.
template <typename Fn>
auto with_cpu_seed(uint64_t seed, Fn fn) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  const auto saved = gen.get_state();
  gen.set_current_seed(seed);
  struct Restore {
    at::Generator& g;
    const at::Tensor& s;
    ~Restore() { g.set_state(s); }
  } restore{gen, saved};
  return fn();
}

}  // namespace ewa
