// Point-cloud files and datasets, written by the tests in each exact layout.
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <tuple>

#include "datasets/point_datasets.h"
#include "datasets/shapenet_part.h"
#include "config/datasets.h"
#include "config/schema.h"
#include "datasets/registry.h"
#include "datasets/image_datasets.h"
#include "datasets/image_folder.h"
#include "datasets/hdf5.h"
#include "io/point_io.h"
#include "datasets/synthetic.h"
#include "test_util.h"

namespace {
using ewa::testing::TempDir;
using ewa::testing::error_of;
using ewa::testing::write_file;
using ewa::testing::cloud_text;
namespace fs = std::filesystem;

TEST(PointFiles, TextPointsCommaAndBlankSeparated) {
  TempDir dir;
  auto pts = torch::randn({20, 6});
  write_file(dir / "a.txt", cloud_text(pts, ","));
  write_file(dir / "b.xyz", cloud_text(pts.narrow(1, 0, 3).contiguous(), " "));
  EXPECT_TRUE(torch::allclose(ewa::io::read_text_points(dir / "a.txt"), pts, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(ewa::io::read_text_points(dir / "b.xyz"), pts.narrow(1, 0, 3), 1e-5, 1e-6));
  write_file(dir / "ragged.txt", "1,2,3\n4,5\n");
  EXPECT_NE(error_of([&] { ewa::io::read_text_points(dir / "ragged.txt"); }).find(dir / "ragged.txt" + ":2: expected 3 values"),
            std::string::npos);
  write_file(dir / "nan.txt", "1,2,3\nnan,0,0\n");
  EXPECT_NE(error_of([&] { ewa::io::read_text_points(dir / "nan.txt"); }).find(":2: expected numbers"), std::string::npos);
  write_file(dir / "word.txt", "1,2,x\n");
  EXPECT_NE(error_of([&] { ewa::io::read_text_points(dir / "word.txt"); }).find(":1:"), std::string::npos);
  write_file(dir / "empty.txt", "\n\n");
  EXPECT_NE(error_of([&] { ewa::io::read_text_points(dir / "empty.txt"); }).find("empty point cloud"), std::string::npos);
}

// A unit cube [-0.5, 0.5]^3 as an OFF mesh of 6 quads.
std::string cube_off(bool glued) {
  std::string s = glued ? "OFF8 6 0\n" : "OFF\n8 6 0\n";
  for (int i = 0; i < 8; ++i)
    s += std::to_string((i & 1) - 0.5) + " " + std::to_string(((i >> 1) & 1) - 0.5) + " " + std::to_string(((i >> 2) & 1) - 0.5) + "\n";
  s += "4 0 1 3 2\n4 4 5 7 6\n4 0 1 5 4\n4 2 3 7 6\n4 0 2 6 4\n4 1 3 7 5\n";
  return s;
}

TEST(PointFiles, OffMeshesAndAreaUniformSurfaceSampling) {
  TempDir dir;
  for (bool glued : {false, true}) {
    write_file(dir / "cube.off", cube_off(glued));
    auto mesh = ewa::io::read_off(dir / "cube.off");
    EXPECT_EQ(mesh.vertices.size(0), 8);
    EXPECT_EQ(mesh.faces.size(0), 12);  // quads fan-triangulated
    auto pts = ewa::io::sample_surface(mesh, 6000, 1);
    // On the surface: the largest coordinate magnitude is 0.5.
    EXPECT_TRUE(torch::allclose(pts.abs().amax(1), torch::full({6000}, 0.5f), 1e-5, 1e-6));
    // Area-uniform: each of the 6 equal faces gets about 1/6 of the points.
    auto face_x = (pts.select(1, 0) - 0.5).abs() < 1e-5;
    EXPECT_NEAR(face_x.to(torch::kDouble).mean().item<double>(), 1.0 / 6.0, 0.02);
  }
  write_file(dir / "bad_index.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n");
  EXPECT_NE(error_of([&] { ewa::io::read_off(dir / "bad_index.off"); }).find("vertex index outside [0, 3)"), std::string::npos);
  write_file(dir / "short.off", "OFF\n3 1 0\n0 0 0\n1 0\n");
  EXPECT_NE(error_of([&] { ewa::io::read_off(dir / "short.off"); }).find("truncated or malformed vertex"), std::string::npos);
  write_file(dir / "nooff.off", "PLY\n");
  EXPECT_NE(error_of([&] { ewa::io::read_off(dir / "nooff.off"); }).find("not an OFF file"), std::string::npos);
}

// Our PLY reader, in every build: the same points in ascii (float, double), binary little-endian
// (double, with a colour property and an extra element to skip) and big-endian (short, int,
// float: integer coordinates are numbers too); a quad face fan-triangulated; bad files refused.
TEST(PointFiles, PlyReaderTakesEveryEncodingAndNumericType) {
  TempDir dir;
  auto pts = torch::tensor({{1.5f, -2.0f, 0.25f}, {3.0f, 4.0f, -5.0f}, {0.0f, 1.0f, 2.0f}, {-1.0f, -1.0f, 8.0f}});
  const std::string head = "ply\nformat ascii 1.0\ncomment made by hand\nelement vertex 4\n";
  write_file(dir / "f.ply", head + "property float x\nproperty float y\nproperty float z\nend_header\n" + cloud_text(pts, " "));
  write_file(dir / "d.ply", head + "property double z\nproperty double x\nproperty uchar red\nproperty double y\nend_header\n"
                                   "0.25 1.5 9 -2\n-5 3 9 4\n2 0 9 1\n8 -1 9 -1\n");
  EXPECT_TRUE(torch::equal(ewa::io::read_ply(dir / "f.ply").vertices, pts));
  EXPECT_TRUE(torch::equal(ewa::io::read_ply(dir / "d.ply").vertices, pts));
  EXPECT_EQ(ewa::io::read_ply(dir / "d.ply").faces.size(0), 0);
  // Binary little-endian doubles with a colour byte per vertex, an unknown element skipped, and
  // one quad (two triangles 0 1 2, 0 2 3).
  std::string le = "ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty double x\nproperty double y\n"
                   "property double z\nproperty uchar red\nelement material 1\nproperty float shine\nelement face 1\n"
                   "property list uchar int vertex_indices\nend_header\n";
  auto acc = pts.accessor<float, 2>();
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < 3; ++k) {
      const double v = acc[i][k];
      le.append(reinterpret_cast<const char*>(&v), 8);
    }
    le += char(200);
  }
  const float shine = 0.5f;
  le.append(reinterpret_cast<const char*>(&shine), 4);
  le += char(4);
  for (int32_t id : {0, 1, 2, 3}) le.append(reinterpret_cast<const char*>(&id), 4);
  write_file(dir / "le.ply", le);
  auto mesh = ewa::io::read_ply(dir / "le.ply");
  EXPECT_TRUE(torch::equal(mesh.vertices, pts));
  EXPECT_TRUE(torch::equal(mesh.faces, torch::tensor({{0, 1, 2}, {0, 2, 3}}, torch::kLong)));
  // A file with faces is a mesh: read_point_file samples its surface.
  EXPECT_EQ(ewa::io::read_point_file(dir / "le.ply", 100, 0).size(0), 100);
  // Big-endian integers and a float.
  std::string be = "ply\nformat binary_big_endian 1.0\nelement vertex 2\nproperty short x\nproperty int y\nproperty float z\nend_header\n";
  for (auto [x, y, z] : {std::tuple<int16_t, int32_t, float>{-2, 70000, 0.5f}, {7, -3, -1.25f}}) {
    uint32_t zb;
    std::memcpy(&zb, &z, 4);
    be += {char((x >> 8) & 0xff), char(x & 0xff)};
    be += {char((y >> 24) & 0xff), char((y >> 16) & 0xff), char((y >> 8) & 0xff), char(y & 0xff)};
    be += {char(zb >> 24), char((zb >> 16) & 0xff), char((zb >> 8) & 0xff), char(zb & 0xff)};
  }
  write_file(dir / "be.ply", be);
  EXPECT_TRUE(torch::equal(ewa::io::read_ply(dir / "be.ply").vertices, torch::tensor({{-2.0f, 70000.0f, 0.5f}, {7.0f, -3.0f, -1.25f}})));
  // What we write, we read back (predict's and pretraining's outputs).
  ewa::io::write_ply_points(dir / "w.ply", pts * 0.1);
  EXPECT_TRUE(torch::allclose(ewa::io::read_point_file(dir / "w.ply", 0, 0), pts * 0.1, 0, 1e-6));
  // Bad files: each names the file and the problem.
  auto bad = [&](const std::string& name, const std::string& text) {
    write_file(dir / name, text);
    return error_of([&] { ewa::io::read_point_file(dir / name, 100, 0); });
  };
  EXPECT_NE(bad("n.ply", head + "property float a\nproperty float b\nproperty float c\nend_header\n1 2 3\n")
                .find("n.ply: PLY vertex properties are 'a b c'; expected properties x, y and z"), std::string::npos);
  EXPECT_NE(bad("t.ply", le.substr(0, le.size() - 20)).find("t.ply: truncated: "), std::string::npos);
  EXPECT_NE(bad("i.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\n"
                         "property list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n")
                .find("face 0 has a vertex index outside [0, 3)"), std::string::npos);
  EXPECT_NE(bad("h.ply", "ply\nformat ascii 1.0\nelement vertex 1000000000\nproperty float x\nend_header\n")
                .find("header claims"), std::string::npos);
  EXPECT_NE(bad("x.ply", "PLY?\n").find("x.ply: not a PLY file"), std::string::npos);
  EXPECT_NE(bad("w2.ply", head + "property float x\nproperty float y\nproperty float z\nend_header\n1 2 three\n")
                .find("'three' is not a number"), std::string::npos);
  EXPECT_NE(error_of([&] { ewa::io::read_ply(dir / "missing.ply"); }).find("missing.ply: cannot open file"), std::string::npos);
}

