#include "datasets/synthetic.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/fs.h"
#include "datasets/hdf5.h"
#include "io/point_io.h"

namespace ewa::datasets {
namespace fs = std::filesystem;

const std::vector<std::string> kSynthClasses = {"sphere", "box",     "cylinder", "cone",
                                                "torus",  "pyramid", "capsule",  "ellipsoid"};

namespace {

torch::Tensor uniform(at::Generator& g, std::vector<int64_t> shape, double lo, double hi) {
  return torch::rand(shape, g, torch::kFloat) * (hi - lo) + lo;
}

torch::Tensor unit_vectors(at::Generator& g, int64_t n) {
  auto v = torch::randn({n, 3}, g, torch::kFloat);
  return v / v.norm(2, 1, true).clamp_min(1e-8);
}

// Points on triangles (a, b, c each [T, 3]) picked by area.
torch::Tensor on_triangles(at::Generator& g, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c, int64_t n) {
  auto area = torch::linalg_cross(b - a, c - a, -1).norm(2, 1).to(torch::kDouble);
  auto t = torch::multinomial(area, n, true, g);
  auto r1 = torch::rand({n, 1}, g).sqrt(), r2 = torch::rand({n, 1}, g);
  return (1 - r1) * a.index_select(0, t) + r1 * (1 - r2) * b.index_select(0, t) + r1 * r2 * c.index_select(0, t);
}

// Disk of radius r in the plane y = h.
torch::Tensor disk(at::Generator& g, int64_t n, double r, double h) {
  auto rad = torch::rand({n}, g).sqrt() * r, ang = torch::rand({n}, g) * (2 * M_PI);
  return torch::stack({rad * torch::cos(ang), torch::full({n}, h), rad * torch::sin(ang)}, 1);
}

// Splits n samples between parts in proportion to their areas.
std::vector<int64_t> split_by_area(int64_t n, const std::vector<double>& areas, at::Generator& g) {
  auto w = torch::tensor(areas, torch::kDouble);
  auto pick = torch::multinomial(w, n, true, g);
  auto counts = torch::bincount(pick, {}, static_cast<int64_t>(areas.size()));
  std::vector<int64_t> out;
  for (int64_t i = 0; i < counts.size(0); ++i) out.push_back(counts[i].item<int64_t>());
  return out;
}

torch::Tensor cylinder_side(at::Generator& g, int64_t n, double r, double y0, double y1) {
  auto ang = torch::rand({n}, g) * (2 * M_PI), y = torch::rand({n}, g) * (y1 - y0) + y0;
  return torch::stack({r * torch::cos(ang), y, r * torch::sin(ang)}, 1);
}

torch::Tensor raw_shape(int64_t cls, int64_t n, at::Generator& g) {
  const auto u = [&](double lo, double hi) { return uniform(g, {1}, lo, hi).item<double>(); };
  switch (cls) {
    case 0:  // sphere
      return unit_vectors(g, n);
    case 1: {  // box with random side lengths
      const double sx = u(0.5, 1.5), sy = u(0.5, 1.5), sz = u(0.5, 1.5);
      auto parts = split_by_area(n, {sy * sz, sy * sz, sx * sz, sx * sz, sx * sy, sx * sy}, g);
      std::vector<torch::Tensor> pts;
      for (int f = 0; f < 6; ++f) {
        auto p = (torch::rand({parts[f], 3}, g) - 0.5) * torch::tensor({sx, sy, sz}).to(torch::kFloat);
        const int axis = f / 2;
        const double half = (axis == 0 ? sx : axis == 1 ? sy : sz) / 2;
        p.select(1, axis).fill_(f % 2 ? half : -half);
        pts.push_back(p);
      }
      return torch::cat(pts);
    }
    case 2: {  // closed cylinder
      const double r = u(0.3, 0.8), h = u(0.8, 2.0);
      auto parts = split_by_area(n, {2 * M_PI * r * h, M_PI * r * r, M_PI * r * r}, g);
      return torch::cat({cylinder_side(g, parts[0], r, -h / 2, h / 2), disk(g, parts[1], r, -h / 2), disk(g, parts[2], r, h / 2)});
    }
    case 3: {  // cone with base
      const double r = u(0.4, 1.0), h = u(0.8, 2.0);
      const double slant = std::sqrt(r * r + h * h);
      auto parts = split_by_area(n, {M_PI * r * slant, M_PI * r * r}, g);
      auto t = torch::rand({parts[0]}, g).sqrt();  // area-uniform along the slant
      auto ang = torch::rand({parts[0]}, g) * (2 * M_PI);
      auto side = torch::stack({t * r * torch::cos(ang), h / 2 - t * h, t * r * torch::sin(ang)}, 1);
      return torch::cat({side, disk(g, parts[1], r, -h / 2)});
    }
    case 4: {  // torus, area-uniform by rejection on the tube angle
      const double R = 1.0, r = u(0.2, 0.45);
      std::vector<torch::Tensor> pts;
      int64_t have = 0;
      while (have < n) {
        auto a = torch::rand({2 * n}, g) * (2 * M_PI), b = torch::rand({2 * n}, g) * (2 * M_PI);
        auto keep = torch::rand({2 * n}, g) < (R + r * torch::cos(b)) / (R + r);
        a = a.masked_select(keep), b = b.masked_select(keep);
        auto ring = R + r * torch::cos(b);
        pts.push_back(torch::stack({ring * torch::cos(a), r * torch::sin(b), ring * torch::sin(a)}, 1));
        have += a.size(0);
      }
      return torch::cat(pts).narrow(0, 0, n);
    }
    case 5: {  // square pyramid
      const double s = u(0.8, 1.6), h = u(0.8, 1.8);
      auto apex = torch::tensor({0.0f, float(h / 2), 0.0f});
      std::vector<torch::Tensor> A, B, C;
      const float c[4][2] = {{-1, -1}, {1, -1}, {1, 1}, {-1, 1}};
      auto corner = [&](int i) { return torch::tensor({float(c[i][0] * s / 2), float(-h / 2), float(c[i][1] * s / 2)}); };
      for (int i = 0; i < 4; ++i) {
        A.push_back(apex), B.push_back(corner(i)), C.push_back(corner((i + 1) % 4));
      }
      A.push_back(corner(0)), B.push_back(corner(1)), C.push_back(corner(2));
      A.push_back(corner(0)), B.push_back(corner(2)), C.push_back(corner(3));
      return on_triangles(g, torch::stack(A), torch::stack(B), torch::stack(C), n);
    }
    case 6: {  // capsule: cylinder with hemispherical caps
      const double r = u(0.3, 0.6), h = u(0.8, 1.8);
      auto parts = split_by_area(n, {2 * M_PI * r * h, 4 * M_PI * r * r}, g);
      auto cap = unit_vectors(g, parts[1]) * r;
      auto up = cap.select(1, 1) >= 0;
      cap.select(1, 1).add_(torch::where(up, torch::full_like(cap.select(1, 1), h / 2), torch::full_like(cap.select(1, 1), -h / 2)));
      return torch::cat({cylinder_side(g, parts[0], r, -h / 2, h / 2), cap});
    }
    case 7: {  // oblate ellipsoid, a lentil (not area-uniform; the shape is what counts)
      const double a = 1.0, b = u(0.85, 1.0), c = u(0.3, 0.5);
      return unit_vectors(g, n) * torch::tensor({float(a), float(b), float(c)});
    }
  }
  fail("synthetic shape class " + std::to_string(cls) + " does not exist");
}

torch::Tensor random_rotation(at::Generator& g) {
  auto q = torch::randn({4}, g, torch::kDouble);
  q = q / q.norm();
  const double w = q[0].item<double>(), x = q[1].item<double>(), y = q[2].item<double>(), z = q[3].item<double>();
  return torch::tensor({1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)},
                       torch::kDouble)
      .view({3, 3})
      .to(torch::kFloat);
}

}  // namespace

