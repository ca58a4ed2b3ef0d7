// The dataset library's entry point: data.dataset name -> its loader. The commands pass
// datasets::load_task to the library as its data::TaskLoader (data/batch_source.h); nothing under
// src/ includes this folder.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"
#include "data/batch_source.h"

namespace ewa::datasets {

struct DatasetLoader {
  std::string name;  // data.dataset
  data::TaskData (*load)(const DataConfig& cfg, uint64_t seed, data::Use use);
};

// Every dataset ewa reads, one loader each: the point-cloud datasets' listers and the image
// datasets' formats. The config's dataset table (config/datasets.h) names the same; a test checks it.
const std::vector<DatasetLoader>& dataset_loaders();

// Loads cfg.data's dataset with its train / val / test sources (seeded by train.seed).
data::TaskData load_task(const Config& cfg, data::Use use = data::Use::Training);

}  // namespace ewa::datasets
