#include "datasets/point_io.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"

#ifdef EWA_HAS_HDF5
#include <H5Cpp.h>
#endif
#ifdef EWA_HAS_OPEN3D
#include <open3d/geometry/TriangleMesh.h>
#include <open3d/io/TriangleMeshIO.h>
#include <open3d/utility/Logging.h>
#endif
#ifdef EWA_HAS_PCL
#include <pcl/PolygonMesh.h>
#include <pcl/conversions.h>
#include <pcl/io/obj_io.h>
#include <pcl/io/pcd_io.h>
#include <pcl/io/ply_io.h>
#include <pcl/point_types.h>
#endif

namespace ewa::data {
namespace fs = std::filesystem;

namespace {

// Splits on commas and blanks; returns false when a token is not a finite number.
bool parse_numbers(const std::string& line, std::vector<float>& out) {
  out.clear();
  const char* p = line.c_str();
  while (*p) {
    while (*p == ',' || std::isspace(static_cast<unsigned char>(*p))) ++p;
    if (!*p) break;
    char* end = nullptr;
    const float v = std::strtof(p, &end);
    if (end == p || !std::isfinite(v)) return false;
    out.push_back(v);
    p = end;
    if (*p && *p != ',' && !std::isspace(static_cast<unsigned char>(*p))) return false;
  }
  return true;
}

std::string shape_text(at::IntArrayRef sizes) {
  std::string s = "(";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + (sizes.size() == 1 ? ",)" : ")");
}

// The value text of `key` in a .npy header dict such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (8192, 3), }; empty when absent.
std::string npy_header_value(const std::string& header, const std::string& key) {
  const auto k = header.find("'" + key + "'");
  if (k == std::string::npos) return {};
  auto p = header.find(':', k);
  if (p == std::string::npos) return {};
  ++p;
  while (p < header.size() && header[p] == ' ') ++p;
  if (p >= header.size()) return {};
  const char open = header[p];
  if (open == '\'' || open == '"') {
    const auto e = header.find(open, p + 1);
    return e == std::string::npos ? std::string() : header.substr(p + 1, e - p - 1);
  }
  if (open == '(') {
    const auto e = header.find(')', p);
    return e == std::string::npos ? std::string() : header.substr(p, e - p + 1);
  }
  auto e = header.find_first_of(",}", p);
  std::string v = header.substr(p, e == std::string::npos ? std::string::npos : e - p);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

}  // namespace

torch::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open file");
  char magic[8];
  if (!in.read(magic, 8) || std::string(magic, 6) != "\x93NUMPY")
    fail(path + ": not a NumPy .npy file (missing the \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  if (major < 1 || major > 3) fail(path + ": unsupported .npy format version " + std::to_string(major) + " (expected 1, 2 or 3)");
  uint32_t header_len = 0;
  unsigned char len_bytes[4] = {0, 0, 0, 0};
  const int len_size = major == 1 ? 2 : 4;
  if (!in.read(reinterpret_cast<char*>(len_bytes), len_size)) fail(path + ": truncated .npy header");
  for (int i = len_size - 1; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  const uint64_t file_bytes = bytes_on_disk(path);
  if (header_len > (1u << 20) || header_len > file_bytes)
    fail(path + ": truncated or corrupt .npy header: it claims " + std::to_string(header_len) + " bytes");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) fail(path + ": truncated .npy header");
  const std::string descr = npy_header_value(header, "descr");
  const std::string order = npy_header_value(header, "fortran_order");
  const std::string shape = npy_header_value(header, "shape");
  if (descr.empty() || order.empty() || shape.empty())
    fail(path + ": malformed .npy header (expected 'descr', 'fortran_order' and 'shape'): " + header.substr(0, 80));
  if (descr.size() != 3 || (descr[0] != '<' && descr[0] != '>' && descr[0] != '|' && descr[0] != '=') ||
      descr[1] != 'f' || (descr[2] != '4' && descr[2] != '8'))
    fail(path + ": unsupported dtype '" + descr + "': expected float32 ('<f4') or float64 ('<f8')");
  const bool big_endian = descr[0] == '>';
  const int item = descr[2] - '0';
  if (order != "True" && order != "False") fail(path + ": malformed .npy header: fortran_order is '" + order + "'");
  const bool fortran = order == "True";
  std::vector<int64_t> sizes;
  {
    std::string inner = shape.substr(1, shape.size() - 2);
    std::stringstream ss(inner);
    for (std::string tok; std::getline(ss, tok, ',');) {
      const auto b = tok.find_first_not_of(' ');
      if (b == std::string::npos) continue;
      char* end = nullptr;
      const long long v = std::strtoll(tok.c_str() + b, &end, 10);
      if (end == tok.c_str() + b || v < 0) fail(path + ": malformed .npy shape " + shape);
      sizes.push_back(v);
    }
  }
  // The shape must fit in the file before anything is allocated (and its product in 64 bits).
  const uint64_t data_bytes = file_bytes - std::min<uint64_t>(file_bytes, uint64_t(in.tellg()));
  const bool empty = std::find(sizes.begin(), sizes.end(), int64_t(0)) != sizes.end();
  uint64_t need = empty ? 0 : uint64_t(item);  // bytes of data the shape needs
  for (auto s : sizes) {
    if (empty) break;
    if (need > data_bytes / uint64_t(s)) {
      need = data_bytes + 1;  // more than the file holds (and no overflow)
      break;
    }
    need *= uint64_t(s);
  }
  if (need > data_bytes)
    fail(path + ": truncated: shape " + shape + " needs more bytes of data than the file's " + std::to_string(data_bytes));
  const int64_t count = static_cast<int64_t>(need / uint64_t(item));
  std::vector<char> body(static_cast<size_t>(count) * item);
  if (!in.read(body.data(), static_cast<std::streamsize>(body.size())))
    fail(path + ": truncated: shape " + shape + " needs " + std::to_string(body.size()) + " bytes of data, the file has fewer");
  if (big_endian)
    for (size_t i = 0; i < body.size(); i += item) std::reverse(body.begin() + i, body.begin() + i + item);
  auto t = torch::from_blob(body.data(), {count}, item == 4 ? torch::kFloat : torch::kDouble).to(torch::kFloat).clone();
  if (!fortran) return t.view(sizes);
  // Fortran order: the first index varies fastest.
  std::vector<int64_t> reversed(sizes.rbegin(), sizes.rend());
  std::vector<int64_t> perm;
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) perm.push_back(d);
  return t.view(reversed).permute(perm).contiguous();
}

void write_npy(const std::string& path, const torch::Tensor& array) {
  auto a = array.to(torch::kFloat).contiguous();
  std::string shape = shape_text(a.sizes());
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(a.data_ptr<float>()), static_cast<size_t>(a.numel()) * 4);
  write_bytes_atomically(path, bytes.data(), bytes.size());
}

