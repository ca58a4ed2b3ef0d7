// The synthetic part-labelled shapes (datasets/shapenet_part.h: write_synthetic_parts).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "datasets/shapenet_part.h"

namespace ewa::datasets {
namespace fs = std::filesystem;
namespace {

using Tensor = torch::Tensor;

// A primitive surface: `sample(n)` gives n points and their unit normals, both [n, 3].
struct Primitive {
  std::function<std::pair<Tensor, Tensor>(int64_t)> sample;
  double area;
  int64_t part;
};

struct Draw {
  at::Generator& g;
  Tensor rand(int64_t n) { return torch::rand({n}, g, torch::kFloat); }
  double u(double lo, double hi) { return lo + (hi - lo) * torch::rand({1}, g).item<double>(); }
};

Tensor col(const Tensor& x, const Tensor& y, const Tensor& z) { return torch::stack({x, y, z}, 1); }

// Axis-aligned box surface of `size` around `center`.
Primitive box(Draw& d, std::array<double, 3> center, std::array<double, 3> size, int64_t part) {
  const double a = size[1] * size[2], b = size[0] * size[2], c = size[0] * size[1];
  auto sample = [&d, center, size, a, b, c](int64_t n) {
    auto face = torch::multinomial(torch::tensor({a, a, b, b, c, c}, torch::kDouble), n, true, d.g);
    auto p = (torch::rand({n, 3}, d.g) - 0.5) * torch::tensor({size[0], size[1], size[2]}).to(torch::kFloat);
    auto normal = torch::zeros({n, 3});
    auto axis = torch::div(face, 2, "floor"), sign = (face % 2) * 2 - 1;
    normal.scatter_(1, axis.unsqueeze(1), sign.unsqueeze(1).to(torch::kFloat));
    auto half = torch::tensor({size[0], size[1], size[2]}).to(torch::kFloat) / 2;
    p = torch::where(normal != 0, normal * half, p);
    return std::make_pair(p + torch::tensor({center[0], center[1], center[2]}).to(torch::kFloat), normal);
  };
  return {sample, 2 * (a + b + c), part};
}

// Side of a frustum about the y axis from (y0, r0) to (y1, r1) (a cylinder when r0 = r1).
Primitive frustum(Draw& d, double r0, double r1, double y0, double y1, int64_t part) {
  auto sample = [&d, r0, r1, y0, y1](int64_t n) {
    auto t = d.rand(n), ang = d.rand(n) * (2 * M_PI);
    auto r = r0 + (r1 - r0) * t;
    auto p = col(r * ang.cos(), y0 + (y1 - y0) * t, r * ang.sin());
    const double slope = (r0 - r1) / (y1 - y0);  // outward normal leans up when the frustum narrows
    auto nrm = col(ang.cos(), torch::full({n}, slope), ang.sin());
    return std::make_pair(p, nrm / nrm.norm(2, 1, true));
  };
  return {sample, M_PI * (r0 + r1) * std::hypot(r1 - r0, y1 - y0), part};
}

// Disk of radius r in the plane y = h, facing up (+1) or down (-1).
Primitive disk(Draw& d, double r, double h, double facing, int64_t part) {
  auto sample = [&d, r, h, facing](int64_t n) {
    auto rad = d.rand(n).sqrt() * r, ang = d.rand(n) * (2 * M_PI);
    return std::make_pair(col(rad * ang.cos(), torch::full({n}, h), rad * ang.sin()),
                          col(torch::zeros({n}), torch::full({n}, facing), torch::zeros({n})));
  };
  return {sample, M_PI * r * r, part};
}

Primitive sphere(Draw& d, std::array<double, 3> c, double r, int64_t part) {
  auto sample = [&d, c, r](int64_t n) {
    auto v = torch::randn({n, 3}, d.g);
    v = v / v.norm(2, 1, true).clamp_min(1e-8);
    return std::make_pair(v * r + torch::tensor({c[0], c[1], c[2]}).to(torch::kFloat), v);
  };
  return {sample, 4 * M_PI * r * r, part};
}

// Half a torus in the xy plane (a mug's handle): major radius R around (cx, cy), tube radius r.
Primitive handle(Draw& d, double cx, double cy, double R, double r, int64_t part) {
  auto sample = [&d, cx, cy, R, r](int64_t n) {
    auto u = (d.rand(n) - 0.5) * M_PI, v = d.rand(n) * (2 * M_PI);
    auto dir = col(u.cos() * v.cos(), u.sin() * v.cos(), v.sin());
    auto p = col(cx + (R + r * v.cos()) * u.cos(), cy + (R + r * v.cos()) * u.sin(), r * v.sin());
    return std::make_pair(p, dir);
  };
  return {sample, M_PI * R * 2 * M_PI * r, part};
}

// A primitive moved by rotation `rot` ([3, 3]) and then `shift`.
Primitive moved(Primitive p, Tensor rot, std::array<double, 3> shift) {
  auto inner = p.sample;
  p.sample = [inner, rot, shift](int64_t n) {
    auto [x, nrm] = inner(n);
    return std::make_pair(x.matmul(rot.t()) + torch::tensor({shift[0], shift[1], shift[2]}).to(torch::kFloat),
                          nrm.matmul(rot.t()));
  };
  return p;
}

Tensor rot_z(double a) {
  return torch::tensor({std::cos(a), -std::sin(a), 0.0, std::sin(a), std::cos(a), 0.0, 0.0, 0.0, 1.0}).to(torch::kFloat).view({3, 3});
}
Tensor rot_x(double a) {
  return torch::tensor({1.0, 0.0, 0.0, 0.0, std::cos(a), -std::sin(a), 0.0, std::sin(a), std::cos(a)}).to(torch::kFloat).view({3, 3});
}

// The parts of one shape of `category` (a name of the table), with random proportions.
std::vector<Primitive> parts_of(const std::string& category, Draw& d) {
  const int64_t first = shapenet_part_categories()[part_category_index(category)].first_part;
  std::vector<Primitive> out;
  if (category == "Airplane") {  // body, wing, tail, engine
    const double len = d.u(1.4, 1.8), r = d.u(0.09, 0.13), span = d.u(1.2, 1.6), chord = d.u(0.25, 0.4);
    out.push_back(moved(frustum(d, r, r, -len / 2, len / 2, first), rot_z(-M_PI / 2), {0, 0, 0}));
    out.push_back(box(d, {d.u(-0.1, 0.15), 0, 0}, {chord, 0.03, span}, first + 1));
    out.push_back(box(d, {-len / 2 + 0.1, r + 0.12, 0}, {0.2, 0.25, 0.03}, first + 2));
    out.push_back(box(d, {-len / 2 + 0.1, 0, 0}, {0.15, 0.02, 0.45}, first + 2));
    for (double z : {-span / 4, span / 4})
      out.push_back(moved(frustum(d, 0.05, 0.05, -0.15, 0.15, first + 3), rot_z(-M_PI / 2), {0.1, -0.09, z}));
  } else if (category == "Lamp") {  // base, pole, shade, bulb
    const double h = d.u(0.8, 1.2), rb = d.u(0.25, 0.4), rs = d.u(0.25, 0.4);
    out.push_back(frustum(d, rb, rb, 0, 0.06, first));
    out.push_back(disk(d, rb, 0.06, 1, first));
    out.push_back(frustum(d, 0.03, 0.03, 0.06, h, first + 1));
    out.push_back(frustum(d, rs, rs * 0.45, h - 0.1, h + 0.25, first + 2));
    out.push_back(sphere(d, {0, h, 0}, 0.08, first + 3));
  } else if (category == "Laptop") {  // keyboard, screen
    const double w = d.u(0.9, 1.2), depth = d.u(0.6, 0.8), open = d.u(1.6, 2.1);
    out.push_back(box(d, {0, 0.02, 0}, {w, 0.04, depth}, first));
    const double hgt = depth * d.u(0.85, 1.0);
    out.push_back(moved(box(d, {0, hgt / 2, 0}, {w, hgt, 0.03}, first + 1), rot_x(M_PI / 2 - open), {0, 0.04, -depth / 2}));
  } else if (category == "Mug") {  // body, handle
    const double r = d.u(0.28, 0.4), h = d.u(0.6, 0.9);
    out.push_back(frustum(d, r, r, 0, h, first));
    out.push_back(disk(d, r, 0, -1, first));
    out.push_back(handle(d, r, h / 2, d.u(0.15, 0.22), 0.04, first + 1));
  } else if (category == "Rocket") {  // body, fin, nose
    const double r = d.u(0.1, 0.16), h = d.u(1.0, 1.4);
    out.push_back(frustum(d, r, r, 0, h, first));
    for (int k = 0; k < 3; ++k) {
      const double a = 2 * M_PI * k / 3;
      auto fin = box(d, {r + 0.12, 0.15, 0}, {0.24, 0.3, 0.02}, first + 1);
      auto rot = torch::tensor({std::cos(a), 0.0, std::sin(a), 0.0, 1.0, 0.0, -std::sin(a), 0.0, std::cos(a)}).to(torch::kFloat).view({3, 3});
      out.push_back(moved(fin, rot, {0, 0, 0}));
    }
    out.push_back(frustum(d, r, 0.005, h, h + d.u(0.25, 0.4), first + 2));
  } else if (category == "Table") {  // top, leg, support
    const double w = d.u(1.0, 1.4), depth = d.u(0.6, 0.9), h = d.u(0.6, 0.8);
    out.push_back(box(d, {0, h, 0}, {w, 0.05, depth}, first));
    for (double x : {-w / 2 + 0.06, w / 2 - 0.06})
      for (double z : {-depth / 2 + 0.06, depth / 2 - 0.06}) out.push_back(box(d, {x, h / 2, z}, {0.06, h, 0.06}, first + 1));
    for (double z : {-depth / 2 + 0.06, depth / 2 - 0.06}) out.push_back(box(d, {0, h * 0.25, z}, {w - 0.12, 0.05, 0.04}, first + 2));
  } else {
    fail("synthetic parts: no generator for category " + category);
  }
  return out;
}

const std::vector<std::string> kSynthCategories = {"Airplane", "Lamp", "Laptop", "Mug", "Rocket", "Table"};
const double kCategoryShare[] = {1.5, 1.0, 0.5, 0.75, 0.5, 1.75};
const std::map<std::string, std::vector<std::string>> kSynthPartNames = {
    {"Airplane", {"body", "wing", "tail", "engine"}}, {"Lamp", {"base", "pole", "shade", "bulb"}},
    {"Laptop", {"keyboard", "screen"}},               {"Mug", {"body", "handle"}},
    {"Rocket", {"body", "fin", "nose"}},              {"Table", {"top", "leg", "support"}},
};

// One shape: points [P, 3], normals [P, 3], labels [P].
std::tuple<Tensor, Tensor, Tensor> synth_part_shape(const std::string& category, double noise, Draw& d) {
  auto prims = parts_of(category, d);
  const int64_t n = 2048 + static_cast<int64_t>(d.u(0, 752));
  std::vector<double> areas;
  for (const auto& p : prims) areas.push_back(p.area);
  auto counts = torch::bincount(torch::multinomial(torch::tensor(areas, torch::kDouble), n, true, d.g), {},
                                static_cast<int64_t>(prims.size()));
  std::vector<Tensor> pts, nrm, lab;
  for (size_t i = 0; i < prims.size(); ++i) {
    const int64_t k = counts[static_cast<int64_t>(i)].item<int64_t>();
    if (k == 0) continue;
    auto [x, nx] = prims[i].sample(k);
    pts.push_back(x);
    nrm.push_back(nx);
    lab.push_back(torch::full({k}, prims[i].part, torch::kLong));
  }
  auto x = torch::cat(pts), nx = torch::cat(nrm), labels = torch::cat(lab);
  // Random proportions (normals follow the inverse scale), a turn about the up axis, noise.
  auto scale = torch::tensor({d.u(0.85, 1.15), d.u(0.85, 1.15), d.u(0.85, 1.15)}).to(torch::kFloat);
  x = x * scale;
  nx = nx / scale;
  const double a = d.u(0, 2 * M_PI);
  auto rot = torch::tensor({std::cos(a), 0.0, std::sin(a), 0.0, 1.0, 0.0, -std::sin(a), 0.0, std::cos(a)}).to(torch::kFloat).view({3, 3});
  x = x.matmul(rot.t()) + torch::randn({x.size(0), 3}, d.g) * noise;
  nx = nx.matmul(rot.t());
  nx = nx / nx.norm(2, 1, true).clamp_min(1e-8);
  auto perm = torch::randperm(x.size(0), d.g);
  return {x.index_select(0, perm), nx.index_select(0, perm), labels.index_select(0, perm)};
}

void write_shape_txt(const std::string& path, const Tensor& x, const Tensor& nx, const Tensor& labels) {
  std::string text;
  text.reserve(static_cast<size_t>(x.size(0)) * 64);
  auto xa = x.accessor<float, 2>(), na = nx.accessor<float, 2>();
  auto la = labels.accessor<int64_t, 1>();
  char line[160];
  for (int64_t i = 0; i < x.size(0); ++i) {
    std::snprintf(line, sizeof line, "%.6f %.6f %.6f %.6f %.6f %.6f %.6f\n", xa[i][0], xa[i][1], xa[i][2], na[i][0],
                  na[i][1], na[i][2], double(la[i]));
    text += line;
  }
  write_text_atomically(path, text);
}

}  // namespace

int64_t write_synthetic_parts(const std::string& root, const SynthPartOptions& o) {
  ensure_writable_dir(root);
  auto gen = at::detail::createCPUGenerator(o.seed);
  Draw d{gen};
  std::string categories;
  for (const auto& c : kSynthCategories)
    categories += c + "\t" + shapenet_part_categories()[part_category_index(c)].synset + "\n";
  write_text_atomically((fs::path(root) / "synsetoffset2category.txt").string(), categories);
  std::string names;
  for (const auto& c : shapenet_part_categories()) {
    const auto it = kSynthPartNames.find(c.name);
    for (int64_t k = 0; k < c.num_parts; ++k)
      names += (it != kSynthPartNames.end() ? c.name + " " + it->second[k] : c.name + " " + std::to_string(k + 1)) + "\n";
  }
  write_text_atomically((fs::path(root) / "part_names.txt").string(), names);
  ensure_writable_dir((fs::path(root) / "train_test_split").string());
  int64_t written = 0;
  const std::vector<std::pair<std::string, int64_t>> splits = {
      {"train", o.train_per_category}, {"val", o.val_per_category}, {"test", o.test_per_category}};
  for (const auto& [split, per_category] : splits) {
    nlohmann::json list = nlohmann::json::array();
    for (size_t ci = 0; ci < kSynthCategories.size(); ++ci) {
      const std::string& c = kSynthCategories[ci];
      // Categories of different sizes (as ShapeNetPart's), so instance and class mIoU differ.
      const int64_t count = std::max<int64_t>(1, std::llround(double(per_category) * kCategoryShare[ci]));
      const std::string synset = shapenet_part_categories()[part_category_index(c)].synset;
      ensure_writable_dir((fs::path(root) / synset).string());
      for (int64_t i = 0; i < count; ++i) {
        char id[64];
        std::snprintf(id, sizeof id, "synth_%s_%04lld", split.c_str(), static_cast<long long>(i));
        auto [x, nx, labels] = synth_part_shape(c, o.noise, d);
        write_shape_txt((fs::path(root) / synset / (std::string(id) + ".txt")).string(), x, nx, labels);
        list.push_back("shape_data/" + synset + "/" + id);
        ++written;
      }
    }
    write_text_atomically((fs::path(root) / "train_test_split" / ("shuffled_" + split + "_file_list.json")).string(),
                          list.dump());
  }
  return written;
}

}  // namespace ewa::datasets
