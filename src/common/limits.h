// Bounds the readers use to refuse header counts before allocating anything for them.
#pragma once

#include <cstdint>

namespace ewa {

// Deflate expands at most about 1032:1 (zlib's maximum ratio), so a file of `n` bytes, gzipped or
// inside a zip, holds at most n * kMaxInflation bytes of data. A header that claims more (a 40-byte
// file with 10^12 points) is an error before anything is allocated.
constexpr uint64_t kMaxInflation = 1040;

}  // namespace ewa
