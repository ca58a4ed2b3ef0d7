// Inside the training loop (train/loop.h): the state of one run, and the hooks the loop calls.
// The loop (loop.cpp: run_training) reads at a glance: set up, then per epoch every step's
// forward/backward/optimizer/EWA (Run::train_step) followed by the hooks' after_step, the
// evaluation of the epoch (Run::evaluate_epoch) followed by their after_epoch, and at the end
// the metrics. Everything else is a hook (hooks.cpp): progress lines and log.jsonl, checkpoints
// and the stop signals, metrics.json. Resume and the start-up table are named steps of their own.
#pragma once
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/text.h"
#include "io/tfevents.h"
#include "train/checkpoint.h"
#include "train/loop.h"

namespace ewa::train {

using Clock = std::chrono::steady_clock;

// The running sums of the epoch in progress (for its summary line and log record).
struct EpochSums {
  double loss = 0;
  int64_t correct = 0, seen = 0;
  bool has_accuracy = false;
};

// The losses and correct counts of the steps not yet read back from the device. Reading a GPU
// scalar waits for every kernel queued before it, so the steps are read together: every
// train.log_every steps, before a checkpoint and with the epoch's last step. The sums come out
// as a read after every step would give them (same values, same order).
class PendingSteps {
 public:
  void add(const StepOutput& out, int64_t step);
  // Adds the pending steps to `sums` and returns their losses (each step's mean, in step order);
  // fails at the first non-finite loss.
  std::vector<double> flush(EpochSums& sums);

 private:
  std::vector<torch::Tensor> losses_, correct_;
  std::vector<int64_t> counts_, steps_;
};

// The next step's batch, built on a thread of its own while the step runs, for sources that draw
// their training batches from generators of their own (data::BatchSource::builds_ahead). A batch
// built ahead is the one the step would build itself: the same (index, seed).
class BatchAhead {
 public:
  using Batch = std::pair<torch::Tensor, torch::Tensor>;
  // Batch `i` of the step seeded `seed`: the one built ahead when it is that one, else built now.
  Batch take(const data::BatchSource& source, int64_t i, uint64_t seed);
  // Starts building batch `i` for the step seeded `seed`.
  void start(const data::BatchSource& source, int64_t i, uint64_t seed);
  // Waits for a batch being built and forgets it (before the source's order changes).
  void drop();
  ~BatchAhead() { drop(); }

 private:
  std::future<Batch> next_;
  int64_t index_ = -1;
  uint64_t seed_ = 0;
};

// What the loop tells the hooks of a step.
struct StepDone {
  int64_t batch = 0;    // its index in the epoch
  int64_t samples = 0;  // this rank's samples in it
  bool last_of_epoch = false;
  double data_ms = 0;  // how long the step waited for its batch (built, or built ahead and not yet done)
  // The losses read back from the device after this step (each step's mean, in step order: this
  // step's and the unread ones before it); empty when none were read.
  std::vector<double> losses_read;
};

// What the epoch's evaluation gave: its log.jsonl record and progress line, and whether it is
// the best so far on the validation split (best.pt) and on the test split (best_on_test.pt).
struct EpochRecord {
  nlohmann::json record;
  std::string line;
  bool best_val = false, best_test = false;
};

// One run: its settings, model and optimizer, data, and where it stands.
struct Run {
  Run(const Config& cfg, Task& task, data::TaskData& data, const TrainOptions& options, const Reporter& report_all,
      torch::Device device);

