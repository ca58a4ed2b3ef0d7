// Point-cloud and mesh files, one reader each, used by training data, evaluation and prediction
// alike: parsers of our own for .txt/.xyz/.pts/.csv (ModelNet40 resampled), .off, .npy and .ply
// (ply.cpp, reader and writer); .pcd and .obj through PCL and other meshes through Open3D when
// built with them (one backend file each: point_io_backends.h).
// Every reader throws ewa::Error naming the file, the line where it applies, and the problem.
#pragma once
#include <string>
#include <vector>

#include <torch/torch.h>

namespace ewa::io {

// Text points: one point per line, numbers separated by commas and/or blanks (ModelNet40
// resampled "x,y,z,nx,ny,nz"; .xyz "x y z ..."; .csv with an optional header line; .pts with an
// optional point-count first line). Returns float [P, C] with C the column count of the first
// line (at least 3). Empty files, ragged lines, non-numbers and NaN/inf are errors.
torch::Tensor read_text_points(const std::string& path);
// The same parser for any table of numbers with at least `min_columns` per line (ShapeNetPart's
// .seg part labels: one per line).
torch::Tensor read_text_table(const std::string& path, int64_t min_columns);
// ShapeNetPart v0's part labels: `seg_path` (<synset>/points_label/<id>.seg), one whole number in
// 1..num_parts per point of `pts_path` (`points` of them), `category` naming the parts' category in
// messages. Returns int64 [points], the category's local part ids 1..num_parts. The one reader of
// .seg files (the v0 dataset loader and ewa predict / show alike).
torch::Tensor read_seg_labels(const std::string& seg_path, const std::string& pts_path, int64_t points, int64_t num_parts,
                              const std::string& category);

struct Mesh {
  torch::Tensor vertices;  // float [V, 3]
  torch::Tensor faces;     // int64 [F, 3] (polygons fan-triangulated)
  torch::Tensor labels;    // int64 [V]: a PLY vertex property label / part / scalar_label; undefined when none
};

// PLY (ascii or binary, any numeric vertex type): the vertex element's x, y, z and, when there is
// a face element, its polygons fan-triangulated (faces [0, 3] when there are none). Our own
// reader, in every build (datasets/ply.cpp).
Mesh read_ply(const std::string& path);

// OFF mesh (Princeton ModelNet). Tolerates the header glued to the counts ("OFF1046 900 0").
Mesh read_off(const std::string& path);

// n points uniformly on the surface (triangles picked by area, uniform barycentric points).
torch::Tensor sample_surface(const Mesh& mesh, int64_t n, uint64_t seed);

// .pcd through PCL; .ply through read_ply (its vertices; in every build). NaN points (organized
// clouds) are kept: callers drop them (predict) or refuse them (datasets).
torch::Tensor read_pcl_points(const std::string& path);

// NumPy .npy array (format versions 1.0, 2.0, 3.0): dtype float32 or float64, little- or
// big-endian, C or Fortran order, any shape (ShapeNet-55's shapenet_pc/*.npy: [8192, 3] float32).
// Returns a float32 tensor of that shape in C order. Other dtypes, object arrays, a malformed
// header and a truncated body are errors naming the file and the problem.
torch::Tensor read_npy(const std::string& path);
// Writes a float32 array in .npy format 1.0 (C order), atomically.
void write_npy(const std::string& path, const torch::Tensor& array);

// Writes points [P, 3] (and optional uint8 colours [P, 3] and integer labels [P], the vertex
// property "int label") as an ASCII PLY file, atomically: readable by Open3D, PCL, MeshLab and
// read_point_file.
void write_ply_points(const std::string& path, const torch::Tensor& points, const torch::Tensor& colors = {},
                      const torch::Tensor& labels = {});

// The per-point labels a point file carries (part segmentation), or undefined when it has none:
// a .ply vertex property label / part / scalar_label; the last column of a text file of 4
// (x y z label) or 7 (x y z nx ny nz label, ShapeNetPart's) columns. Labels must be whole numbers >= 0.
torch::Tensor read_point_labels(const std::string& path);

// A triangle mesh: .obj through PCL (polygons fan-triangulated), .ply through read_ply, other
// mesh formats through Open3D.
Mesh read_mesh(const std::string& path);

// Any point file by extension: .txt .xyz .pts .csv -> read_text_points; .npy -> read_npy ([P, C >= 3]);
// .pcd -> read_pcl_points; vertex-only .ply -> its vertices; .off, .obj and .ply with faces -> surface sample
// of `mesh_points` points (an .obj without faces gives its vertices).
torch::Tensor read_point_file(const std::string& path, int64_t mesh_points, uint64_t seed);

bool built_with_pcl();
bool built_with_open3d();

}  // namespace ewa::io
