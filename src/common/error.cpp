#include "common/error.h"

namespace ewa {

void fail(const std::string& message) { throw Error(message); }

}  // namespace ewa