void write_ply_points(const std::string& path, const torch::Tensor& points, const torch::Tensor& colors) {
  auto p = points.to(torch::kFloat).contiguous();
  if (p.dim() != 2 || p.size(1) != 3) fail(path + ": write_ply_points needs points [P, 3]");
  const bool with_color = colors.defined();
  auto c = with_color ? colors.to(torch::kUInt8).contiguous() : colors;
  std::ostringstream os;
  os << "ply\nformat ascii 1.0\nelement vertex " << p.size(0) << "\nproperty float x\nproperty float y\nproperty float z\n";
  if (with_color) os << "property uchar red\nproperty uchar green\nproperty uchar blue\n";
  os << "end_header\n";
  const float* d = p.data_ptr<float>();
  for (int64_t i = 0; i < p.size(0); ++i) {
    os << d[3 * i] << ' ' << d[3 * i + 1] << ' ' << d[3 * i + 2];
    if (with_color) {
      const uint8_t* cc = c.data_ptr<uint8_t>() + 3 * i;
      os << ' ' << int(cc[0]) << ' ' << int(cc[1]) << ' ' << int(cc[2]);
    }
    os << '\n';
  }
  write_text_atomically(path, os.str());
}

torch::Tensor read_text_points(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path + ": cannot open file");
  std::vector<float> values, row;
  int64_t cols = -1, line_no = 0, rows = 0;
  const std::string ext = lower_extension(path);
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    const bool first = line_no == 1;
    // A .csv may start with a header (x,y,z,...); a .pts with its point count.
    if (first && ext == ".csv" && !parse_numbers(line, row)) continue;
    if (first && ext == ".pts" && parse_numbers(line, row) && row.size() == 1) continue;
    if (!parse_numbers(line, row))
      fail(path + ":" + std::to_string(line_no) + ": expected numbers separated by commas or blanks, got '" +
           line.substr(0, 60) + "' (NaN and inf are not accepted)");
    if (row.empty()) continue;
    if (cols < 0) {
      cols = static_cast<int64_t>(row.size());
      if (cols < 3) fail(path + ":" + std::to_string(line_no) + ": expected at least 3 coordinates per point, got " + std::to_string(cols));
    } else if (static_cast<int64_t>(row.size()) != cols) {
      fail(path + ":" + std::to_string(line_no) + ": expected " + std::to_string(cols) + " values like line 1, got " +
           std::to_string(row.size()));
    }
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows == 0) fail(path + ": empty point cloud (no points)");
  return torch::from_blob(values.data(), {rows, cols}, torch::kFloat).clone();
}

