// Point-cloud classification datasets in their published layouts (datasets/README.md):
//   modelnet40_resampled: modelnet40_normal_resampled/ with modelnet40_shape_names.txt,
//     modelnet40_{train,test}.txt (names such as airplane_0001) and <class>/<name>.txt files of
//     "x,y,z,nx,ny,nz" lines.
//   modelnet_h5: modelnet40_ply_hdf5_2048/ with {train,test}_files.txt listing ply_data_*.h5
//     (datasets `data` [N, 2048, 3], `label` [N, 1]) and shape_names.txt; also the synthetic
//     shapes of `ewa data synth`.
//   modelnet_folder: <root>/<class>/{train,test}/<name>.{off,txt,xyz,pcd,ply} (ModelNet10/40
//     meshes or point files; classes are the sorted folder names).
//   scanobjectnn: h5_files/main_split(_nobg)/ files of the three variants; 15 classes.
//   modelnet_fewshot: the released ModelNetFewshot/<way>way_<shot>shot/<fold>.pkl pickles.
// How clouds are stored depends on data.pipeline (docs/protocols.md):
//   fixed: each cloud centred and scaled into the unit sphere (data.normalize) and reordered by
//     farthest point sampling from point 0; training clouds keep data.num_points points (each
//     step only augments them), evaluation clouds the first eval_points(cfg).
//   resample (Point-MAE / Point-BERT): training clouds keep every point (or data.source_points of
//     them, FPS from a seeded random start, as the official .dat files), normalised when
//     data.normalize, and are resampled every step (data/point_sampling.h); evaluation clouds
//     the first eval_points(cfg) of pointnet2_ops' FPS from point 0, as the official validate().
// Parsed splits are cached as .pt files (keyed on everything that shapes them), so a dataset is
// parsed once.
#pragma once
#include <string>
#include <vector>

#include <torch/torch.h>

#include "config/config.h"
#include "data/batch_source.h"
#include "data/point_sampling.h"

namespace ewa::datasets {

struct PointCloudSet {
  torch::Tensor points;  // float [N, P, C], C = 3 (xyz) or 6 (xyz + normals)
  torch::Tensor labels;  // int64 [N]
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

extern const std::vector<std::string> kScanObjectNNClasses;

// The released few-shot pickle of cfg's way, shot and fold (<root>/<way>way_<shot>shot/<fold>.pkl,
// or the folder name without the underscore); throws the loader's one-line error naming the file
// and the folds that are there when it does not exist (`ewa fewshot` checks every fold first).
std::string fewshot_fold_file(const DataConfig& cfg);
extern const std::vector<std::string> kModelNet40Classes;  // modelnet40_shape_names.txt order

struct PointSplits {
  PointCloudSet train, val, test;
  std::vector<std::string> class_names;
  std::vector<std::string> notes;  // what the cache did ("data cache: read ...")
};

// Loads (or reads from the cache) the splits of cfg.dataset.
PointSplits load_point_splits(const DataConfig& cfg, uint64_t seed);
// The point-cloud datasets load_point_splits reads (its table of listers).
std::vector<std::string> point_dataset_names();

class PointBatcher : public data::IndexedBatchSource {
 public:
  // `fps_ordered`: see view_of_clouds (false for a training split under data.pipeline = resample).
  PointBatcher(PointCloudSet set, DataConfig cfg, int64_t batch_size, bool shuffle, uint64_t seed, bool drop_last = false,
               bool fps_ordered = true);
  // Batch i: points float [B, data.num_points, C] on the placed device, labels int64 [B] (see data::View).
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, data::View view) const override;
  // On a GPU the stored clouds and labels move there once (when they take at most
  // kResidentBytes), so a batch is gathered, resampled and augmented there with no host copy
  // but its few random draws; a larger set stays in host memory and each batch is copied over
  // through page-locked memory.
  void place(torch::Device device, int64_t rank = 0, int64_t world = 1) override;
  static constexpr int64_t kResidentBytes = int64_t(2) << 30;

 private:
  PointCloudSet set_;
  DataConfig cfg_;
  bool fps_ordered_;
};

// The splits of cfg.dataset as batch sources (the train split shuffled for data::Use::Training; in
// stored order, nothing dropped, for data::Use::Features).
data::TaskData load_point_task(const DataConfig& cfg, uint64_t seed, data::Use use = data::Use::Training);

}  // namespace ewa::datasets