TEST(PointFiles, PcdThroughPcl) {
  if (!ewa::io::built_with_pcl()) GTEST_SKIP() << "built without PCL";
  TempDir dir;
  auto pts = torch::randn({10, 3});
  std::string body = cloud_text(pts, " ");
  write_file(dir / "a.pcd", "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 10\nHEIGHT 1\n"
                            "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 10\nDATA ascii\n" + body);
  EXPECT_TRUE(torch::allclose(ewa::io::read_pcl_points(dir / "a.pcd"), pts, 1e-5, 1e-5));
  // An organized PCD marks missing points with NaN: they are kept for the caller to drop.
  write_file(dir / "org.pcd", "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 4\nHEIGHT 3\n"
                              "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 12\nDATA ascii\n" + cloud_text(pts.narrow(0, 0, 9), " ") +
                              "nan nan nan\nnan nan nan\nnan nan nan\n");
  auto org = ewa::io::read_pcl_points(dir / "org.pcd");
  EXPECT_EQ(org.size(0), 12);
  EXPECT_EQ(torch::isnan(org).any(1).sum().item<int64_t>(), 3);
  EXPECT_NE(error_of([&] { ewa::io::read_pcl_points(dir / "missing.pcd"); }).find("missing.pcd: cannot open file"), std::string::npos);
  write_file(dir / "garbage.pcd", "this is not a point cloud\n");
  const std::string garbage = error_of([&] { ewa::io::read_pcl_points(dir / "garbage.pcd"); });
  EXPECT_NE(garbage.find("garbage.pcd: not a valid .pcd file (its header has no FIELDS)"), std::string::npos) << garbage;
}

