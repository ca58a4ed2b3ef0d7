#include "bench/input.h"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "bench/train_step.h"
#include "common/error.h"
#include "common/random.h"
#include "train/setup.h"

namespace ewa::bench {

std::vector<InputRow> bench_input(const Config& cfg, const data::TaskLoader& load, const InputOptions& o) {
  data::TaskData task = load(cfg, data::Use::Training);
  data::BatchSource& source = *task.train;
  if (source.num_batches() == 0) fail("data.batch_size: " + std::to_string(cfg.data.batch_size) + " exceeds the training split");
  source.start_epoch(0);
  const int run_threads = at::get_num_threads();
  std::vector<int64_t> threads = o.threads;
  if (threads.empty()) threads = run_threads > 1 ? std::vector<int64_t>{run_threads, 1} : std::vector<int64_t>{1};
  // The model as the dataset sizes it (image size, classes, channels), as `ewa train` resolves it.
  const Config model_cfg = train::resolve_for_dataset(cfg, task);
  const double step_ms = dense_step_ms(model_cfg, source.global_batch_size(0), o.step_repeats);
  std::vector<InputRow> rows;
  for (const int64_t t : threads) {
    if (t < 1) fail("--threads: every count must be at least 1, got " + std::to_string(t));
    at::set_num_threads(static_cast<int>(t));
    int64_t k = 0;  // batch k of the cycle, its draws seeded by k
    const double batch_ms = median_ms(o.batches, /*cuda=*/false, [&] {
      const int64_t i = k % source.num_batches();
      return source.training_batch(i, derive_seed(uint64_t(cfg.train.seed), Stream::kData, 0, uint64_t(k++)));
    });
    rows.push_back({t, source.global_batch_size(0), batch_ms, step_ms});
  }
  at::set_num_threads(run_threads);
  return rows;
}

std::string input_markdown(const std::vector<InputRow>& rows) {
  std::ostringstream os;
  os << "| threads building batches | batch | ms per batch | images/s built | dense training step ms | images/s the step takes | "
        "batch time / step time |\n|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    char line[256];
    std::snprintf(line, sizeof line, "| %lld | %lld | %.1f | %.0f | %.1f | %.1f | %.1f%% |\n", (long long)r.threads,
                  (long long)r.batch, r.batch_ms, 1000.0 * double(r.batch) / r.batch_ms, r.step_ms,
                  1000.0 * double(r.batch) / r.step_ms, 100.0 * r.batch_ms / r.step_ms);
    os << line;
  }
  return os.str();
}

}  // namespace ewa::bench
