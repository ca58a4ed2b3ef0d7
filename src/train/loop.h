// The one training loop. Classification, fine-tuning and Point-MAE pretraining are Tasks: a
// task owns the model, computes the training loss of a batch and evaluates a split; the loop
// does everything else (run directory, start-up table, optimizer and LR schedule, gradient
// clipping, EWA averaging, resume) and its hooks the rest (progress lines and log.jsonl, atomic
// checkpoints and stop signals, best-on-val, metrics.json): train/run.h. Progress goes through a
// callback; the library never prints or plots (the commands draw the curves).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "io/checkpoint.h"
#include "data/batch_source.h"
#include "dist/dist.h"

namespace ewa::train {

using Reporter = std::function<void(const std::string& line)>;

struct TrainOptions {
  TrainOptions(std::string resume_from = "", std::shared_ptr<dist::Group> process_group = nullptr,
               std::shared_ptr<const io::Checkpoint> resumed_checkpoint = nullptr)
      : resume(std::move(resume_from)), resumed(std::move(resumed_checkpoint)), group(std::move(process_group)) {}
  std::string resume;  // checkpoint to resume from; empty = fresh run
  // The checkpoint at `resume` when the caller has read it already (for its config), so that a
  // resumed run reads its checkpoint once; null: the loop reads it.
  std::shared_ptr<const io::Checkpoint> resumed;
  // The job's process group (null or size 1: a single process). With several ranks every rank
  // takes its share of each global batch, gradients are summed over ranks, and only rank 0
  // reports and writes.
  std::shared_ptr<dist::Group> group;
};

// The loss of one training batch, and optionally how many predictions were right. Both stay on
// the device: the loop reads them back every train.log_every steps, not every step.
struct StepOutput {
  torch::Tensor loss;     // scalar, differentiable
  torch::Tensor correct;  // int64 scalar; undefined when the task has no accuracy
  int64_t count = 0;      // samples in the batch
};

// The update every training step makes, in the loop (Run::train_step) and in `ewa bench
// train-step` alike: `forward` (the task's training loss of the batch) under bf16 autocast when
// train.precision = bf16; gradients zeroed; backward, inside sync->begin(share) / finish() when a
// gradient sync is given (share = the output's count / global_count); gradients clipped at
// optim.grad_clip (> 0); one fused AdamW step. Returns forward's output. EWA averaging follows,
// at the share rate of the step.
StepOutput optimization_step(const Config& cfg, torch::Device device, const std::function<StepOutput()>& forward,
                             torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& parameters,
                             dist::GradientSync* sync = nullptr, int64_t global_count = 0);

// One evaluation of a split.
struct EvalResult {
  nlohmann::json json;    // short record for log.jsonl (e.g. {"oa", "macc", "loss", "count"})
  nlohmann::json detail;  // the final record of metrics.json (may add a confusion matrix)
  std::string text;       // e.g. "OA 0.9175 mAcc 0.9175"
  double score = 0;       // higher is better; best.pt is chosen on the validation score
};

// A set of parameters trained at lr * lr_scale with or without weight decay.
struct ParamGroup {
  std::vector<torch::Tensor> params;
  double lr_scale = 1.0;
  bool weight_decay = true;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual torch::nn::Module& model() = 0;
  // The part whose MoE layers EWA averages after every step (default: the whole model; Point-BERT:
  // the online transformer, not its momentum copy).
  virtual torch::nn::Module& ewa_model() { return model(); }
  // "model ..." line of the start-up table (after "model      ").
  virtual std::string describe_model() = 0;
  // What the parameter groups are trained as; default: every parameter at lr, weight decay on
  // weight matrices only (models::uses_weight_decay).
  virtual std::vector<ParamGroup> parameter_groups();
  // Puts the model in training mode (a task may keep frozen parts in eval mode).
  virtual void set_training() { model().train(); }
  // Called before training_step with the number of optimizer steps taken so far in the run
  // (resumed runs included), for schedules of the task's own.
  virtual void begin_step(int64_t step) {}
  virtual StepOutput training_step(const torch::Tensor& x, const torch::Tensor& y) = 0;
  // Evaluates a split. With a process group of several ranks (group() not null) a task may
  // evaluate its share and reduce the counts over ranks; every rank must return the same result.
  virtual EvalResult evaluate(data::BatchSource& source) = 0;
  void set_group(dist::Group* group) { group_ = group; }
  dist::Group* group() const { return group_ && group_->size() > 1 ? group_ : nullptr; }
  // Label of the evaluation in every report, e.g. "single pass, no voting".
  virtual std::string eval_label() const = 0;
  // Extra fields of metrics.json.
  virtual nlohmann::json extra_metrics() const { return nlohmann::json::object(); }
  // Figures of further evaluation protocols for metrics.json's "protocols" (beside "final" and
  // "best_on_test", which the loop writes), e.g. {"vote": ...}.
  virtual nlohmann::json extra_protocols() const { return nlohmann::json::object(); }
  // best.pt follows the test split's score (upstream's ckpt-best chosen on its test set, as the
  // dVAE's), labelled as selected on the test set, instead of a validation split's.
  virtual bool best_is_best_on_test() const { return false; }
  // Called once after the last epoch (e.g. to write reconstructions into the run directory).
  virtual void finish(const std::string& run_dir, const Reporter& report) {}

 private:
  dist::Group* group_ = nullptr;
};

struct LoopResult {
  std::string run_dir;
  EvalResult test, val;         // final epoch (val.json empty when there is no validation split)
  int64_t best_val_epoch = 0;   // epoch of best.pt (0 when no validation split)
  int64_t steps = 0;
  double seconds = 0;
};

// Parameter groups with layer-wise learning-rate decay: `layer_of(name)` gives a parameter's
// layer in [0, num_layers]; its lr scale is decay^(num_layers - layer). Weight decay as the
// default groups. decay = 1 gives the default groups.
std::vector<ParamGroup> layer_decay_groups(torch::nn::Module& model, double decay, int64_t num_layers,
                                           const std::function<int64_t(const std::string&)>& layer_of);

// Trains `task` on data.train for cfg.train.epochs epochs, evaluating data.test (and data.val)
// after each epoch, into <train.runs_dir>/<name>. `data_description` and the sizes are printed.
LoopResult run_training(const Config& cfg, Task& task, data::TaskData& data, const TrainOptions& options,
                        const Reporter& report, torch::Device device);

}  // namespace ewa::train