torch::Tensor synth_shape(int64_t cls, const SynthOptions& o, at::Generator& gen) {
  // Oversample, cut away up to max_occlusion of the points behind a random plane, keep o.points.
  const int64_t n = static_cast<int64_t>(std::ceil(o.points / (1.0 - o.max_occlusion))) + 8;
  auto p = raw_shape(cls, n, gen);
  p = p * uniform(gen, {1}, 0.5, 2.0).item<double>();  // size
  p = p.matmul(random_rotation(gen).t());               // pose
  const double cut = uniform(gen, {1}, 0.0, o.max_occlusion).item<double>();
  if (cut > 0) {
    auto dir = unit_vectors(gen, 1)[0];
    auto proj = p.matmul(dir);
    const int64_t keep = std::max<int64_t>(o.points, static_cast<int64_t>(n * (1.0 - cut)));
    auto order = std::get<1>(proj.sort());
    p = p.index_select(0, order.narrow(0, 0, keep));
  }
  auto pick = torch::randperm(p.size(0), gen, torch::kLong).narrow(0, 0, o.points);
  p = p.index_select(0, pick);
  const double scale = p.norm(2, 1).max().item<double>();
  return p + torch::randn(p.sizes(), gen, torch::kFloat) * (o.noise * scale);
}

std::string default_synth_format() { return built_with_hdf5() ? "h5" : "npy"; }

