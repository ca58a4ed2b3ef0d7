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
// Every cloud is centred and scaled into the unit sphere and reordered by farthest point
// sampling (start at point 0), keeping data.num_points points: the model sees the FPS subset, as
// Point-MAE. Parsed splits are cached as .pt files so a dataset is parsed once.
#pragma once
#include <string>
#include <vector>

#include <torch/torch.h>

#include "config/config.h"
#include "datasets/batch_source.h"

namespace ewa::data {

struct PointCloudSet {
  torch::Tensor points;  // float [N, P, C], C = 3 (xyz) or 6 (xyz + normals)
  torch::Tensor labels;  // int64 [N]
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

extern const std::vector<std::string> kScanObjectNNClasses;

// Centres on the centroid and divides by the largest distance to it (xyz channels only).
// Throws ewa::Error naming `what` for an empty cloud, NaN/inf coordinates or a single repeated point.
torch::Tensor normalize_unit_sphere(const torch::Tensor& cloud, const std::string& what);

// Points sampled from a mesh surface (.off) when it feeds a model of cfg.num_points points.
int64_t mesh_sample_points(const DataConfig& cfg);

// Normalises and FPS-orders one cloud [P, C] to `keep` points; `what` names it in errors
// (a cloud with fewer than `keep` points is an error).
torch::Tensor prepare_cloud(const torch::Tensor& cloud, int64_t keep, const std::string& what);

struct PointSplits {
  PointCloudSet train, val, test;
  std::vector<std::string> class_names;
};

// Loads (or reads from the cache) the splits of cfg.dataset.
PointSplits load_point_splits(const DataConfig& cfg, uint64_t seed);

// Point-MAE's training augmentation on a batch [B, P, C]: per-cloud anisotropic scale in
// [scale_low, scale_high] and translation in [-translate, translate] on xyz; optional rotation
// about the y axis (normals rotate too) and clipped Gaussian jitter.
torch::Tensor augment_points(const torch::Tensor& points, const DataConfig& cfg);

class PointBatcher : public IndexedBatchSource {
 public:
  PointBatcher(PointCloudSet set, DataConfig cfg, int64_t batch_size, bool shuffle, uint64_t seed);
  // Batch i: points float [B, P, C], labels int64 [B]; `augment` applies augment_points.
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t i, bool augment) const override;

 private:
  PointCloudSet set_;
  DataConfig cfg_;
};

TaskData load_point_task(const DataConfig& cfg, uint64_t seed);

}  // namespace ewa::data
