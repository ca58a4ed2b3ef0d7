// Small text helpers shared by error messages and reports.
#pragma once
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

}  // namespace ewa
