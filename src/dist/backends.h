// Constructors of c10d backends that need headers the rest of the library must not see
// (ProcessGroupNCCL.hpp pulls in CUDA's). Private to src/dist.
#pragma once
#include <chrono>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace ewa::dist::detail {

// An NCCL process group over `store` for the GPU `device_index` of this rank (made current).
// Collectives give up after `timeout` with an exception (blocking wait), so a dead or hung rank
// is reported like Gloo's. Only in builds with EWA_HAS_NCCL.
c10::intrusive_ptr<c10d::Backend> make_nccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                            std::chrono::milliseconds timeout, int device_index);

}  // namespace ewa::dist::detail