TEST(PointFiles, Hdf5RoundTripAndCorruptFiles) {
  if (!ewa::datasets::built_with_hdf5()) GTEST_SKIP() << "built without HDF5";
  TempDir dir;
  auto pts = torch::randn({4, 50, 3});
  auto labels = torch::tensor({3, 0, 7, 1}, torch::kLong);
  ewa::datasets::write_h5_clouds(dir / "a.h5", pts, labels);
  auto back = ewa::datasets::read_h5_clouds(dir / "a.h5");
  EXPECT_TRUE(torch::equal(back.points, pts));
  EXPECT_TRUE(torch::equal(back.labels, labels));
  ewa::datasets::write_h5_clouds(dir / "flat.h5", torch::randn({4, 50, 2}), labels);
  EXPECT_NE(error_of([&] { ewa::datasets::read_h5_clouds(dir / "flat.h5"); }).find("dataset 'data' has shape [4, 50, 2]"),
            std::string::npos);
  auto nan = pts.clone();
  nan[1][2][0] = std::numeric_limits<float>::quiet_NaN();
  ewa::datasets::write_h5_clouds(dir / "nan.h5", nan, labels);
  EXPECT_NE(error_of([&] { ewa::datasets::read_h5_clouds(dir / "nan.h5"); }).find("NaN"), std::string::npos);
  fs::copy_file(dir / "a.h5", dir / "cut.h5");
  fs::resize_file(dir / "cut.h5", fs::file_size(dir / "cut.h5") / 2);
  EXPECT_NE(error_of([&] { ewa::datasets::read_h5_clouds(dir / "cut.h5"); }).find(dir / "cut.h5"), std::string::npos);
  EXPECT_NE(error_of([&] { ewa::datasets::read_h5_clouds(dir / "none.h5"); }).find("cannot open"), std::string::npos);
}

