#include "common/precision.h"

#include <ATen/autocast_mode.h>

#include <fstream>
#include <sstream>

namespace ewa {

AutocastGuard::AutocastGuard(const torch::Device& device, bool enabled) : enabled_(enabled), type_(device.type()) {
  if (!enabled_) return;
  was_enabled_ = at::autocast::is_autocast_enabled(type_);
  was_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, was_enabled_);
  at::autocast::set_autocast_dtype(type_, was_dtype_);
}

bool cpu_has_native_bf16() {
  static const bool has = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line);
      std::string w;
      while (words >> w)
        if (w == "avx512_bf16" || w == "amx_bf16") return true;
      return false;
    }
    return false;
  }();
  return has;
}

std::string precision_description(const std::string& precision, const torch::Device& device) {
  if (precision != "bf16") return "float32";
  std::string s = "bf16 autocast (float32 weights and optimizer)";
  if (device.is_cpu() && !cpu_has_native_bf16()) s += "; this CPU has no AVX512-BF16/AMX, so bf16 is emulated and slow";
  return s;
}

}  // namespace ewa
