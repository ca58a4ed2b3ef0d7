#include "datasets/registry.h"

#include "common/error.h"
#include "datasets/image_loader.h"
#include "datasets/point_datasets.h"

namespace ewa::data {

const std::vector<DatasetLoader>& dataset_loaders() {
  static const std::vector<DatasetLoader> loaders = {
      {"modelnet40_resampled", load_point_task}, {"modelnet_h5", load_point_task},
      {"modelnet_folder", load_point_task},      {"scanobjectnn", load_point_task},
      {"shapenet55", load_point_task},           {"modelnet_fewshot", load_point_task},
      {"fashion_mnist", load_image_task},        {"mnist", load_image_task},
      {"cifar10", load_image_task},              {"cifar100", load_image_task},
  };
  return loaders;
}

TaskData load_task(const Config& cfg, Use use) {
  for (const auto& d : dataset_loaders())
    if (cfg.data.dataset == d.name) return d.load(cfg.data, static_cast<uint64_t>(cfg.train.seed), use);
  fail("data.dataset: no loader for '" + cfg.data.dataset + "'");
}

}  // namespace ewa::data
