// One entry point for every training run: run_task trains the kind cfg.model.name names
// (config/model_kinds.h) with the task its registry entry names, on the one training loop
// (train/loop.h). Classification, part segmentation and the three pretraining stages differ
// only in the TaskMaker that builds their model and task.
#pragma once
#include <memory>
#include <string>

#include "config/config.h"
#include "config/model_kinds.h"
#include "data/batch_source.h"
#include "train/loop.h"

namespace ewa::tasks {

// The loop's vocabulary every task is written in (train/loop.h).
using train::EvalResult;
using train::Reporter;
using train::StepOutput;
using train::Task;
using train::TrainOptions;

// What a run ends with (metrics.json has the full record).
struct RunResult {
  std::string run_dir;
  EvalResult test, val;        // final epoch; val.json is empty without a validation split
  int64_t best_val_epoch = 0;  // epoch of best.pt (0 when no validation split)
  int64_t steps = 0;
  double seconds = 0;
};

// How run_task makes the task of one ModelTask. run_task loads the data and resolves the sizes,
// calls prepare (checks of the loaded data; data of the task's own, e.g. the SVM monitor's),
// selects the device, seeds torch's generator with train.seed, then calls make (the model, its
// starting weights when the run is no resume, and the task).
class TaskMaker {
 public:
  virtual ~TaskMaker() = default;
  virtual void prepare(Config& cfg, data::TaskData& data, const data::TaskLoader& load_data, const Reporter& report) {}
  virtual std::unique_ptr<Task> make(const Config& cfg, data::TaskData& data, torch::Device device,
                                     const TrainOptions& options, const Reporter& report) = 0;
};

// The makers, one per ModelTask, each beside its task. Every run writes config.json, log.jsonl,
// last.pt each epoch and metrics.json into its directory; besides:
// - classification (tasks/classify.cpp): best.pt on the validation split, best_on_test.pt; from
//   finetune.init when set (finetune.layer_decay and finetune.freeze_encoder shape what is trained);
// - segmentation (tasks/segmentation.cpp): metrics.json holds instance and class mIoU and the
//   per-category table; from finetune.init when set (a Point-MAE segmentation or pretraining file);
// - Point-MAE pretraining (tasks/point_mae.cpp): last.pt is what `ewa finetune` reads; at the end
//   pretrain.reconstructions reconstructions in reconstructions/;
// - the dVAE (tasks/dvae.cpp): loss = recon + w_kl(step) * KL at the Gumbel-softmax
//   temperature tau(step); best.pt at the lowest whole-cloud dense CD-L1 on the test split
//   (upstream's ckpt-best, labelled as selected on the test set);
// - Point-BERT stage 2 (tasks/point_bert.cpp): last.pt in the official module layout
//   (transformer_q.*, transformer_k.*, dvae.*, queue, queue_ptr); best.pt at the best SVM monitor
//   accuracy when pretrain.svm_dataset is set (upstream's ckpt-best).
std::unique_ptr<TaskMaker> classification_maker();
std::unique_ptr<TaskMaker> segmentation_maker();
std::unique_ptr<TaskMaker> point_mae_maker();
std::unique_ptr<TaskMaker> dvae_maker();
std::unique_ptr<TaskMaker> point_bert_maker();
std::unique_ptr<TaskMaker> task_maker(ModelTask task);

// The full run of cfg into <train.runs_dir>/<name> (docs/guide.md lists its files); with
// options.resume it continues that checkpoint. Classifiers and segmenters start from
// finetune.init when it is set.
RunResult run_task(Config cfg, const data::TaskLoader& load_data, const TrainOptions& options, const Reporter& report);

}  // namespace ewa::tasks