Mesh read_off(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path + ": cannot open file");
  std::string header;
  in >> header;
  if (header.rfind("OFF", 0) != 0) fail(path + ": not an OFF file: expected 'OFF' at the start, got '" + header.substr(0, 20) + "'");
  int64_t nv = 0, nf = 0, ne = 0;
  std::string rest = header.substr(3);  // "OFF1046 900 0": the vertex count is glued to the header
  std::istringstream counts(rest);
  if (!rest.empty()) {
    counts >> nv;
    if (!(in >> nf >> ne)) fail(path + ": malformed OFF header: expected vertex, face and edge counts");
  } else if (!(in >> nv >> nf >> ne)) {
    fail(path + ": malformed OFF header: expected vertex, face and edge counts");
  }
  if (nv <= 0 || nf <= 0) fail(path + ": empty mesh: " + std::to_string(nv) + " vertices, " + std::to_string(nf) + " faces");
  // Counts are checked against the file before allocating: a vertex takes at least 6 bytes
  // ("0 0 0\n"), a face at least 8 ("3 0 1 2\n").
  const int64_t file_bytes = static_cast<int64_t>(bytes_on_disk(path));
  if (nv > file_bytes / 6 + 1 || nf > file_bytes / 8 + 1)
    fail(path + ": header claims " + std::to_string(nv) + " vertices and " + std::to_string(nf) +
         " faces but the file has only " + std::to_string(file_bytes) + " bytes: truncated or corrupt");
  auto v = torch::empty({nv, 3}, torch::kFloat);
  auto va = v.accessor<float, 2>();
  for (int64_t i = 0; i < nv; ++i)
    for (int k = 0; k < 3; ++k) {
      double x;
      if (!(in >> x)) fail(path + ": truncated or malformed vertex " + std::to_string(i) + " of " + std::to_string(nv));
      if (!std::isfinite(x)) fail(path + ": vertex " + std::to_string(i) + " has a NaN or infinite coordinate");
      va[i][k] = static_cast<float>(x);
    }
  std::vector<int64_t> tris;
  for (int64_t f = 0; f < nf; ++f) {
    int64_t n = 0;
    if (!(in >> n) || n < 3 || n > file_bytes / 2 + 1)
      fail(path + ": truncated or malformed face " + std::to_string(f) + " of " + std::to_string(nf));
    std::vector<int64_t> ids(n);
    for (auto& id : ids)
      if (!(in >> id) || id < 0 || id >= nv)
        fail(path + ": face " + std::to_string(f) + " has a vertex index outside [0, " + std::to_string(nv) + ")");
    std::string tail;
    std::getline(in, tail);  // optional per-face colour
    for (int64_t k = 1; k + 1 < n; ++k) tris.insert(tris.end(), {ids[0], ids[k], ids[k + 1]});
  }
  return {v, torch::tensor(tris, torch::kLong).view({-1, 3})};
}

