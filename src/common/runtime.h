// Process-wide start-up settings.
#pragma once

namespace ewa {

// Number of CPU cores available to this process (sched affinity aware).
int core_count();

// Sets torch's intra-op threads to `threads` (0 = core_count()). Call once at start-up.
void init_threads(int threads = 0);

}  // namespace ewa
