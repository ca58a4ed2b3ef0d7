// What ewa knows about each dataset without reading it: the one table behind the schema's
// data.dataset choices, config validation and the sizes a benchmark assumes. The readers are
// in datasets/ (datasets/registry.cpp maps each name here to its loader; a test checks that
// every row has one).
#pragma once
#include <string>
#include <vector>

namespace ewa {

struct DatasetInfo {
  const char* name;           // data.dataset
  bool point_cloud;           // point clouds (point models) or images (vit)
  int64_t num_classes;        // as released; 0 = data.way (few-shot folds) or the folder's (image folders)
  int64_t img_size, in_chans; // images: pixels per side and channels; point clouds: 0
  bool normals;               // the files carry normals (data.use_normals may be true)
  bool hdf5;                  // stored as HDF5 (needs a build with EWA_WITH_HDF5)
  const char* default_root;   // data.root when the config leaves it empty; "" = required
  std::vector<std::string> variants;  // data.variant must be one of these; empty = no variants
  // Part segmentation: every point carries a part label, num_classes counts the parts and
  // num_categories the object categories (the point_seg model's one-hot input).
  bool segmentation = false;
  int64_t num_categories = 0;
  // Image folders: images of any size, read through data.image_size's transforms; num_classes 0
  // = as many as the folder has.
  bool folder = false;
};

const std::vector<DatasetInfo>& dataset_table();

// One ShapeNetPart category: its name, synset folder and its contiguous range of global part ids
// (the official seg_classes table; parts 0..49).
struct PartCategory {
  std::string name, synset;
  int64_t first_part, num_parts;
};
// The 16 categories in the released synsetoffset2category.txt order (alphabetical): what the
// point_seg model's one-hot category input and 50 outputs mean.
const std::vector<PartCategory>& shapenet_part_categories();
// Index of the category named `name`, or -1.
int64_t part_category_index(const std::string& name);
// The category of every part id (50 entries).
std::vector<int64_t> shapenet_part_to_category();
// Throws "<what>: part label L is outside the parts of <Category> (a..b)" when a label in
// [lo, hi] is not one of `category`'s parts: the one check of the training loaders and of
// predict / show for labels that mix categories (a file holds one shape of one category).
void check_part_labels(int64_t lo, int64_t hi, int64_t category, const std::string& what);
std::vector<std::string> dataset_names();
// The row of `name`; fails "data.dataset: unknown dataset ..." naming the choices.
const DatasetInfo& dataset_info(const std::string& name);

}  // namespace ewa
