// HDF5 classification files (ModelNet40 ply_hdf5_2048, ScanObjectNN h5_files) through the HDF5
// C++ API: hdf5.cpp when ewa is built with HDF5, no_hdf5.cpp (every call refused with what to
// install) otherwise; CMake picks one.
#pragma once
#include <string>

#include <torch/torch.h>

namespace ewa::datasets {

// HDF5 classification file: dataset `data` float [N, P, 3+] and `label` integer [N] or [N, 1].
// ShapeNetPart's hdf5_data files add `pid` [N, P]: the part label of every point.
struct H5Clouds {
  torch::Tensor points;  // float [N, P, C]
  torch::Tensor labels;  // int64 [N]
  torch::Tensor parts;   // int64 [N, P] when the file has `pid`, else undefined
};
H5Clouds read_h5_clouds(const std::string& path);
// Writes the same layout (label as uint8 [N, 1], as ModelNet40's files; `parts` as uint8 `pid`
// [N, P] when given, as ShapeNetPart's).
void write_h5_clouds(const std::string& path, const torch::Tensor& points, const torch::Tensor& labels,
                     const torch::Tensor& parts = {});


bool built_with_hdf5();

}  // namespace ewa::datasets
