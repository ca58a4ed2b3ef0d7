// Our PLY codec (the one reader and writer of .ply, in every build). The reader: ascii, binary_little_endian and
// binary_big_endian; the vertex element's x, y, z of any numeric type (float and double alike);
// faces from a list property vertex_indices / vertex_index, fan-triangulated; every other element
// and property skipped. Counts are checked against the file's size before anything is allocated.
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "io/point_io.h"

namespace ewa::io {
namespace {

enum class Format { Ascii, Little, Big };

struct Property {
  std::string name;
  int type = 0;        // bytes of a scalar (or of a list's items); see Scalar
  char kind = 'f';     // 'i' signed, 'u' unsigned, 'f' floating
  bool list = false;
  int count_bytes = 0;  // list: bytes of its count
  char count_kind = 'u';
};

struct Element {
  std::string name;
  int64_t count = 0;
  std::vector<Property> props;
};

bool scalar_type(const std::string& t, int& bytes, char& kind) {
  static const struct { const char* names[2]; int bytes; char kind; } types[] = {
      {{"char", "int8"}, 1, 'i'},   {{"uchar", "uint8"}, 1, 'u'},   {{"short", "int16"}, 2, 'i'},
      {{"ushort", "uint16"}, 2, 'u'}, {{"int", "int32"}, 4, 'i'},   {{"uint", "uint32"}, 4, 'u'},
      {{"float", "float32"}, 4, 'f'}, {{"double", "float64"}, 8, 'f'}};
  for (const auto& ty : types)
    if (t == ty.names[0] || t == ty.names[1]) {
      bytes = ty.bytes, kind = ty.kind;
      return true;
    }
  return false;
}

class Reader {
 public:
  Reader(const std::string& path, std::ifstream& in, Format f) : path_(path), in_(in), format_(f) {}

  // `what()` names the value in an error (called only then: building it per value is slow).
  template <typename What>
  double value(int bytes, char kind, const What& what) {
    if (format_ == Format::Ascii) {
      std::string token;
      if (!(in_ >> token)) fail(path_ + ": truncated: " + what());
      char* end = nullptr;
      const double v = std::strtod(token.c_str(), &end);
      if (end == token.c_str() || *end) fail(path_ + ": " + what() + ": '" + token.substr(0, 20) + "' is not a number");
      return v;
    }
    unsigned char b[8];
    if (!in_.read(reinterpret_cast<char*>(b), bytes)) fail(path_ + ": truncated: " + what());
    if (format_ == Format::Big) std::reverse(b, b + bytes);
    if (kind == 'f') {
      if (bytes == 4) {
        float x;
        std::memcpy(&x, b, 4);
        return x;
      }
      double x;
      std::memcpy(&x, b, 8);
      return x;
    }
    uint64_t u = 0;
    for (int i = bytes - 1; i >= 0; --i) u = (u << 8) | b[i];
    if (kind == 'u') return static_cast<double>(u);
    const int shift = 64 - 8 * bytes;  // sign-extend
    return static_cast<double>(static_cast<int64_t>(u << shift) >> shift);
  }

