#include "config/datasets.h"

#include "common/error.h"
#include "common/named_table.h"

namespace ewa {

const std::vector<DatasetInfo>& dataset_table() {
  static const std::vector<DatasetInfo> table = {
      // name                  points classes img chans normals hdf5  default root
      {"fashion_mnist",        false, 10,     28, 1,    false,  false, "/usr/share/datasets/fashion-mnist", {}},
      {"mnist",                false, 10,     28, 1,    false,  false, "", {}},
      {"cifar10",              false, 10,     32, 3,    false,  false, "", {}},
      {"cifar100",             false, 100,    32, 3,    false,  false, "", {}},
      // image folders: any image size, data.image_size what the model sees
      {"image_folder",         false, 0,      0,  3,    false,  false, "", {}, false, 0, true},
      {"tiny_imagenet",        false, 200,    0,  3,    false,  false, "", {}, false, 0, true},
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

std::vector<std::string> dataset_names() { return row_names(dataset_table()); }

const DatasetInfo& dataset_info(const std::string& name) { return row_named(dataset_table(), name, "data.dataset", "dataset"); }

void check_part_labels(int64_t lo, int64_t hi, int64_t category, const std::string& what) {
  const auto& c = shapenet_part_categories().at(static_cast<size_t>(category));
  if (lo < c.first_part || hi >= c.first_part + c.num_parts)
    fail(what + ": part label " + std::to_string(lo < c.first_part ? lo : hi) + " is outside the parts of " + c.name + " (" +
         std::to_string(c.first_part) + ".." + std::to_string(c.first_part + c.num_parts - 1) + ")");
}

const std::vector<PartCategory>& shapenet_part_categories() {
  // synsetoffset2category.txt of the release and the part ranges of the official seg_classes
  // table (PM:segmentation/dataset.py).
  static const std::vector<PartCategory> table = {
      {"Airplane", "02691156", 0, 4},   {"Bag", "02773838", 4, 2},        {"Cap", "02954340", 6, 2},
      {"Car", "02958343", 8, 4},        {"Chair", "03001627", 12, 4},     {"Earphone", "03261776", 16, 3},
      {"Guitar", "03467517", 19, 3},    {"Knife", "03624134", 22, 2},     {"Lamp", "03636649", 24, 4},
      {"Laptop", "03642806", 28, 2},    {"Motorbike", "03790512", 30, 6}, {"Mug", "03797390", 36, 2},
      {"Pistol", "03948459", 38, 3},    {"Rocket", "04099429", 41, 3},    {"Skateboard", "04225987", 44, 3},
      {"Table", "04379243", 47, 3},
  };
  return table;
}

int64_t part_category_index(const std::string& name) {
  const auto& t = shapenet_part_categories();
  for (size_t i = 0; i < t.size(); ++i)
    if (t[i].name == name) return static_cast<int64_t>(i);
  return -1;
}

std::vector<int64_t> shapenet_part_to_category() {
  std::vector<int64_t> out;
  const auto& t = shapenet_part_categories();
  for (size_t c = 0; c < t.size(); ++c) out.insert(out.end(), static_cast<size_t>(t[c].num_parts), static_cast<int64_t>(c));
  return out;
}

}  // namespace ewa
