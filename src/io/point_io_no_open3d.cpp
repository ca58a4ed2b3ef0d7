// io/point_io.h without Open3D: mesh formats only Open3D reads are refused with what to install.
#include "common/error.h"
#include "common/fs.h"
#include "io/point_io_backends.h"

namespace ewa::io {

bool built_with_open3d() { return false; }

Mesh read_mesh_with_open3d(const std::string& path) {
  fail(path + ": ewa was built without Open3D, so " + lower_extension(path) +
       " meshes cannot be read (reconfigure with EWA_WITH_OPEN3D=ON and libopen3d-dev)");
}

}  // namespace ewa::io
