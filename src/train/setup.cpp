#include "train/setup.h"

#include <map>

#include "common/error.h"
#include "common/runtime.h"
#include "io/checkpoint.h"

namespace ewa::train {

Config run_config(const std::string& config_path, const std::string& checkpoint, const std::vector<std::string>& overrides,
                  const std::string& name, std::shared_ptr<const io::Checkpoint>* read) {
  Config cfg;
  if (config_path.empty() && !checkpoint.empty()) {
    auto ckpt = std::make_shared<const io::Checkpoint>(io::read_checkpoint(checkpoint));
    if (read) *read = ckpt;
    cfg = config_from_keys(ckpt->config, overrides, "checkpoint " + checkpoint);
  } else {
    cfg = load_config(config_path, overrides);
  }
  if (!name.empty()) cfg = cfg.with({{"name", name}});
  if (cfg.train.threads > 0) init_threads(static_cast<int>(cfg.train.threads));
  return cfg;
}

torch::Device select_device(const std::string& device, dist::Group* group) {
  if (device == "cpu") return torch::kCPU;
  if (device == "cuda" && !torch::cuda::is_available())
    fail("train.device: 'cuda' requested but no CUDA device is available");
  if (!torch::cuda::is_available()) return torch::kCPU;
  // Ranks of a job on one machine take one GPU each, by LOCAL_RANK (as torchrun's users do); a rank
  // without a GPU of its own stops the job here, before NCCL is set up.
  const int64_t gpus = static_cast<int64_t>(torch::cuda::device_count());
  if (group && group->size() > 1) group->require_gpu_per_rank(gpus);
  const int64_t local = group && group->size() > 1 ? group->env().local_rank : 0;
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local));
}

Config resolve_for_dataset(Config cfg, const data::TaskData& task) {
  std::map<std::string, nlohmann::json> settled;
  auto settle = [&](int64_t field, int64_t actual, const char* key) {
    if (field == 0) {
      settled[std::string("model.") + key] = actual;
    } else if (field != actual) {
      fail(std::string("model.") + key + ": config says " + std::to_string(field) + " but dataset " + cfg.data.dataset +
           " has " + std::to_string(actual));
    }
  };
  if (task.img_size > 0) settle(cfg.model.img_size, task.img_size, "img_size");
  settle(cfg.model.in_chans, task.in_chans, "in_chans");
  // A head wider than the dataset's classes is allowed, as the official few-shot and Point-BERT
  // ScanObjectNN configs train 40 outputs (cls_dim 40) for 5, 10 or 15 classes.
  if (cfg.model.num_classes <= task.num_classes) settle(cfg.model.num_classes, task.num_classes, "num_classes");
  if (!task.category_names.empty())
    settle(cfg.model.num_categories, static_cast<int64_t>(task.category_names.size()), "num_categories");
  if (task.img_size > 0 && task.img_size % cfg.model.patch_size != 0)
    fail("model.patch_size: " + std::to_string(cfg.model.patch_size) + " does not divide the image size " +
         std::to_string(task.img_size));
  return settled.empty() ? cfg : cfg.with(settled);
}

io::LoadReport load_finetune_init(torch::nn::Module& model, const Config& cfg,
                                  const std::function<bool(const std::string&)>& may_be_fresh) {
  io::LoadOptions options;
  options.allow_missing = cfg.finetune.allow_missing;
  options.missing_hint = "pass --set finetune.allow_missing=true to start them fresh";
  options.may_be_fresh = may_be_fresh;
  return io::load_pretrained(model, io::read_state_dict(cfg.finetune.init), options, cfg.finetune.init);
}

}  // namespace ewa::train