TEST(PointData, NormalisationAndFpsOrder) {
  auto cloud = torch::randn({300, 3}) * 5 + 2;
  auto n = ewa::data::normalize_unit_sphere(cloud, "c");
  EXPECT_TRUE(torch::allclose(n.mean(0), torch::zeros({3}), 1e-5, 1e-5));
  EXPECT_NEAR(n.norm(2, 1).max().item<double>(), 1.0, 1e-5);
  auto p = ewa::data::prepare_cloud(cloud, 64, "c");
  EXPECT_EQ(p.size(0), 64);
  EXPECT_TRUE(torch::equal(p[0], n[0]));  // FPS starts at point 0
  EXPECT_NE(error_of([&] { ewa::data::normalize_unit_sphere(torch::zeros({0, 3}), "c"); }).find("empty point cloud"), std::string::npos);
  EXPECT_NE(error_of([&] { ewa::data::normalize_unit_sphere(torch::ones({5, 3}), "c"); }).find("degenerate"), std::string::npos);
  auto bad = cloud.clone();
  bad[4][1] = std::numeric_limits<float>::infinity();
  EXPECT_NE(error_of([&] { ewa::data::normalize_unit_sphere(bad, "cloud 4"); }).find("cloud 4: contains NaN"), std::string::npos);
  EXPECT_NE(error_of([&] { ewa::data::prepare_cloud(cloud, 301, "c"); }).find("has 300 points, fewer than data.num_points = 301"),
            std::string::npos);
}

TEST(PointData, AugmentationIsAnAffineMapWithinItsBounds) {
  ewa::DataConfig cfg;
  auto pts = torch::randn({6, 40, 3});
  auto out = ewa::data::augment_points(pts, cfg);
  // Recover per-axis scale and shift from two points; every point must follow them.
  auto scale = (out.select(1, 1) - out.select(1, 0)) / (pts.select(1, 1) - pts.select(1, 0));
  auto shift = out.select(1, 0) - scale * pts.select(1, 0);
  EXPECT_TRUE(torch::allclose(out, pts * scale.unsqueeze(1) + shift.unsqueeze(1), 1e-4, 1e-4));
  EXPECT_GE(scale.min().item<double>(), 2.0 / 3.0 - 1e-4);
  EXPECT_LE(scale.max().item<double>(), 1.5 + 1e-4);
  EXPECT_LE(shift.abs().max().item<double>(), 0.2 + 1e-4);
  // Rotation about y alone keeps y and every point's norm.
  cfg.rotate_up = true;
  cfg.scale_low = cfg.scale_high = 1.0;
  cfg.translate = 0;
  auto rot = ewa::data::augment_points(pts, cfg);
  EXPECT_TRUE(torch::allclose(rot.select(2, 1), pts.select(2, 1), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(rot.norm(2, 2), pts.norm(2, 2), 1e-4, 1e-5));
  EXPECT_FALSE(torch::allclose(rot, pts, 1e-3, 1e-3));
}

// ModelNet40 normal_resampled layout with 2 classes.
void write_resampled(const std::string& root, int64_t points) {
  write_file(root + "/modelnet40_shape_names.txt", "airplane\nbathtub\n");
  write_file(root + "/modelnet40_train.txt", "airplane_0001\nairplane_0002\nbathtub_0001\n");
  write_file(root + "/modelnet40_test.txt", "airplane_0003\nbathtub_0002\n");
  for (auto [cls, n] : std::vector<std::pair<std::string, int>>{{"airplane", 3}, {"bathtub", 2}}) {
    fs::create_directories(root + "/" + cls);
    for (int i = 1; i <= n; ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "%s/%s/%s_%04d.txt", root.c_str(), cls.c_str(), cls.c_str(), i);
      write_file(name, cloud_text(torch::randn({points, 6}), ","));
    }
  }
}

