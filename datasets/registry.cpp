#include "datasets/registry.h"

#include "common/error.h"
#include "datasets/image_folder.h"
#include "datasets/image_loader.h"
#include "datasets/point_datasets.h"
#include "datasets/shapenet_part.h"

namespace ewa::datasets {
using data::TaskData;
using data::Use;

const std::vector<DatasetLoader>& dataset_loaders() {
  static const std::vector<DatasetLoader> loaders = [] {
    std::vector<DatasetLoader> out;
    for (const auto& name : point_dataset_names()) out.push_back({name, load_point_task});
    for (const auto& name : part_dataset_names()) out.push_back({name, load_part_task});
    for (const auto& name : image_dataset_names()) out.push_back({name, load_image_task});
    for (const auto& name : folder_dataset_names()) out.push_back({name, load_folder_task});
    return out;
  }();
  return loaders;
}

TaskData load_task(const Config& cfg, Use use) {
  for (const auto& d : dataset_loaders())
    if (cfg.data.dataset == d.name) return d.load(cfg.data, static_cast<uint64_t>(cfg.train.seed), use);
  fail("data.dataset: no loader for '" + cfg.data.dataset + "'");
}

}  // namespace ewa::datasets
