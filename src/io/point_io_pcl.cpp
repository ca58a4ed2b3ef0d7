// The PCL backend of io/point_io.h (compiled when ewa is built with PCL).
#include <filesystem>

#include <pcl/PolygonMesh.h>
#include <pcl/conversions.h>
#include <pcl/io/obj_io.h>
#include <pcl/io/pcd_io.h>
#include <pcl/point_types.h>

#include "common/error.h"
#include "io/point_io_backends.h"

namespace ewa::io {
namespace fs = std::filesystem;

bool built_with_pcl() { return true; }

torch::Tensor read_pcd_with_pcl(const std::string& path) {
  pcl::PointCloud<pcl::PointXYZ> cloud;
  {
    // PCL fills x, y, z with zeros and reports success when the file has no such fields.
    if (!fs::exists(path)) fail(path + ": cannot open file");
    pcl::PCLPointCloud2 header;
    Eigen::Vector4f origin;
    Eigen::Quaternionf orientation;
    int version = 0, data_type = 0;
    unsigned int data_index = 0;
    if (pcl::PCDReader().readHeader(path, header, origin, orientation, version, data_type, data_index) != 0)
      fail(path + ": PCL could not read the PCD header (truncated or not a .pcd file)");
    std::string names;
    int xyz = 0;
    for (const auto& f : header.fields) {
      names += (names.empty() ? "" : " ") + f.name;
      xyz += f.name == "x" || f.name == "y" || f.name == "z";
    }
    if (header.fields.empty()) fail(path + ": not a valid .pcd file (its header has no FIELDS)");
    if (xyz != 3) fail(path + ": PCD fields are '" + names + "'; expected fields x, y and z");
  }
  // PCL prints its own diagnostics to stderr; the error we throw says what went wrong.
  if (pcl::io::loadPCDFile(path, cloud) != 0) fail(path + ": PCL could not read the file (missing, truncated or not a valid pcd)");
  if (cloud.empty()) fail(path + ": empty point cloud (no points)");
  auto t = torch::empty({static_cast<int64_t>(cloud.size()), 3}, torch::kFloat);
  auto acc = t.accessor<float, 2>();
  for (size_t i = 0; i < cloud.size(); ++i) {
    const auto& p = cloud[i];
    // Organized clouds mark missing points with NaN: kept here, dropped or refused by the caller.
    acc[i][0] = p.x, acc[i][1] = p.y, acc[i][2] = p.z;
  }
  return t;
}

Mesh read_obj_with_pcl(const std::string& path) {
  pcl::PolygonMesh m;
  if (pcl::io::loadOBJFile(path, m) != 0) fail(path + ": PCL could not read the mesh (truncated or not a valid obj)");
  pcl::PointCloud<pcl::PointXYZ> v;
  pcl::fromPCLPointCloud2(m.cloud, v);
  if (v.empty()) fail(path + ": mesh has no vertices");
  Mesh out{torch::empty({static_cast<int64_t>(v.size()), 3}, torch::kFloat), {}};
  auto va = out.vertices.accessor<float, 2>();
  for (size_t i = 0; i < v.size(); ++i) va[i][0] = v[i].x, va[i][1] = v[i].y, va[i][2] = v[i].z;
  std::vector<int64_t> tri;
  for (size_t f = 0; f < m.polygons.size(); ++f) {
    const auto& ids = m.polygons[f].vertices;
    for (auto id : ids)
      if (id < 0 || static_cast<size_t>(id) >= v.size())
        fail(path + ": face " + std::to_string(f + 1) + " refers to vertex " + std::to_string(id + 1) + " of " +
             std::to_string(v.size()));
    for (size_t k = 1; k + 1 < ids.size(); ++k) tri.insert(tri.end(), {int64_t(ids[0]), int64_t(ids[k]), int64_t(ids[k + 1])});
  }
  out.faces = torch::tensor(tri, torch::kLong).view({-1, 3});
  return out;
}

}  // namespace ewa::io
