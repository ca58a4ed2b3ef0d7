// ShapeNetPart part segmentation (Yi et al. 2016; the set Point-MAE / Point-BERT report), in the
// layouts it is released in (datasets/README.md "ShapeNetPart"):
//   shapenetpart: shapenetcore_partanno_segmentation_benchmark_v0_normal/ with
//     synsetoffset2category.txt ("Airplane\t02691156" lines), train_test_split/
//     shuffled_{train,val,test}_file_list.json (entries "shape_data/<synset>/<id>") and
//     <synset>/<id>.txt of "x y z nx ny nz part" lines (part = the global part id 0..49).
//   shapenetpart_v0: shapenetcore_partanno_segmentation_benchmark_v0/ (the older release many
//     mirrors carry): the same category file and split lists, <synset>/points/<id>.pts ("x y z")
//     beside <synset>/points_label/<id>.seg (the part within the category, 1..k per line).
//   shapenetpart_h5: hdf5_data/ with {train,val,test}_hdf5_file_list.txt naming ply_data_*.h5
//     files of `data` [N, 2048, 3], `label` [N, 1] (category) and `pid` [N, 2048] (global part).
// As upstream: training reads train + val ("trainval"), evaluation test; each cloud is
// normalised into the unit sphere once; every batch draws data.num_points points of each shape
// with replacement (the test split too), training batches then scale each shape by one factor
// in [data.scale_low, data.scale_high] and shift it by up to +-data.translate per axis.
// Categories are numbered as in the released synsetoffset2category.txt (alphabetical, 16), parts
// by the official table, so official weights see the same one-hot inputs and outputs.
#pragma once
#include <string>
#include <vector>

#include <torch/torch.h>

#include "config/config.h"
#include "config/datasets.h"
#include "data/batch_source.h"

namespace ewa::datasets {

// The categories and their parts: config/datasets.h (shapenet_part_categories).
// Part names "<Category> <k>" (k = 1..num_parts: the release does not name parts), or the lines of
// <root>/part_names.txt when it exists (50 lines; the synthetic set writes one).
std::vector<std::string> part_names(const std::string& root);

// The shapes of one split: every shape's points concatenated.
struct PartSet {
  torch::Tensor points;    // float [sum P_i, C], each shape normalised into the unit sphere
  torch::Tensor labels;    // int64 [sum P_i]: global part ids
  torch::Tensor offsets;   // int64 [S + 1]: shape i is rows offsets[i] .. offsets[i + 1]
  std::vector<std::string> ids;  // "<synset>/<id>"
  int64_t size() const { return offsets.defined() ? offsets.size(0) - 1 : 0; }
};

struct PartSplits {
  PartSet train, test;  // train = the release's train + val lists
  std::vector<std::string> notes;
};

// Reads the splits of cfg.dataset (shapenetpart, shapenetpart_v0, shapenetpart_h5) from cfg.root.
// Every problem (a missing file named by a split list, a ragged text file, a part outside its
// category's parts, a category not in the table) is a one-line error naming the file.
PartSplits load_part_splits(const DataConfig& cfg);
std::vector<std::string> part_dataset_names();

// Batches of a PartSet: points float [B, data.num_points, C] drawn with replacement from each
// shape (torch's default generator), labels int64 [B, data.num_points]; data::View::Training and
// Augmented add the scale and shift.
class PartBatcher : public data::IndexedBatchSource {
 public:
  PartBatcher(PartSet set, DataConfig cfg, int64_t batch_size, bool shuffle, uint64_t seed, bool drop_last = false);
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, data::View view) const override;

 private:
  PartSet set_;
  DataConfig cfg_;
};

data::TaskData load_part_task(const DataConfig& cfg, uint64_t seed, data::Use use = data::Use::Training);

// Synthetic part-labelled shapes in the released shapenetpart layout (the tests' and the demo's
// data): six ShapeNetPart categories (Airplane, Lamp, Laptop, Mug, Rocket, Table) built from
// primitive parts with the official part ids, random proportions, pose about the up axis and
// noise, 2048 to 2800 points each with the primitives' normals; part_names.txt names the parts.
// Categories get 1.5, 1, 0.5, 0.75, 0.5 and 1.75 times the counts per category (in that order).
struct SynthPartOptions {
  int64_t train_per_category = 40, val_per_category = 5, test_per_category = 12;
  double noise = 0.005;
  uint64_t seed = 0;
};
// Returns the number of shapes written.
int64_t write_synthetic_parts(const std::string& root, const SynthPartOptions& o);

}  // namespace ewa::datasets
