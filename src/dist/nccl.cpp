// c10d's NCCL backend for ranks on GPUs (compiled only in CUDA builds with nccl.h: EWA_HAS_NCCL).
#include <cstdlib>

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "dist/backends.h"

namespace ewa::dist::detail {

c10::intrusive_ptr<c10d::Backend> make_nccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                            std::chrono::milliseconds timeout, int device_index) {
  // Blocking wait: Work::wait() returns when the collective is done and throws after the
  // timeout, instead of the watchdog aborting the process later with NCCL's own message.
  ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
}

}  // namespace ewa::dist::detail
