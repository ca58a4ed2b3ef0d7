#include "io/point_io.h"

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

#include "io/point_io_backends.h"

namespace ewa::io {
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

torch::Tensor read_text_points(const std::string& path) { return read_text_table(path, 3); }

torch::Tensor read_text_table(const std::string& path, int64_t min_columns) {
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
      if (cols < min_columns)
        fail(path + ":" + std::to_string(line_no) + ": expected at least " + std::to_string(min_columns) +
             (min_columns == 3 ? " coordinates per point" : " values per line") + ", got " + std::to_string(cols));
    } else if (static_cast<int64_t>(row.size()) != cols) {
      fail(path + ":" + std::to_string(line_no) + ": expected " + std::to_string(cols) + " values like line 1, got " +
           std::to_string(row.size()));
    }
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows == 0) fail(path + (min_columns == 3 ? ": empty point cloud (no points)" : ": empty file (no lines)"));
  return torch::from_blob(values.data(), {rows, cols}, torch::kFloat).clone();
}

torch::Tensor read_seg_labels(const std::string& seg_path, const std::string& pts_path, int64_t points, int64_t num_parts,
                              const std::string& category) {
  auto parts = read_text_table(seg_path, 1);
  if (parts.size(1) != 1 || parts.size(0) != points)
    fail(seg_path + ": expected one part label per point of " + pts_path + " (" + std::to_string(points) + "), got " +
         std::to_string(parts.size(0)) + " lines of " + std::to_string(parts.size(1)) + " columns");
  auto column = parts.select(1, 0);
  auto rounded = column.round();
  if (!torch::equal(rounded, column)) fail(seg_path + ": the last column (the part label) must hold whole numbers");
  auto local = rounded.to(torch::kLong);
  const int64_t lo = local.min().item<int64_t>(), hi = local.max().item<int64_t>();
  if (lo < 1 || hi > num_parts)
    fail(seg_path + ": part labels must lie in 1.." + std::to_string(num_parts) + " for " + category + ", got " +
         std::to_string(lo) + ".." + std::to_string(hi));
  return local;
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
  // PCL's OBJ reader: Open3D's (through Assimp, as Debian builds it) silently skips every face
  // that is not a triangle, leaving an empty mesh for quad-meshed files.
  if (ext == ".obj") return read_obj_with_pcl(path);
  return read_mesh_with_open3d(path);
}

torch::Tensor read_pcl_points(const std::string& path) {
  if (lower_extension(path) == ".ply") return read_ply(path).vertices;  // our own reader, every build
  return read_pcd_with_pcl(path);
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

torch::Tensor read_point_labels(const std::string& path) {
  const std::string ext = lower_extension(path);
  if (ext == ".ply") return read_ply(path).labels;
  if (ext != ".txt" && ext != ".xyz" && ext != ".pts" && ext != ".csv") return {};
  auto table = read_text_points(path);
  if (table.size(1) != 4 && table.size(1) != 7) return {};
  auto last = table.select(1, table.size(1) - 1);
  if (!torch::equal(last, last.round()) || last.min().item<double>() < 0)
    fail(path + ": the last column (the per-point label of a " + std::to_string(table.size(1)) +
         "-column file) must hold whole numbers >= 0");
  return last.to(torch::kLong);
}

}  // namespace ewa::io
