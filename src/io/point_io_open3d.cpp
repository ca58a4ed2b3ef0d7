// The Open3D backend of io/point_io.h (compiled when ewa is built with Open3D).
#include <open3d/geometry/TriangleMesh.h>
#include <open3d/io/TriangleMeshIO.h>
#include <open3d/utility/Logging.h>

#include "common/error.h"
#include "common/fs.h"
#include "io/point_io_backends.h"

namespace ewa::io {

bool built_with_open3d() { return true; }

Mesh read_mesh_with_open3d(const std::string& path) {
  const std::string ext = lower_extension(path);
  open3d::utility::SetVerbosityLevel(open3d::utility::VerbosityLevel::Error);
  open3d::geometry::TriangleMesh m;
  open3d::io::ReadTriangleMeshOptions options;
  options.enable_post_processing = false;
  if (!open3d::io::ReadTriangleMesh(path, m, options))
    fail(path + ": Open3D could not read the mesh (truncated or not a valid " + ext.substr(1) + ")");
  if (m.vertices_.empty()) fail(path + ": mesh has no vertices");
  Mesh out{torch::empty({static_cast<int64_t>(m.vertices_.size()), 3}, torch::kFloat),
           torch::empty({static_cast<int64_t>(m.triangles_.size()), 3}, torch::kLong)};
  auto v = out.vertices.accessor<float, 2>();
  for (size_t i = 0; i < m.vertices_.size(); ++i)
    for (int c = 0; c < 3; ++c) v[i][c] = static_cast<float>(m.vertices_[i](c));
  auto f = out.faces.accessor<int64_t, 2>();
  const int64_t nv = out.vertices.size(0);
  for (size_t i = 0; i < m.triangles_.size(); ++i)
    for (int c = 0; c < 3; ++c) {
      f[i][c] = m.triangles_[i](c);
      if (f[i][c] < 0 || f[i][c] >= nv)
        fail(path + ": face " + std::to_string(i) + " refers to vertex " + std::to_string(f[i][c]) + " of " + std::to_string(nv));
    }
  return out;
}

}  // namespace ewa::io