torch::Tensor sample_surface(const Mesh& mesh, int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto a = mesh.vertices.index_select(0, mesh.faces.select(1, 0));
  auto b = mesh.vertices.index_select(0, mesh.faces.select(1, 1));
  auto c = mesh.vertices.index_select(0, mesh.faces.select(1, 2));
  auto area = torch::linalg_cross(b - a, c - a, -1).norm(2, 1).to(torch::kDouble);
  if (!(area.sum().item<double>() > 0)) fail("mesh has zero surface area");
  auto face = torch::multinomial(area, n, /*replacement=*/true, gen);
  auto r1 = torch::rand({n, 1}, gen).sqrt(), r2 = torch::rand({n, 1}, gen);
  auto fa = a.index_select(0, face), fb = b.index_select(0, face), fc = c.index_select(0, face);
  return (1 - r1) * fa + r1 * (1 - r2) * fb + r1 * r2 * fc;
}

bool built_with_pcl() {
#ifdef EWA_HAS_PCL
  return true;
#else
  return false;
#endif
}

bool built_with_open3d() {
#ifdef EWA_HAS_OPEN3D
  return true;
#else
  return false;
#endif
}

bool built_with_hdf5() {
#ifdef EWA_HAS_HDF5
  return true;
#else
  return false;
#endif
}

torch::Tensor read_pcl_points(const std::string& path) {
  if (lower_extension(path) == ".ply") return read_ply(path).vertices;  // our own reader, every build
#ifdef EWA_HAS_PCL
  pcl::PointCloud<pcl::PointXYZ> cloud;
  const std::string ext = lower_extension(path);
  if (ext == ".pcd") {
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
  int rc = -1;
  {
    // PCL prints its own diagnostics to stderr; the error we throw says what went wrong.
    rc = pcl::io::loadPCDFile(path, cloud);
  }
  if (rc != 0) fail(path + ": PCL could not read the file (missing, truncated or not a valid " + ext.substr(1) + ")");
  if (cloud.empty()) fail(path + ": empty point cloud (no points)");
  auto t = torch::empty({static_cast<int64_t>(cloud.size()), 3}, torch::kFloat);
  auto acc = t.accessor<float, 2>();
  for (size_t i = 0; i < cloud.size(); ++i) {
    const auto& p = cloud[i];
    // Organized clouds mark missing points with NaN: kept here, dropped or refused by the caller.
    acc[i][0] = p.x, acc[i][1] = p.y, acc[i][2] = p.z;
  }
  return t;
#else
  fail(path + ": ewa was built without PCL, so .pcd files cannot be read (reconfigure with EWA_WITH_PCL=ON and libpcl-dev)");
#endif
}

namespace {
// sample_surface with errors naming the file.
torch::Tensor sample_mesh_file(const std::string& path, const Mesh& mesh, int64_t n, uint64_t seed) {
  try {
    return sample_surface(mesh, n, seed);
  } catch (const Error& e) {
    fail(path + ": " + e.what());
  }
}
}  // namespace

Mesh read_mesh(const std::string& path) {
  if (!fs::exists(path)) fail(path + ": cannot open file");
  const std::string ext = lower_extension(path);
  if (ext == ".ply") return read_ply(path);
  if (ext == ".obj") {
    // PCL's OBJ reader: Open3D's (through Assimp, as Debian builds it) silently skips every face
    // that is not a triangle, leaving an empty mesh for quad-meshed files.
#ifdef EWA_HAS_PCL
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
#else
    fail(path + ": ewa was built without PCL, so .obj meshes cannot be read (reconfigure with EWA_WITH_PCL=ON and libpcl-dev)");
#endif
  }
#ifdef EWA_HAS_OPEN3D
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
#else
  fail(path + ": ewa was built without Open3D, so " + ext + " meshes cannot be read (reconfigure with EWA_WITH_OPEN3D=ON and libopen3d-dev)");
#endif
}

// The element and point counts in a .ply or .pcd header, checked against the file's size before
// Open3D or PCL allocate for them (each element takes at least one byte; PCD's compressed form
// expands at most kMaxInflation:1). A 40-byte file claiming 10^12 points is refused here.
void check_header_counts(const std::string& path, const std::string& ext) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open file");
  const long double file_bytes = static_cast<long double>(bytes_on_disk(path));
  long double claimed = 0, limit = file_bytes;
  std::string line;
  for (int i = 0; i < 2000 && std::getline(in, line); ++i) {
    std::istringstream words(line);
    std::string key, name;
    words >> key;
    long double count = -1;
    if (ext == ".ply" && key == "element") {
      words >> name >> count;
    } else if (ext == ".pcd" && key == "POINTS") {
      words >> count;
      limit = file_bytes * static_cast<long double>(kMaxInflation);
    }
    if (count < 0 && (key == "element" || key == "POINTS")) fail(path + ": malformed header line '" + line.substr(0, 60) + "'");
    if (count > 0) claimed += count;
    if ((ext == ".ply" && key == "end_header") || (ext == ".pcd" && key == "DATA")) break;
  }
  if (claimed > limit)
    fail(path + ": header claims " + [&] { char b[64]; std::snprintf(b, sizeof b, "%.0Lf", claimed); return std::string(b); }() +
         " points or elements but the file has only " +
         std::to_string(static_cast<uint64_t>(file_bytes)) + " bytes: truncated or corrupt");
}

