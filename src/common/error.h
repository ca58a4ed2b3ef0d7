// One error type for everything a user can get wrong (files, configs, flags, checkpoints).
// The message is one line naming the file or key, the problem and what was expected; main()
// catches it once, prints "ewa: error: <message>" and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace ewa {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws ewa::Error with the concatenation of the arguments.
[[noreturn]] void fail(const std::string& message);

}  // namespace ewa
