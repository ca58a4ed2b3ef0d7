// SIMD for the fast CPU kernels (kernels/*/*_fast.cpp): GCC vector extensions at the native width
// of one instruction set, and the choice of that set at run time. No torch headers.
//
// A kernel is written once as a template on the lane count L (always inlined, with the helpers
// below) and compiled three times through EWA_SIMD_VARIANTS: L = 16 for AVX-512, 8 for AVX2 and 4
// for the x86-64 baseline (SSE2). Native widths matter: GCC lowers comparisons and selects on
// vectors wider than the target's registers lane by lane.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ewa::kernels::simd {

enum class Level { Baseline = 0, Avx2 = 1, Avx512 = 2 };

// The widest level this CPU runs (AVX-512 needs F, DQ and POPCNT; AVX2 needs AVX2 and POPCNT).
Level supported();
// The level the kernels use: supported(), lowered (never raised) by the environment variable
// EWA_SIMD=baseline|avx2|avx512 read once, or by set_level (tests compare the levels).
Level level();
void set_level(Level wanted);  // clamped to supported()
const char* name(Level l);
// "baseline", "avx2" or "avx512" into *out (when not null); false for anything else.
bool parse_level(const char* s, Level* out);

#define EWA_SIMD_INLINE inline __attribute__((always_inline))

// Vectors of L 32-bit lanes (f, i) or L / 2 64-bit lanes (l), all the same size.
template <int L>
struct Vec {
  typedef float f __attribute__((vector_size(L * sizeof(float))));
  typedef int32_t i __attribute__((vector_size(L * sizeof(int32_t))));
  typedef int64_t l __attribute__((vector_size(L * sizeof(int32_t))));  // L / 2 lanes
};

template <typename V, typename T>
EWA_SIMD_INLINE V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V, typename T>
EWA_SIMD_INLINE void store(T* p, V v) {
  std::memcpy(p, &v, sizeof v);
}
// Lane l holds l.
template <int L>
EWA_SIMD_INLINE typename Vec<L>::i iota() {
  typename Vec<L>::i v;
  for (int l = 0; l < L; ++l) v[l] = l;
  return v;
}

// op over all lanes, folding halves in registers; the result is lane 0's.
template <int L, typename V, typename Op>
EWA_SIMD_INLINE auto fold(V v, Op op) {
  if constexpr (L == 16) {
    v = op(v, __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
    v = op(v, __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
    v = op(v, __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
    v = op(v, __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14));
  } else if constexpr (L == 8) {
    v = op(v, __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3));
    v = op(v, __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5));
    v = op(v, __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6));
  } else {
    static_assert(L == 4, "lane counts: 16, 8, 4");
    v = op(v, __builtin_shufflevector(v, v, 2, 3, 0, 1));
    v = op(v, __builtin_shufflevector(v, v, 1, 0, 3, 2));
  }
  return v[0];
}
template <typename V>
EWA_SIMD_INLINE V vmin(V a, V b) {
  return b < a ? b : a;
}
template <typename V>
EWA_SIMD_INLINE V vmax(V a, V b) {
  return b > a ? b : a;
}
// Lane-wise operations for fold (functors, so that they inline into every variant).
struct MinOp {
  template <typename V>
  EWA_SIMD_INLINE V operator()(V a, V b) const { return vmin(a, b); }
};
struct MaxOp {
  template <typename V>
  EWA_SIMD_INLINE V operator()(V a, V b) const { return vmax(a, b); }
};
struct AddOp {
  template <typename V>
  EWA_SIMD_INLINE V operator()(V a, V b) const { return a + b; }
};
struct OrOp {
  template <typename V>
  EWA_SIMD_INLINE V operator()(V a, V b) const { return a | b; }
};
template <int L, typename V>
EWA_SIMD_INLINE auto hmin(V v) {
  return fold<L>(v, MinOp{});
}
template <int L, typename V>
EWA_SIMD_INLINE auto hmax(V v) {
  return fold<L>(v, MaxOp{});
}
template <int L, typename V>
EWA_SIMD_INLINE auto hsum(V v) {
  return fold<L>(v, AddOp{});
}
// Bit l set where lane l of a comparison result (lanes 0 or -1) is true: the sign bits through
// movmskps on x86, a fold elsewhere. 8 and 16 lanes use vmovmskps on 256-bit halves as inline
// assembly: an intrinsic would have to inline into this template before it inlines into a
// variant, where GCC refuses AVX code.
#if defined(__x86_64__)
template <typename V8>
EWA_SIMD_INLINE uint32_t movemask256(V8 v) {
  static_assert(sizeof(V8) == 32, "a 256-bit vector");
  uint32_t r;
  asm("vmovmskps %1, %0" : "=r"(r) : "x"(v));
  return r;
}
#endif
template <int L>
EWA_SIMD_INLINE uint32_t lane_bits(typename Vec<L>::i v) {
#if defined(__x86_64__)
  if constexpr (L == 4) {
    return static_cast<uint32_t>(_mm_movemask_ps(reinterpret_cast<__m128>(v)));
  } else if constexpr (L == 8) {
    return movemask256(v);
  } else {
    return movemask256(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7)) |
           movemask256(__builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15)) << 8;
  }
#else
  using vi = typename Vec<L>::i;
  return static_cast<uint32_t>(fold<L>(v & ((vi{} + 1) << iota<L>()), OrOp{}));
#endif
}

}  // namespace ewa::kernels::simd

// Defines NAME(args...), which runs IMPL<16>, IMPL<8> or IMPL<4> (an EWA_SIMD_INLINE function
// template on the lane count), each compiled for its instruction set, as simd::level() says.
// Off x86 only the 4-lane version exists.
#if defined(__x86_64__)
#define EWA_SIMD_VARIANTS(NAME, IMPL)                                                 \
  template <typename... A>                                                          \
  __attribute__((target("avx512f,avx512dq,popcnt"))) auto NAME##_avx512(A... a) {   \
    return IMPL<16>(a...);                                                          \
  }                                                                                 \
  template <typename... A>                                                          \
  __attribute__((target("avx2,popcnt"))) auto NAME##_avx2(A... a) {                 \
    return IMPL<8>(a...);                                                           \
  }                                                                                 \
  template <typename... A>                                                          \
  auto NAME##_baseline(A... a) {                                                    \
    return IMPL<4>(a...);                                                           \
  }                                                                                 \
  template <typename... A>                                                          \
  auto NAME(A... a) {                                                               \
    switch (::ewa::kernels::simd::level()) {                                        \
      case ::ewa::kernels::simd::Level::Avx512: return NAME##_avx512(a...);         \
      case ::ewa::kernels::simd::Level::Avx2: return NAME##_avx2(a...);             \
      default: return NAME##_baseline(a...);                                        \
    }                                                                               \
  }
#else
#define EWA_SIMD_VARIANTS(NAME, IMPL) \
  template <typename... A>            \
  auto NAME(A... a) {                 \
    return IMPL<4>(a...);             \
  }
#endif
