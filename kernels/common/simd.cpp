// Run-time choice of the SIMD level (see simd.h).
#include "kernels/common/simd.h"

#include <atomic>
#include <cstdlib>
#include <string>

namespace ewa::kernels::simd {
namespace {

Level detect() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("popcnt"))
    return Level::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) return Level::Avx2;
#endif
  return Level::Baseline;
}

// An unknown value is ignored here; the ewa program refuses it at start-up.
Level from_environment(Level best) {
  Level wanted = best;
  const char* v = std::getenv("EWA_SIMD");
  if (!v || !parse_level(v, &wanted)) return best;
  return static_cast<int>(wanted) < static_cast<int>(best) ? wanted : best;
}

std::atomic<int>& current() {
  static std::atomic<int> level{static_cast<int>(from_environment(supported()))};
  return level;
}

}  // namespace

Level supported() {
  static const Level best = detect();
  return best;
}

Level level() { return static_cast<Level>(current().load(std::memory_order_relaxed)); }

void set_level(Level wanted) {
  const Level best = supported();
  current().store(static_cast<int>(static_cast<int>(wanted) < static_cast<int>(best) ? wanted : best),
                  std::memory_order_relaxed);
}

bool parse_level(const char* s, Level* out) {
  const std::string v(s ? s : "");
  Level l;
  if (v == "baseline") l = Level::Baseline;
  else if (v == "avx2") l = Level::Avx2;
  else if (v == "avx512") l = Level::Avx512;
  else return false;
  if (out) *out = l;
  return true;
}

const char* name(Level l) {
  switch (l) {
    case Level::Avx512: return "avx512";
    case Level::Avx2: return "avx2";
    default: return "baseline";
  }
}

}  // namespace ewa::kernels::simd
