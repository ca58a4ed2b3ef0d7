// Small text helpers shared by error messages and reports.
#pragma once
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>

#include <ATen/core/TensorBody.h>

namespace ewa {

// A tensor shape as "[2, 3]".
inline std::string shape_str(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << sizes;
  return os.str();
}

// `v` printed with the printf format `f` (one double), e.g. fmt("%.4f", loss).
inline std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// Seconds as "h:mm:ss".
inline std::string duration_text(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char b[32];
  std::snprintf(b, sizeof b, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
  return b;
}

}  // namespace ewa
