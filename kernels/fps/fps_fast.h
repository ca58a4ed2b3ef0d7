// Fast CPU path of farthest_point_sample (see fps.h and fps_fast.cpp). No torch headers.
#pragma once

#include <cstdint>

namespace ewa::kernels {

// One cloud xyz [n, 3] row-major: s samples from `start` (0 for the pointnet2 rule) into out,
// exactly as farthest_point_sample_cpu / farthest_point_sample_pointnet2_cpu, using up to
// `threads` threads (each takes at least 4096 points).
void farthest_point_sample_fast(const float* xyz, int64_t n, int64_t s, int64_t start, bool pointnet2, int threads,
                                int64_t* out);
// The thread count T of FpsRule::Pointnet2 (fps_cpu.cpp).
int64_t pointnet2_fps_threads(int64_t n);

}  // namespace ewa::kernels