TEST(PointData, ModelNet40ResampledLayout) {
  TempDir dir;
  write_resampled(dir.path(), 200);
  ewa::DataConfig cfg;
  cfg.dataset = "modelnet40_resampled";
  cfg.root = dir.path();
  cfg.num_points = 64;
  auto s = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"airplane", "bathtub"}));
  EXPECT_EQ(s.train.points.sizes(), (std::vector<int64_t>{3, 64, 3}));
  EXPECT_TRUE(torch::equal(s.train.labels, torch::tensor({0, 0, 1}, torch::kLong)));
  EXPECT_TRUE(torch::equal(s.test.labels, torch::tensor({0, 1}, torch::kLong)));
  EXPECT_LE(s.train.points.norm(2, 2).max().item<double>(), 1.0 + 1e-5);
  // Normals as channels 4-6; a second load comes from the cache with the same content.
  cfg.use_normals = true;
  auto n = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_EQ(n.train.points.size(2), 6);
  auto again = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_TRUE(torch::equal(again.train.points, n.train.points));
  EXPECT_TRUE(fs::exists(dir / ".ewa_cache"));
  {
    // Proof that the second load read the cache: a point file changed behind its back (same size,
    // same time, so the cache key holds) is not read again.
    std::string victim;
    for (const auto& e : fs::recursive_directory_iterator(dir.path()))
      if (e.path().extension() == ".txt" && e.path().parent_path() != fs::path(dir.path())) {
        victim = e.path().string();
        break;
      }
    ASSERT_FALSE(victim.empty());
    const auto when = fs::last_write_time(victim);
    std::ifstream in(victim);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    for (auto& c : text)
      if (c >= '1' && c <= '8') ++c;
    write_file(victim, text);
    fs::last_write_time(victim, when);
    auto cached = ewa::datasets::load_point_splits(cfg, 0);
    EXPECT_TRUE(torch::equal(cached.train.points, n.train.points));
    EXPECT_TRUE(torch::equal(cached.test.points, n.test.points));
    EXPECT_EQ(cached.class_names, n.class_names);
  }
  // An entry naming an unknown class.
  write_file(dir / "modelnet40_test.txt", "chair_0001\n");
  cfg.use_normals = false;
  cfg.num_points = 32;
  EXPECT_NE(error_of([&] { ewa::datasets::load_point_splits(cfg, 0); }).find("names class 'chair'"), std::string::npos);
}

// The config's dataset table (what validation and the schema know) and the dataset library's
// loaders (what can be read) name the same datasets, each of the right kind.
TEST(DatasetRegistry, EveryDatasetOfTheConfigTableHasALoaderOfItsKind) {
  std::set<std::string> loaders, points, images, parts, folders;
  for (const auto& d : ewa::datasets::dataset_loaders()) EXPECT_TRUE(loaders.insert(d.name).second) << d.name << " twice";
  for (const auto& n : ewa::datasets::point_dataset_names()) points.insert(n);
  for (const auto& n : ewa::datasets::part_dataset_names()) parts.insert(n);
  for (const auto& n : ewa::datasets::image_dataset_names()) images.insert(n);
  for (const auto& n : ewa::datasets::folder_dataset_names()) folders.insert(n);
  std::set<std::string> table;
  for (const auto& info : ewa::dataset_table()) {
    table.insert(info.name);
    EXPECT_EQ(points.count(info.name), info.point_cloud && !info.segmentation ? 1u : 0u) << info.name;
    EXPECT_EQ(parts.count(info.name), info.segmentation ? 1u : 0u) << info.name;
    EXPECT_EQ(images.count(info.name), !info.point_cloud && !info.folder ? 1u : 0u) << info.name;
    EXPECT_EQ(folders.count(info.name), info.folder ? 1u : 0u) << info.name;
  }
  EXPECT_EQ(loaders, table);
  // The schema offers exactly these.
  std::set<std::string> offered;
  for (const auto& f : ewa::config_schema())
    if (f.key == "data.dataset") offered.insert(f.choices.begin(), f.choices.end());
  EXPECT_EQ(offered, table);
  // An unknown name gets one line naming the choices.
  EXPECT_NE(error_of([] { ewa::dataset_info("modelnet41"); }).find("unknown dataset 'modelnet41' (one of fashion_mnist"),
            std::string::npos);
}

