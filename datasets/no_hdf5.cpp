// datasets/hdf5.h without HDF5: every call refused with what to install.
#include "datasets/hdf5.h"

#include "common/error.h"

namespace ewa::datasets {

bool built_with_hdf5() { return false; }

H5Clouds read_h5_clouds(const std::string& path) {
  fail(path + ": ewa was built without HDF5, so .h5 datasets cannot be read (reconfigure with EWA_WITH_HDF5=ON and libhdf5-dev)");
}

void write_h5_clouds(const std::string& path, const torch::Tensor& points, const torch::Tensor& labels,
                     const torch::Tensor& parts) {
  fail(path + ": ewa was built without HDF5, so .h5 files cannot be written");
}

}  // namespace ewa::datasets
