// Host-to-GPU copies that do not stall the host.
#pragma once
#include <ATen/ATen.h>

namespace ewa {

// `t` on `device`. A CPU tensor bound for a GPU goes through page-locked memory and is copied
// asynchronously on the current stream: a copy from ordinary (pageable) memory first waits for
// every kernel queued on the stream, which turns each small random draw of a training step
// (augmentation, masks, FPS starts) into a host sync. The pinned block is kept until the copy has
// run (PyTorch's caching host allocator records the stream). Other moves are plain `to`.
inline at::Tensor to_device(const at::Tensor& t, const at::Device& device) {
  if (device.is_cuda() && t.device().is_cpu()) return t.pin_memory().to(device, /*non_blocking=*/true);
  return t.to(device);
}

}  // namespace ewa
