// `ewa bench input`: images (or clouds) per second of a dataset's training pipeline (the batches a
// training step takes, data::BatchSource::training_batch) against what the config's training step
// consumes, so the input pipeline's share of a step is measured, not guessed. The training loop
// builds the next batch while a step runs where the source allows it (train/run.h: BatchAhead);
// its log says how long each step still waited (data wait).
#pragma once
#include <string>
#include <vector>

#include "config/config.h"
#include "data/batch_source.h"

namespace ewa::bench {

struct InputOptions {
  int64_t batches = 20;              // timed batches per thread count (median), after one untimed
  std::vector<int64_t> threads;      // intra-op thread counts to build batches with; empty = the run's and 1
  int64_t step_repeats = 3;          // timed training steps (median), after one untimed
};

struct InputRow {
  int64_t threads = 0, batch = 0;
  double batch_ms = 0;   // median time to build one training batch
  double step_ms = 0;    // median dense training step of the config's model at that batch size
};

// Loads `cfg`'s dataset with `load` (the training split) and times its training batches and the
// config's model's dense training step (random inputs of the model's size).
std::vector<InputRow> bench_input(const Config& cfg, const data::TaskLoader& load, const InputOptions& options);

std::string input_markdown(const std::vector<InputRow>& rows);

}  // namespace ewa::bench
