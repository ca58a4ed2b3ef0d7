#include "tasks/run_task.h"

#include "train/setup.h"

namespace ewa::tasks {
using train::resolve_for_dataset;
using train::run_training;
using train::select_device;

std::unique_ptr<TaskMaker> task_maker(ModelTask task) {
  switch (task) {
    case ModelTask::Classify: return classification_maker();
    case ModelTask::Segment: return segmentation_maker();
    case ModelTask::PretrainMae: return point_mae_maker();
    case ModelTask::PretrainDvae: return dvae_maker();
    case ModelTask::PretrainBert: return point_bert_maker();
  }
  return nullptr;
}

RunResult run_task(Config cfg, const data::TaskLoader& load_data, const TrainOptions& options, const Reporter& report) {
  auto maker = task_maker(model_kind(cfg).task);
  auto data = load_data(cfg, data::Use::Training);
  cfg = resolve_for_dataset(cfg, data);
  maker->prepare(cfg, data, load_data, report);
  const torch::Device device = select_device(cfg.train.device, options.group.get());
  torch::manual_seed(static_cast<uint64_t>(cfg.train.seed));
  auto task = maker->make(cfg, data, device, options, report);
  auto loop = run_training(cfg, *task, data, options, report, device);
  return {loop.run_dir, loop.test, loop.val, loop.best_val_epoch, loop.steps, loop.seconds};
}

}  // namespace ewa::tasks
