#include "common/runtime.h"

#include <fstream>
#include <string>

#include <malloc.h>
#include <sched.h>

#include <thread>

#include <ATen/Parallel.h>

namespace ewa {

int core_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

void tune_allocator() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // blocks below 1 GiB come from the heap...
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // ...which gives back only free tops over 1 GiB
}

void init_threads(int threads) {
  const int n = threads > 0 ? threads : core_count();
  at::set_num_threads(n);
}

std::string cpu_model_name() {
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

}  // namespace ewa
