// io/point_io.h without PCL: .pcd and .obj files are refused with what to install.
#include "common/error.h"
#include "io/point_io_backends.h"

namespace ewa::io {

bool built_with_pcl() { return false; }

torch::Tensor read_pcd_with_pcl(const std::string& path) {
  fail(path + ": ewa was built without PCL, so .pcd files cannot be read (reconfigure with EWA_WITH_PCL=ON and libpcl-dev)");
}

Mesh read_obj_with_pcl(const std::string& path) {
  fail(path + ": ewa was built without PCL, so .obj meshes cannot be read (reconfigure with EWA_WITH_PCL=ON and libpcl-dev)");
}

}  // namespace ewa::io
