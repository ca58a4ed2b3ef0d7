// Mixed precision (train.precision): bf16 autocast, as `with torch.autocast(device_type,
// dtype=torch.bfloat16)` in PyTorch. Matrix products and convolutions run in bf16, reductions,
// norms, softmax and losses in float32 (ATen's autocast lists); parameters, gradients and the
// optimizer state stay float32.
#pragma once
#include <string>

#include <torch/torch.h>

namespace ewa {

// Enables bf16 autocast on `device`'s type for the guard's lifetime (nothing when !enabled). The
// cast-weight cache is cleared when the outermost guard ends, so weights changed by an optimizer
// step are cast again next time. Backward runs outside the guard, as PyTorch recommends.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_;
  c10::DeviceType type_;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::Undefined;
};

// Whether this CPU has bf16 arithmetic in hardware (AVX512-BF16 or AMX-BF16, from /proc/cpuinfo).
// Without it bf16 is emulated and usually slower than float32.
bool cpu_has_native_bf16();

// "float32" or "bf16 autocast" (plus a warning when a CPU run would emulate bf16), for the
// start-up table.
std::string precision_description(const std::string& precision, const torch::Device& device);

}  // namespace ewa
