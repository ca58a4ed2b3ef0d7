// The synthetic shapes dataset, the default data of the 3D demo: procedurally sampled surfaces
// of 8 classes with random size, aspect, pose, noise and partial occlusion, written in the
// ModelNet40 ply_hdf5_2048 layout so the real loader reads it (data.dataset = "modelnet_h5"), or,
// where ewa is built without HDF5, as .npy files in class folders (data.dataset = "modelnet_folder").
#pragma once
#include <string>
#include <vector>

#include <torch/torch.h>

namespace ewa::datasets {

extern const std::vector<std::string> kSynthClasses;  // sphere, box, cylinder, cone, torus, pyramid, capsule, ellipsoid (oblate)

struct SynthOptions {
  int64_t train_per_class = 200;
  int64_t test_per_class = 50;
  int64_t points = 2048;
  double noise = 0.01;          // Gaussian jitter (fraction of the shape's size)
  double max_occlusion = 0.25;  // up to this share of the surface is cut away by a random plane
  uint64_t seed = 0;
  std::string format;           // "h5" or "npy"; empty: h5 when built with HDF5, npy otherwise
};

// The format `ewa data synth` writes when none is asked for, and the data.dataset that reads it.
std::string default_synth_format();
std::string synth_dataset_for(const std::string& format);

// One cloud [points, 3] of class `cls`, drawn from `gen`.
torch::Tensor synth_shape(int64_t cls, const SynthOptions& o, at::Generator& gen);

// format h5: writes <dir>/ply_data_train0.h5, ply_data_test0.h5, train_files.txt, test_files.txt
// and shape_names.txt. format npy: <dir>/<class>/{train,test}/<class>_<iiii>.npy (float32 [P, 3])
// and shape_names.txt (the classes in the generator's order; the folder loader sorts them by
// name). The same clouds either way. Returns the number of clouds written.
int64_t write_synthetic_dataset(const std::string& dir, const SynthOptions& o);

// Writes `per_class` clouds of every class as single point files, the way users keep scans:
// <dir>/<class>/<class>_<i>.<format> (format ply, npy or xyz). Returns the number written.
int64_t write_synthetic_files(const std::string& dir, int64_t per_class, const std::string& format, const SynthOptions& o);

}  // namespace ewa::datasets