TEST(PointData, SyntheticShapesInModelNetH5Layout) {
  if (!ewa::datasets::built_with_hdf5()) GTEST_SKIP() << "built without HDF5";
  TempDir dir;
  ewa::datasets::SynthOptions o;
  o.train_per_class = 3;
  o.test_per_class = 2;
  o.points = 256;
  EXPECT_EQ(ewa::datasets::write_synthetic_dataset(dir.path(), o), 8 * 5);
  for (const char* f : {"ply_data_train0.h5", "ply_data_test0.h5", "train_files.txt", "test_files.txt", "shape_names.txt"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  ewa::DataConfig cfg;
  cfg.dataset = "modelnet_h5";
  cfg.root = dir.path();
  cfg.num_points = 128;
  cfg.val_fraction = 0.25;
  auto s = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_EQ(s.class_names, ewa::datasets::kSynthClasses);
  EXPECT_EQ(s.train.size() + s.val.size(), 24);
  EXPECT_EQ(s.val.size(), 6);
  EXPECT_EQ(s.test.points.sizes(), (std::vector<int64_t>{16, 128, 3}));
  EXPECT_TRUE(torch::isfinite(s.train.points).all().item<bool>());
  // The same seed writes the same clouds.
  TempDir again;
  ewa::datasets::write_synthetic_dataset(again.path(), o);
  EXPECT_TRUE(torch::equal(ewa::datasets::read_h5_clouds(dir / "ply_data_test0.h5").points,
                           ewa::datasets::read_h5_clouds(again / "ply_data_test0.h5").points));
  // A list naming a file that is not there.
  write_file(dir / "test_files.txt", "data/modelnet40_ply_hdf5_2048/ply_data_test9.h5\n");
  EXPECT_NE(error_of([&] { ewa::datasets::load_point_splits(cfg, 1); }).find("ply_data_test9.h5 does not exist"), std::string::npos);
}

// Without HDF5 (and with --format npy) the synthetic set is .npy files in class folders: the
// generator's clouds in its order (train first, then test; sample-major, class-minor), read back by
// the modelnet_folder loader; with HDF5 the same clouds as the .h5 layout.
TEST(PointData, Hdf5DatasetsInABuildWithoutHdf5SayWhatToUseInstead) {
  if (ewa::datasets::built_with_hdf5()) GTEST_SKIP() << "this build reads HDF5 (the minimal variant runs this test)";
  TempDir dir;
  for (const char* dataset : {"modelnet_h5", "scanobjectnn"}) {
    ewa::DataConfig cfg;
    cfg.dataset = dataset;
    cfg.root = dir.path();
    const std::string e = ewa::testing::error_of([&] { ewa::datasets::load_point_splits(cfg, 0); });
    EXPECT_NE(e.find(std::string("data.dataset: '") + dataset + "' is stored as HDF5 and ewa was built without HDF5"),
              std::string::npos) << e;
    EXPECT_NE(e.find("data.dataset=modelnet_folder"), std::string::npos) << e;
  }
}

TEST(PointData, SyntheticShapesAsNpyClassFolders) {
  TempDir dir;
  ewa::datasets::SynthOptions o;
  o.train_per_class = 2;
  o.test_per_class = 1;
  o.points = 64;
  o.seed = 5;
  o.format = "npy";
  EXPECT_EQ(ewa::datasets::write_synthetic_dataset(dir.path(), o), 8 * 3);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  std::vector<torch::Tensor> expected;
  for (const auto& [split, per_class] : std::vector<std::pair<std::string, int64_t>>{{"train", 2}, {"test", 1}})
    for (int64_t i = 0; i < per_class; ++i)
      for (int64_t c = 0; c < 8; ++c) {
        expected.push_back(ewa::datasets::synth_shape(c, o, gen));
        const auto& name = ewa::datasets::kSynthClasses[c];
        const std::string file = dir / (name + "/" + split + "/" + name + "_000" + std::to_string(i) + ".npy");
        ASSERT_TRUE(fs::exists(file)) << file;
        EXPECT_TRUE(torch::equal(ewa::io::read_npy(file), expected.back())) << file;
      }
  ewa::DataConfig cfg;
  cfg.dataset = ewa::datasets::synth_dataset_for("npy");
  cfg.root = dir.path();
  cfg.num_points = 64;
  auto s = ewa::datasets::load_point_splits(cfg, 0);
  auto sorted = ewa::datasets::kSynthClasses;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(s.class_names, sorted);  // the folder loader numbers classes by name
  EXPECT_EQ(s.train.size(), 16);
  EXPECT_EQ(s.test.points.sizes(), (std::vector<int64_t>{8, 64, 3}));
  if (ewa::datasets::built_with_hdf5()) {
    TempDir h5;
    o.format = "h5";
    ewa::datasets::write_synthetic_dataset(h5.path(), o);
    auto test = ewa::datasets::read_h5_clouds(h5 / "ply_data_test0.h5").points;
    for (int64_t c = 0; c < 8; ++c) EXPECT_TRUE(torch::equal(test[c], expected[16 + c])) << c;
  } else {
    o.format = "h5";
    EXPECT_NE(error_of([&] { ewa::datasets::write_synthetic_dataset(dir / "h5", o); }).find("--format npy needs no optional library"),
              std::string::npos);
  }
  o.format = "ply";
  EXPECT_NE(error_of([&] { ewa::datasets::write_synthetic_dataset(dir / "x", o); }).find("--format must be h5 or npy, got 'ply'"),
            std::string::npos);
}

TEST(PointData, ScanObjectNNVariants) {
  if (!ewa::datasets::built_with_hdf5()) GTEST_SKIP() << "built without HDF5";
  TempDir dir;
  fs::create_directories(dir / "main_split");
  fs::create_directories(dir / "main_split_nobg");
  auto labels = torch::tensor({0, 14, 3, 7}, torch::kLong);
  ewa::datasets::write_h5_clouds(dir / "main_split/training_objectdataset_augmentedrot_scale75.h5", torch::randn({4, 100, 3}), labels);
  ewa::datasets::write_h5_clouds(dir / "main_split/test_objectdataset_augmentedrot_scale75.h5", torch::randn({4, 100, 3}), labels);
  ewa::DataConfig cfg;
  cfg.dataset = "scanobjectnn";
  cfg.variant = "pb_t50_rs";
  cfg.root = dir.path();
  cfg.num_points = 64;
  auto s = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_EQ(s.class_names.size(), 15u);
  EXPECT_EQ(s.class_names[14], "toilet");
  EXPECT_TRUE(torch::equal(s.train.labels, labels));
  cfg.variant = "obj_only";  // files missing
  EXPECT_NE(error_of([&] { ewa::datasets::load_point_splits(cfg, 0); }).find("main_split_nobg/training_objectdataset.h5"),
            std::string::npos);
  ewa::datasets::write_h5_clouds(dir / "main_split_nobg/training_objectdataset.h5", torch::randn({2, 100, 3}),
                             torch::tensor({1, 15}, torch::kLong));
  ewa::datasets::write_h5_clouds(dir / "main_split_nobg/test_objectdataset.h5", torch::randn({2, 100, 3}), torch::tensor({1, 2}));
  EXPECT_NE(error_of([&] { ewa::datasets::load_point_splits(cfg, 0); }).find("label 15 out of range"), std::string::npos);
}

TEST(PointData, ClassFolderLayoutWithMeshesAndPointFiles) {
  TempDir dir;
  for (const std::string cls : {"cube", "blob"})
    for (const std::string split : {"train", "test"}) fs::create_directories(dir / (cls + "/" + split));
  write_file(dir / "cube/train/cube_0001.off", cube_off(false));
  write_file(dir / "cube/test/cube_0002.off", cube_off(true));
  write_file(dir / "blob/train/blob_0001.txt", cloud_text(torch::randn({300, 3}), " "));
  write_file(dir / "blob/test/blob_0002.xyz", cloud_text(torch::randn({300, 3}), " "));
  ewa::DataConfig cfg;
  cfg.dataset = "modelnet_folder";
  cfg.root = dir.path();
  cfg.num_points = 128;
  auto s = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"blob", "cube"}));
  EXPECT_TRUE(torch::equal(s.train.labels, torch::tensor({0, 1}, torch::kLong)));
  // Points sampled on the cube's surface all have nearly the same largest |coordinate| (up to the
  // small centroid shift of normalisation); the Gaussian blob's points do not.
  auto spread = [](const torch::Tensor& c) {
    auto m = c.abs().amax(1);
    return (m.max() - m.min()).item<double>();
  };
  EXPECT_LT(spread(s.train.points[1]), 0.1);
  EXPECT_GT(spread(s.train.points[0]), 0.3);
  fs::create_directories(dir / "chair/train");  // a class folder without test/
  EXPECT_NE(error_of([&] { ewa::datasets::load_point_splits(cfg, 0); }).find("class folder 'chair' has no test/ folder"),
            std::string::npos);
  fs::create_directories(dir / "chair/test");
  write_file(dir / "chair/train/c.off", "OFF\n3 1 0\n0 0 0\n1 0 0\n");
  write_file(dir / "chair/test/c.txt", "1 2 3\n");
  EXPECT_NE(error_of([&] { ewa::datasets::load_point_splits(cfg, 0); }).find("c.off"), std::string::npos);
}

}  // namespace

