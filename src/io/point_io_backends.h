// The optional backends of io/point_io.h, one source file each, chosen by CMake:
// point_io_pcl.cpp or point_io_no_pcl.cpp, point_io_open3d.cpp or point_io_no_open3d.cpp.
// A backend that was not built throws ewa::Error naming the file and how to get the backend.
#pragma once
#include <string>

#include "io/point_io.h"

namespace ewa::io {

// .pcd points through PCL (x, y, z; NaN points of organized clouds kept).
torch::Tensor read_pcd_with_pcl(const std::string& path);
// .obj mesh through PCL, polygons fan-triangulated.
Mesh read_obj_with_pcl(const std::string& path);
// Any other mesh format Open3D reads (.stl, .gltf ...), triangles as stored.
Mesh read_mesh_with_open3d(const std::string& path);

}  // namespace ewa::io