std::string synth_dataset_for(const std::string& format) { return format == "h5" ? "modelnet_h5" : "modelnet_folder"; }

int64_t write_synthetic_dataset(const std::string& dir, const SynthOptions& o) {
  const std::string format = o.format.empty() ? default_synth_format() : o.format;
  if (format != "h5" && format != "npy") fail("ewa data synth: --format must be h5 or npy, got '" + format + "'");
  if (format == "h5" && !built_with_hdf5())
    fail("ewa data synth: --format h5: ewa was built without HDF5 (EWA_WITH_HDF5=ON and libhdf5-dev are needed); "
         "--format npy needs no optional library");
  if (o.train_per_class < 1 || o.test_per_class < 1) fail("ewa data synth: --train-per-class and --test-per-class must be >= 1");
  if (o.points < 16) fail("ewa data synth: --points must be >= 16");
  if (!(o.max_occlusion >= 0 && o.max_occlusion < 0.9)) fail("ewa data synth: --occlusion must be in [0, 0.9)");
  ensure_writable_dir(dir);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const int64_t classes = static_cast<int64_t>(kSynthClasses.size());
  int64_t total = 0;
  for (const auto& [split, per_class] : std::vector<std::pair<std::string, int64_t>>{{"train", o.train_per_class}, {"test", o.test_per_class}}) {
    std::vector<torch::Tensor> clouds;
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < per_class; ++i)
      for (int64_t c = 0; c < classes; ++c) {
        clouds.push_back(synth_shape(c, o, gen));
        labels.push_back(c);
      }
    if (format == "h5") {
      const std::string name = "ply_data_" + split + "0.h5";
      write_h5_clouds((fs::path(dir) / name).string(), torch::stack(clouds), torch::tensor(labels, torch::kLong));
      write_text_atomically((fs::path(dir) / (split + "_files.txt")).string(), "data/synthetic_shapes/" + name + "\n");
    } else {
      for (size_t k = 0; k < clouds.size(); ++k) {
        const int64_t c = labels[k], i = static_cast<int64_t>(k) / classes;
        const fs::path folder = fs::path(dir) / kSynthClasses[c] / split;
        if (i == 0) ensure_writable_dir(folder.string());
        char name[32];
        std::snprintf(name, sizeof name, "_%04lld.npy", static_cast<long long>(i));
        io::write_npy((folder / (kSynthClasses[c] + name)).string(), clouds[k]);
      }
    }
    total += static_cast<int64_t>(labels.size());
  }
  std::string names;
  for (const auto& c : kSynthClasses) names += c + "\n";
  write_text_atomically((fs::path(dir) / "shape_names.txt").string(), names);
  return total;
}

int64_t write_synthetic_files(const std::string& dir, int64_t per_class, const std::string& format, const SynthOptions& o) {
  if (per_class < 1) fail("ewa data synth-files: --per-class must be >= 1");
  if (format != "ply" && format != "npy" && format != "xyz") fail("ewa data synth-files: --format must be ply, npy or xyz, got '" + format + "'");
  if (o.points < 16) fail("ewa data synth-files: --points must be >= 16");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  int64_t total = 0;
  for (int64_t i = 0; i < per_class; ++i)
    for (int64_t c = 0; c < static_cast<int64_t>(kSynthClasses.size()); ++c) {
      const fs::path folder = fs::path(dir) / kSynthClasses[c];
      ensure_writable_dir(folder.string());
      const std::string path = (folder / (kSynthClasses[c] + "_" + std::to_string(i) + "." + format)).string();
      auto cloud = synth_shape(c, o, gen);
      if (format == "ply") {
        io::write_ply_points(path, cloud);
      } else if (format == "npy") {
        io::write_npy(path, cloud);
      } else {
        std::string text;
        auto a = cloud.accessor<float, 2>();
        char line[96];
        for (int64_t p = 0; p < cloud.size(0); ++p) {
          std::snprintf(line, sizeof line, "%.6f %.6f %.6f\n", a[p][0], a[p][1], a[p][2]);
          text += line;
        }
        write_text_atomically(path, text);
      }
      ++total;
    }
  return total;
}

}  // namespace ewa::datasets