 private:
  const std::string& path_;
  std::ifstream& in_;
  Format format_;
};

struct Header {
  Format format = Format::Ascii;
  std::vector<Element> elements;
};

// One "property ..." line of the header (after the word "property").
Property parse_property(const std::string& path, const std::string& line, std::istringstream& words) {
  Property p;
  std::string type;
  words >> type;
  if (type == "list") {
    std::string count_type, item_type;
    words >> count_type >> item_type >> p.name;
    if (!scalar_type(count_type, p.count_bytes, p.count_kind) || !scalar_type(item_type, p.type, p.kind) || p.count_kind == 'f')
      fail(path + ": PLY list property with types '" + count_type + "' and '" + item_type + "' is not supported");
    p.list = true;
  } else {
    words >> p.name;
    if (!scalar_type(type, p.type, p.kind)) fail(path + ": PLY property type '" + type + "' of '" + p.name + "' is unknown");
  }
  if (p.name.empty()) fail(path + ": malformed PLY header line '" + line.substr(0, 60) + "'");
  return p;
}

// The header up to end_header: the format and every element with its properties.
Header read_header(const std::string& path, std::ifstream& in, int64_t file_bytes) {
  std::string line;
  if (!std::getline(in, line) || (line != "ply" && line != "ply\r")) fail(path + ": not a PLY file: expected 'ply' on the first line");
  Header h;
  bool have_format = false;
  for (int n = 0;; ++n) {
    if (n > 10000 || !std::getline(in, line)) fail(path + ": PLY header without 'end_header'");
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream words(line);
    std::string key;
    words >> key;
    if (key == "end_header") break;
    if (key.empty() || key == "comment" || key == "obj_info") continue;
    if (key == "format") {
      std::string f, version;
      words >> f >> version;
      if (f == "ascii") h.format = Format::Ascii;
      else if (f == "binary_little_endian") h.format = Format::Little;
      else if (f == "binary_big_endian") h.format = Format::Big;
      else fail(path + ": PLY format '" + f + "': expected ascii, binary_little_endian or binary_big_endian");
      have_format = true;
    } else if (key == "element") {
      Element e;
      if (!(words >> e.name >> e.count) || e.count < 0) fail(path + ": malformed PLY header line '" + line.substr(0, 60) + "'");
      if (e.count > file_bytes)  // every element takes at least one byte
        fail(path + ": header claims " + std::to_string(e.count) + " " + e.name + " elements but the file has only " +
             std::to_string(file_bytes) + " bytes: truncated or corrupt");
      h.elements.push_back(e);
    } else if (key == "property") {
      if (h.elements.empty()) fail(path + ": PLY property before any element: '" + line.substr(0, 60) + "'");
      h.elements.back().props.push_back(parse_property(path, line, words));
    } else {
      fail(path + ": unexpected PLY header line '" + line.substr(0, 60) + "'");
    }
  }
  if (!have_format) fail(path + ": PLY header has no 'format' line");
  return h;
}

// The vertex element's columns of x, y and z.
std::array<int, 3> xyz_columns(const std::string& path, const Element& vertex) {
  std::array<int, 3> xyz = {-1, -1, -1};
  std::string names;
  for (size_t i = 0; i < vertex.props.size(); ++i) {
    const auto& p = vertex.props[i];
    names += (names.empty() ? "" : " ") + p.name;
    for (int k = 0; k < 3; ++k)
      if (!p.list && p.name == std::string(1, char('x' + k))) xyz[k] = static_cast<int>(i);
  }
  if (xyz[0] < 0 || xyz[1] < 0 || xyz[2] < 0)
    fail(path + ": PLY vertex properties are '" + names + "'; expected properties x, y and z");
  return xyz;
}

}  // namespace

Mesh read_ply(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open file");
  const int64_t file_bytes = static_cast<int64_t>(bytes_on_disk(path));
  const Header header = read_header(path, in, file_bytes);
  const Element* vertex = nullptr;
  for (const auto& e : header.elements)
    if (e.name == "vertex") vertex = &e;
  if (!vertex) fail(path + ": PLY file has no vertex element");
  const std::array<int, 3> xyz = xyz_columns(path, *vertex);
  if (vertex->count == 0) fail(path + ": empty point cloud (no points)");
  int label_column = -1;  // a per-point label (part segmentation): "label", "part" or "scalar_label"
  for (size_t k = 0; k < vertex->props.size(); ++k) {
    const auto& n = vertex->props[k].name;
    if (!vertex->props[k].list && (n == "label" || n == "part" || n == "scalar_label")) label_column = static_cast<int>(k);
  }

  Reader r(path, in, header.format);
  Mesh mesh;
  mesh.vertices = torch::empty({vertex->count, 3}, torch::kFloat);
  auto va = mesh.vertices.accessor<float, 2>();
  if (label_column >= 0) mesh.labels = torch::empty({vertex->count}, torch::kLong);
  std::vector<int64_t> tris;
  for (const auto& e : header.elements) {
    const bool is_vertex = &e == vertex, is_face = e.name == "face";
    for (int64_t i = 0; i < e.count; ++i) {
      for (size_t k = 0; k < e.props.size(); ++k) {
        const auto& p = e.props[k];
        const auto what = [&] { return e.name + " " + std::to_string(i) + " of " + std::to_string(e.count) + " (" + p.name + ")"; };
        if (!p.list) {
          const double v = r.value(p.type, p.kind, what);
          if (is_vertex) {
            for (int c = 0; c < 3; ++c)
              if (xyz[c] == static_cast<int>(k)) va[i][c] = static_cast<float>(v);
            if (label_column == static_cast<int>(k)) {
              if (!(v >= 0) || v != std::floor(v) || v > 1e9)
                fail(path + ": " + what() + ": a label must be a whole number >= 0, got " + std::to_string(v));
              mesh.labels[i] = static_cast<int64_t>(v);
            }
          }
          continue;
        }
        const double count = r.value(p.count_bytes, p.count_kind, what);
        if (count < 0 || count > static_cast<double>(file_bytes)) fail(path + ": " + what() + ": list of " + std::to_string(count) + " items");
        const bool indices = is_face && (p.name == "vertex_indices" || p.name == "vertex_index");
        std::vector<int64_t> ids;
        for (int64_t j = 0; j < static_cast<int64_t>(count); ++j) {
          const double id = r.value(p.type, p.kind, what);
          if (indices) {
            if (!(id >= 0 && id < static_cast<double>(vertex->count)) || id != std::floor(id))
              fail(path + ": face " + std::to_string(i) + " has a vertex index outside [0, " + std::to_string(vertex->count) + ")");
            ids.push_back(static_cast<int64_t>(id));
          }
        }
        if (indices && ids.size() >= 3)
          for (size_t j = 1; j + 1 < ids.size(); ++j) tris.insert(tris.end(), {ids[0], ids[j], ids[j + 1]});
      }
    }
  }
  mesh.faces = torch::tensor(tris, torch::kLong).view({-1, 3});
  return mesh;
}

void write_ply_points(const std::string& path, const torch::Tensor& points, const torch::Tensor& colors,
                      const torch::Tensor& labels) {
  auto p = points.to(torch::kFloat).contiguous();
  if (p.dim() != 2 || p.size(1) != 3) fail(path + ": write_ply_points needs points [P, 3]");
  const bool with_color = colors.defined();
  auto c = with_color ? colors.to(torch::kUInt8).contiguous() : colors;
  std::ostringstream os;
  os << "ply\nformat ascii 1.0\nelement vertex " << p.size(0) << "\nproperty float x\nproperty float y\nproperty float z\n";
  if (with_color) os << "property uchar red\nproperty uchar green\nproperty uchar blue\n";
  const bool with_labels = labels.defined();
  auto l = with_labels ? labels.to(torch::kLong).contiguous() : labels;
  if (with_labels) os << "property int label\n";
  os << "end_header\n";
  const float* d = p.data_ptr<float>();
  for (int64_t i = 0; i < p.size(0); ++i) {
    os << d[3 * i] << ' ' << d[3 * i + 1] << ' ' << d[3 * i + 2];
    if (with_color) {
      const uint8_t* cc = c.data_ptr<uint8_t>() + 3 * i;
      os << ' ' << int(cc[0]) << ' ' << int(cc[1]) << ' ' << int(cc[2]);
    }
    if (with_labels) os << ' ' << l.data_ptr<int64_t>()[i];
    os << '\n';
  }
  write_text_atomically(path, os.str());
}

}  // namespace ewa::io
