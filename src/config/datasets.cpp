#include "config/datasets.h"

#include "common/error.h"

namespace ewa {

const std::vector<DatasetInfo>& dataset_table() {
  static const std::vector<DatasetInfo> table = {
      // name                  points classes img chans normals hdf5  default root
      {"fashion_mnist",        false, 10,     28, 1,    false,  false, "/usr/share/datasets/fashion-mnist", {}},
      {"mnist",                false, 10,     28, 1,    false,  false, "", {}},
      {"cifar10",              false, 10,     32, 3,    false,  false, "", {}},
      {"cifar100",             false, 100,    32, 3,    false,  false, "", {}},
      {"modelnet40_resampled", true,  40,     0,  0,    true,   false, "", {}},
      {"modelnet_h5",          true,  40,     0,  0,    false,  true,  "", {}},
      {"modelnet_folder",      true,  40,     0,  0,    false,  false, "", {}},
      {"scanobjectnn",         true,  15,     0,  0,    false,  true,  "", {"obj_bg", "obj_only", "pb_t50_rs"}},
      {"shapenet55",           true,  55,     0,  0,    false,  false, "", {}},
      {"modelnet_fewshot",     true,  0,      0,  0,    true,   false, "", {}},
      // part segmentation (ShapeNetPart: 50 parts of 16 categories)
      {"shapenetpart",         true,  50,     0,  0,    true,   false, "", {}, true, 16},
      {"shapenetpart_v0",      true,  50,     0,  0,    false,  false, "", {}, true, 16},
      {"shapenetpart_h5",      true,  50,     0,  0,    false,  true,  "", {}, true, 16},
  };
  return table;
}

std::vector<std::string> dataset_names() {
  std::vector<std::string> names;
  for (const auto& d : dataset_table()) names.push_back(d.name);
  return names;
}

const DatasetInfo& dataset_info(const std::string& name) {
  for (const auto& d : dataset_table())
    if (name == d.name) return d;
  std::string choices;
  for (const auto& n : dataset_names()) choices += (choices.empty() ? "" : ", ") + n;
  fail("data.dataset: unknown dataset '" + name + "' (one of " + choices + ")");
}

}  // namespace ewa
