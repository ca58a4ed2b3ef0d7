// Process-wide start-up settings.
#pragma once
#include <string>

namespace ewa {

// The CPU's model name from /proc/cpuinfo ("unknown CPU" when it has none), for reports.
std::string cpu_model_name();

// Number of CPU cores available to this process (sched affinity aware).
int core_count();

// Keeps freed memory in the process for reuse instead of returning it to the kernel: glibc's
// malloc otherwise maps every block over its threshold (tensors of a training step are hundreds
// of MB) fresh with mmap and unmaps it when freed, so each step page-faults and zeroes its
// activations again (a quarter of a Point-MAE-size step was kernel time). Call once at start-up.
void tune_allocator();

// Sets torch's intra-op threads to `threads` (0 = core_count()). Call once at start-up.
void init_threads(int threads = 0);

}  // namespace ewa