torch::Tensor read_point_file(const std::string& path, int64_t mesh_points, uint64_t seed) {
  const std::string ext = lower_extension(path);
  if (ext == ".ply" || ext == ".pcd") check_header_counts(path, ext);
  if (ext == ".txt" || ext == ".xyz" || ext == ".pts" || ext == ".csv") return read_text_points(path);
  // Meshes (.obj, .ply with faces) are sampled on their surface; vertex-only files are points.
  if (ext == ".obj" || ext == ".ply") {
    Mesh mesh = ext == ".ply" ? read_ply(path) : read_mesh(path);
    if (mesh.faces.size(0) == 0) return mesh.vertices;  // bare vertices: a point cloud
    return sample_mesh_file(path, mesh, mesh_points, seed);
  }
  if (ext == ".pcd") return read_pcl_points(path);
  if (ext == ".npy") {
    auto a = read_npy(path);
    if (a.dim() != 2 || a.size(1) < 3)
      fail(path + ": expected a point array [P, C] with C >= 3 columns, got shape " + shape_text(a.sizes()));
    if (a.size(0) == 0) fail(path + ": empty point cloud (no points)");
    return a;  // non-finite rows are the caller's to drop or refuse (datasets refuse them)
  }
  if (ext == ".off") return sample_mesh_file(path, read_off(path), mesh_points, seed);
  fail(path + ": unsupported point file extension '" + ext + "' (expected .txt, .xyz, .pts, .csv, .npy, .off, .obj, .pcd or .ply)");
}