  // Named steps of the loop.
  // Model, optimizer, generators and progress from the checkpoint at `path` (`read`: already read).
  void resume(const std::string& path, std::shared_ptr<const io::Checkpoint> read);
  void sync_start();                     // every rank starts from rank 0's weights; config.json
  std::string startup_table() const;
  // Forward, backward, gradient sync, clipping, AdamW, EWA; what the hooks are told of it.
  StepDone train_step(int64_t batch);
  // The epoch's record: its training sums and, when `evaluate_splits`, test (and validation) and
  // whether they are the best so far.
  EpochRecord evaluate_epoch(bool evaluate_splits);
  EvalResult evaluate(data::BatchSource& source);  // under the configured autocast
  EpochSums job_sums(const EpochSums& mine) const;  // summed over ranks (a collective)
  int agreed_stop() const;               // SIGINT/SIGTERM seen on any rank (a collective)
  nlohmann::json progress(int64_t position, const EpochSums& sums) const;  // a checkpoint's "progress"
  std::vector<double> read_pending() { return pending.flush(sums); }  // the steps not yet read back
  nlohmann::json distributed_summary();  // rank agreement and all-reduce time (several ranks)
  // Model EMA (train.ema_decay > 0, timm's ModelEmaV2): the average moves after every step;
  // evaluations and checkpoints' "model" are the EMA's ("model_train" the raw weights).
  bool has_ema() const { return !ema.empty(); }
  void update_ema();
  void swap_ema();  // exchanges the model's weights and the EMA's
  // The model's state for a checkpoint: the EMA as "model" and the raw weights as "model_train"
  // when there is one.
  Checkpoint checkpoint(int64_t epochs_done, const nlohmann::json& where) const;
  // "EMA weights (decay d), " or "".
  std::string weights_label() const;

  // Settings and parts.
  const Config& cfg;
  Task& task;
  data::TaskData& data;
  torch::Device device;
  Reporter report;  // rank 0 only
  dist::Group* group = nullptr;
  bool main_rank = true;
  int64_t world = 1, rank = 0;
  std::string dir, last_path, best_path;
  std::vector<ParamGroup> groups;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> parameters, float_buffers;
  std::unique_ptr<dist::GradientSync> gradient_sync;
  std::vector<std::string> ema_names;
  std::vector<torch::Tensor> ema_targets, ema;  // the model's float tensors and their averages
  std::unique_ptr<io::EventWriter> events;      // TensorBoard (rank 0, train.tensorboard)
  size_t moe_count = 0;
  int64_t steps_per_epoch = 0, total_steps = 0;

  // Where the run stands.
  int64_t step = 0, epoch = 0, start_epoch = 0, start_position = 0, steps_at_start = 0;
  EpochSums sums, resumed_sums;
  PendingSteps pending;
  BatchAhead ahead;
  double lr = 0, beta = 0;  // of the last step
  Clock::time_point train_start, run_start;
  double comm_at_start = 0;
  int stop = 0;  // SIGINT or SIGTERM seen on any rank by the last step or evaluation (agreed_stop)
  double best_val = -INFINITY, best_test = -INFINITY;
  int64_t best_test_epoch = 0;
  nlohmann::json best_test_json;
  std::string best_test_text;
  LoopResult result;
};

// Called by the loop at fixed points. A hook sees the run read-only and keeps its own state (the
// progress hook its window of steps); it may stop the run by throwing (Interrupted).
class Hook {
 public:
  virtual ~Hook() = default;
  virtual void at_start(const Run& run) {}  // before the first step, run.train_start set
  // Whether the steps' losses must be read back from the device before this step's after_step
  // (a progress line, a checkpoint). The loop also reads them with every epoch's last step.
  virtual bool needs_read(const Run& run, int64_t batch) const { return false; }
  virtual void after_step(const Run& run, const StepDone& step) {}
  virtual void after_epoch(const Run& run, const EpochRecord& epoch) {}
  virtual void at_end(const Run& run, nlohmann::json& metrics) {}  // rank 0; run.result.seconds set
};

// The hooks every run has, in the order they are called (hooks.cpp).
std::unique_ptr<Hook> progress_log_hook();  // progress lines every train.log_every steps; log.jsonl
std::unique_ptr<Hook> checkpoint_hook();    // last.pt, best.pt, best_on_test.pt; stops on SIGINT/SIGTERM
std::unique_ptr<Hook> metrics_hook();       // metrics.json and the closing lines


}  // namespace ewa::train