TEST(PointData, TrainPerClassIsASeededStratifiedSubset) {
  TempDir dir;
  ewa::datasets::SynthOptions o;
  o.train_per_class = 5;
  o.test_per_class = 1;
  o.points = 32;
  o.format = "npy";
  ewa::datasets::write_synthetic_dataset(dir.path(), o);
  ewa::DataConfig cfg;
  cfg.dataset = ewa::datasets::synth_dataset_for("npy");
  cfg.root = dir.path();
  cfg.num_points = 32;
  const auto full = ewa::datasets::load_point_splits(cfg, 0);
  ASSERT_EQ(full.train.size(), 40);
  cfg.train_per_class = 3;
  const auto a = ewa::datasets::load_point_splits(cfg, 0), again = ewa::datasets::load_point_splits(cfg, 0),
             other = ewa::datasets::load_point_splits(cfg, 1);
  ASSERT_EQ(a.train.size(), 24);
  EXPECT_TRUE(torch::equal(torch::bincount(a.train.labels), torch::full({8}, 3, torch::kLong)));
  EXPECT_TRUE(torch::equal(a.train.points, again.train.points));  // seeded
  EXPECT_FALSE(torch::equal(a.train.points, other.train.points));  // another seed, another subset
  // Every kept cloud is one of the full split's, with its label.
  for (int64_t i = 0; i < a.train.size(); ++i) {
    const auto same = (full.train.points - a.train.points[i]).abs().flatten(1).amax(1).eq(0);
    ASSERT_EQ(same.sum().item<int64_t>(), 1) << i;
    EXPECT_EQ(full.train.labels.masked_select(same).item<int64_t>(), a.train.labels[i].item<int64_t>());
  }
  EXPECT_NE(a.notes.back().find("3 per class"), std::string::npos) << a.notes.back();
  cfg.train_per_class = 10;  // more than a class has: all of it
  EXPECT_EQ(ewa::datasets::load_point_splits(cfg, 0).train.size(), 40);
  // data.train_limit keeps the first samples in stored order, and says when classes are lost.
  cfg.train_per_class = 0;
  cfg.train_limit = 5;
  const auto limited = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_EQ(limited.train.size(), 5);
  ASSERT_FALSE(limited.notes.empty());
  EXPECT_NE(limited.notes.back().find("1 of 8 classes"), std::string::npos) << limited.notes.back();
}