H5Clouds read_h5_clouds(const std::string& path) {
#ifdef EWA_HAS_HDF5
  if (!fs::exists(path)) fail(path + ": cannot open file");
  H5::Exception::dontPrint();
  H5Clouds out;
  try {
    H5::H5File file(path, H5F_ACC_RDONLY);
    auto read_dataset = [&](const char* name) -> std::pair<H5::DataSet, std::vector<hsize_t>> {
      if (!file.nameExists(name)) fail(path + ": missing dataset '" + std::string(name) + "'");
      H5::DataSet ds = file.openDataSet(name);
      H5::DataSpace space = ds.getSpace();
      std::vector<hsize_t> dims(static_cast<size_t>(space.getSimpleExtentNdims()));
      space.getSimpleExtentDims(dims.data());
      return {ds, dims};
    };
    auto [data, ddims] = read_dataset("data");
    if (ddims.size() != 3 || ddims[2] < 3 || ddims[0] == 0 || ddims[1] == 0) {
      std::string shape;
      for (auto d : ddims) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      fail(path + ": dataset 'data' has shape [" + shape + "], expected [N, P, 3] (or more channels) with N, P > 0");
    }
    // Dimensions must fit the file (deflate expands at most kMaxInflation:1) before anything is allocated.
    const uint64_t file_bytes = bytes_on_disk(path);
    const long double claimed = (long double)ddims[0] * (long double)ddims[1] * (long double)ddims[2] * 4.0L;
    if (claimed > (long double)file_bytes * kMaxInflation + (1 << 20))
      fail(path + ": dataset 'data' claims [" + std::to_string(ddims[0]) + ", " + std::to_string(ddims[1]) + ", " +
           std::to_string(ddims[2]) + "] floats but the file has only " + std::to_string(file_bytes) +
           " bytes: truncated or corrupt");
    out.points = torch::empty({int64_t(ddims[0]), int64_t(ddims[1]), int64_t(ddims[2])}, torch::kFloat);
    data.read(out.points.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
    auto [label, ldims] = read_dataset("label");
    if (!((ldims.size() == 1) || (ldims.size() == 2 && ldims[1] == 1)) || ldims[0] != ddims[0])
      fail(path + ": dataset 'label' must be [N] or [N, 1] with N = " + std::to_string(ddims[0]) + " (the clouds in 'data')");
    out.labels = torch::empty({int64_t(ldims[0])}, torch::kLong);
    label.read(out.labels.data_ptr<int64_t>(), H5::PredType::NATIVE_INT64);
  } catch (const H5::Exception& e) {
    fail(path + ": not a readable HDF5 file (truncated or corrupt): " + e.getDetailMsg());
  }
  if (!torch::isfinite(out.points).all().item<bool>()) fail(path + ": dataset 'data' contains NaN or infinite coordinates");
  if (out.labels.numel() > 0 && out.labels.min().item<int64_t>() < 0) fail(path + ": dataset 'label' has negative labels");
  return out;
#else
  fail(path + ": ewa was built without HDF5, so .h5 datasets cannot be read (reconfigure with EWA_WITH_HDF5=ON and libhdf5-dev)");
#endif
}

void write_h5_clouds(const std::string& path, const torch::Tensor& points, const torch::Tensor& labels) {
#ifdef EWA_HAS_HDF5
  H5::Exception::dontPrint();
  auto p = points.to(torch::kFloat).contiguous();
  auto l = labels.to(torch::kUInt8).contiguous();
  write_atomically(path, [&](const std::string& tmp) {
    try {
      H5::H5File file(tmp, H5F_ACC_TRUNC);
      hsize_t ddims[3] = {hsize_t(p.size(0)), hsize_t(p.size(1)), hsize_t(p.size(2))};
      H5::DataSpace dspace(3, ddims);
      file.createDataSet("data", H5::PredType::IEEE_F32LE, dspace).write(p.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
      hsize_t ldims[2] = {hsize_t(l.size(0)), 1};
      H5::DataSpace lspace(2, ldims);
      file.createDataSet("label", H5::PredType::STD_U8LE, lspace).write(l.data_ptr<uint8_t>(), H5::PredType::NATIVE_UINT8);
    } catch (const H5::Exception& e) {
      throw std::runtime_error(e.getDetailMsg());
    }
  });
#else
  fail(path + ": ewa was built without HDF5, so .h5 files cannot be written");
#endif
}

}  // namespace ewa::data
