// Runs code on a seeded stream of torch's default CPU generator without disturbing the stream
// a training run draws from.
#pragma once
#include <cstdint>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

namespace ewa {

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
