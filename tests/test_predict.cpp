// `ewa predict` on files of the formats the point reader takes, good and bad: per-file results
// and errors, the exit code, JSON output, class names from the checkpoint.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/point_io.h"
#include "datasets/synthetic.h"
#include "test_util.h"

#ifdef EWA_HAS_PCL
#include <pcl/io/pcd_io.h>
#include <pcl/point_types.h>
#endif

namespace {
using nlohmann::json;
using ewa::testing::TempDir;
using ewa::testing::run_command;
namespace fs = std::filesystem;
const std::string kEwa = EWA_BINARY;

TEST(Predict, ClassifiesFilesOfEveryFormatAndReportsEachBadFile) {
  TempDir dir;
  // A small model trained for one epoch on synthetic shapes (its checkpoint carries class names).
  auto r = ewa::testing::train_tiny_point_classifier(kEwa, dir.path(), "p", R"({"kind": "rup", "blocks": [1], "num_experts": 2})");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string ckpt = dir / "runs/p/last.pt";

  // Good files: a sphere as text, NumPy (with NaN rows to drop) and PLY, and an OFF cube mesh.
  fs::create_directories(dir / "in/sub");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  auto sphere = torch::randn({400, 3}, gen);
  sphere = sphere / sphere.norm(2, 1, true);
  {
    std::ofstream t(dir / "in/a_sphere.txt");
    for (int64_t i = 0; i < 400; ++i)
      t << sphere[i][0].item<float>() << "," << sphere[i][1].item<float>() << "," << sphere[i][2].item<float>() << "\n";
  }
  auto with_nan = sphere.clone();
  with_nan.narrow(0, 0, 7).fill_(NAN);
  ewa::io::write_npy(dir / "in/b_sphere.npy", with_nan);
  ewa::io::write_ply_points(dir / "in/sub/c_sphere.ply", sphere);
  ewa::testing::write_file(dir / "in/sub/d_cube.off", "OFF\n8 6 0\n-1 -1 -1\n1 -1 -1\n1 1 -1\n-1 1 -1\n-1 -1 1\n1 -1 1\n1 1 1\n-1 1 1\n"
                                                      "4 0 1 2 3\n4 4 5 6 7\n4 0 1 5 4\n4 2 3 7 6\n4 0 3 7 4\n4 1 2 6 5\n");
  // A .csv with a header line and a .pts with a point-count line.
  {
    std::ofstream csv(dir / "in/g_sphere.csv"), pts(dir / "in/h_sphere.pts");
    csv << "x,y,z\n";
    pts << "400\n";
    for (int64_t i = 0; i < 400; ++i) {
      csv << sphere[i][0].item<float>() << "," << sphere[i][1].item<float>() << "," << sphere[i][2].item<float>() << "\n";
      pts << sphere[i][0].item<float>() << " " << sphere[i][1].item<float>() << " " << sphere[i][2].item<float>() << " 7\n";
    }
  }
  // An organized PCD (missing points as NaN) and a PLY with double vertices, where the readers exist.
  int good = 8;  // 6 above, the double PLY and the PLY cube below (our PLY reader: every build)
  if (ewa::io::built_with_pcl()) {
    std::ofstream pcd(dir / "in/e_scan.pcd");
    pcd << "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 81\nHEIGHT 5\n"
           "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 405\nDATA ascii\n";
    for (int64_t i = 0; i < 400; ++i)
      pcd << sphere[i][0].item<float>() << " " << sphere[i][1].item<float>() << " " << sphere[i][2].item<float>() << "\n";
    pcd << "nan nan nan\nnan nan nan\nnan nan nan\nnan nan nan\nnan nan nan\n";
    ++good;
  }
  {
    std::ofstream ply(dir / "in/f_sphere_double.ply");
    ply << "ply\nformat ascii 1.0\nelement vertex 400\nproperty double x\nproperty double y\nproperty double z\nend_header\n";
    for (int64_t i = 0; i < 400; ++i)
      ply << sphere[i][0].item<double>() << " " << sphere[i][1].item<double>() << " " << sphere[i][2].item<double>() << "\n";
  }
  // Meshes: a binary PLY cube with colours and faces (sampled on the surface; our reader), an .obj
  // cube of quads (PCL), and PCD files with extra fields in binary and binary_compressed encodings.
  {
    std::ofstream ply(dir / "in/j_cube_binary.ply", std::ios::binary);
    ply << "ply\nformat binary_little_endian 1.0\nelement vertex 8\nproperty float x\nproperty float y\nproperty float z\n"
           "property uchar red\nproperty uchar green\nproperty uchar blue\nelement face 12\nproperty list uchar int vertex_indices\n"
           "end_header\n";
    for (int i = 0; i < 8; ++i) {
      float v[3] = {i & 1 ? 1.f : -1.f, i & 2 ? 1.f : -1.f, i & 4 ? 1.f : -1.f};
      unsigned char rgb[3] = {200, 10, 10};
      ply.write(reinterpret_cast<const char*>(v), sizeof v).write(reinterpret_cast<const char*>(rgb), 3);
    }
    const int faces[12][3] = {{0, 1, 3}, {0, 3, 2}, {4, 5, 7}, {4, 7, 6}, {0, 1, 5}, {0, 5, 4},
                              {2, 3, 7}, {2, 7, 6}, {0, 2, 6}, {0, 6, 4}, {1, 3, 7}, {1, 7, 5}};
    for (const auto& f : faces) {
      unsigned char three = 3;
      ply.write(reinterpret_cast<const char*>(&three), 1).write(reinterpret_cast<const char*>(f), sizeof f);
    }
  }  // closed: written out before it is read
  // The surface sample covers the cube's faces, not only its 8 corners.
  auto pts = ewa::io::read_point_file(dir / "in/j_cube_binary.ply", 2048, 0);
  EXPECT_EQ(pts.size(0), 2048);
  EXPECT_NEAR(pts.abs().amax(1).min().item<float>(), 1.0f, 1e-5);  // every point on a face
  EXPECT_LT(pts.abs().amin(1).max().item<float>(), 1.0f);           // not all at corners
  if (ewa::io::built_with_pcl()) {
    ewa::testing::write_file(dir / "in/i_cube.obj", "# cube\nv -1 -1 -1\nv 1 -1 -1\nv 1 1 -1\nv -1 1 -1\nv -1 -1 1\nv 1 -1 1\n"
                                                    "v 1 1 1\nv -1 1 1\nf 1 2 3 4\nf 5 6 7 8\nf 1 2 6 5\nf 3 4 8 7\nf 1 4 8 5\nf 2 3 7 6\n");
    ++good;
    auto obj = ewa::io::read_point_file(dir / "in/i_cube.obj", 1000, 0);
    EXPECT_EQ(obj.size(0), 1000);
    EXPECT_NEAR(obj.abs().amax(1).min().item<float>(), 1.0f, 1e-5);
  }
#ifdef EWA_HAS_PCL
  {
    pcl::PointCloud<pcl::PointXYZRGBNormal> c;
    for (int64_t i = 0; i < 400; ++i) {
      pcl::PointXYZRGBNormal q;
      q.x = sphere[i][0].item<float>(), q.y = sphere[i][1].item<float>(), q.z = sphere[i][2].item<float>();
      q.r = 10, q.g = 200, q.b = 30, q.normal_x = q.x, q.normal_y = q.y, q.normal_z = q.z, q.curvature = 0.5f;
      c.push_back(q);
    }
    ASSERT_EQ(pcl::io::savePCDFileBinary(dir / "in/k_scan_binary.pcd", c), 0);
    ASSERT_EQ(pcl::io::savePCDFileBinaryCompressed(dir / "in/l_scan_compressed.pcd", c), 0);
    good += 2;
    auto back = ewa::io::read_point_file(dir / "in/l_scan_compressed.pcd", 0, 0);
    EXPECT_TRUE(torch::allclose(back, sphere, 0, 1e-6));  // xyz taken from among the extra fields
  }
#endif
  // Bad files: empty, all-NaN, too few points, garbage, 2 columns.
  fs::create_directories(dir / "bad");
  ewa::testing::write_file(dir / "bad/empty.txt", "");
  ewa::io::write_npy(dir / "bad/nan.npy", torch::full({100, 3}, NAN));
  ewa::io::write_npy(dir / "bad/few.npy", torch::randn({20, 3}));
  ewa::testing::write_file(dir / "bad/garbage.npy", "not numpy at all");
  ewa::testing::write_file(dir / "bad/flat.xyz", "1 2\n3 4\n");
  int bad = 7;
  if (ewa::io::built_with_pcl()) {
    ewa::testing::write_file(dir / "bad/face.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n");
    std::string pcd = "# .PCD v0.7\nVERSION 0.7\nFIELDS a b c\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 100\nHEIGHT 1\n"
                      "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 100\nDATA ascii\n";
    for (int i = 0; i < 100; ++i) pcd += std::to_string(i) + " 1 2\n";
    ewa::testing::write_file(dir / "bad/fields.pcd", pcd);
    bad += 2;
  }

  // Folder of good files: every file predicted, exit 0, class names from the checkpoint.
  r = run_command(kEwa + " predict " + ckpt + " " + (dir / "in") + " -k 8");  // every class listed
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string n = std::to_string(good);
  EXPECT_NE(r.output.find(n + " of " + n + " files predicted (single pass, no voting)"), std::string::npos) << r.output;
  if (ewa::io::built_with_pcl()) {
    EXPECT_NE(r.output.find("(5 non-finite points dropped)"), std::string::npos) << r.output;
  }
  EXPECT_NE(r.output.find("b_sphere.npy:"), std::string::npos);
  EXPECT_NE(r.output.find("(7 non-finite points dropped)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sphere 0."), std::string::npos) << r.output;  // a class name, not class_0
  EXPECT_EQ(r.output.find("class_"), std::string::npos) << r.output;

  // JSON: one object per file, probabilities summing to at most 1 and sorted.
  r = run_command(kEwa + " predict " + ckpt + " " + (dir / "in/a_sphere.txt") + " " + (dir / "in/sub/d_cube.off") +
                  " --json -k 8 --votes 3 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  int objects = 0;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    auto j = json::parse(line);
    ++objects;
    EXPECT_EQ(j["top"].size(), 8u);
    double sum = 0, last = 1;
    for (const auto& t : j["top"]) {
      EXPECT_LE(t["probability"].get<double>(), last + 1e-12);
      last = t["probability"].get<double>();
      sum += last;
    }
    EXPECT_NEAR(sum, 1.0, 1e-4);  // all 8 classes listed
    EXPECT_EQ(j["evaluation"], "test-time augmentation: logits of 1 clean + 2 augmented passes averaged (not the official vote)");
  }
  EXPECT_EQ(objects, 2);

  // Bad files among good ones: each gets its own one-line error, the good one is still predicted,
  // the exit code is non-zero.
  r = run_command(kEwa + " predict " + ckpt + " " + (dir / "in/a_sphere.txt") + " " + (dir / "bad") + " " + (dir / "missing.ply"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("a_sphere.txt:"), std::string::npos) << r.output;
  for (const char* needle : {"empty.txt: empty point cloud", "nan.npy: no finite points",
                             "few.npy: 20 usable points, the model needs 64 (data.num_points); --upsample fills it up",
                             "garbage.npy: not a NumPy .npy file", "flat.xyz:1: expected at least 3 coordinates",
                             "missing.ply: cannot open file"})
    EXPECT_NE(r.output.find(needle), std::string::npos) << needle << "\n" << r.output;
  const std::string summary = std::to_string(bad - 1) + " of " + std::to_string(bad) + " files could not be predicted";
  EXPECT_NE(r.output.find(summary), std::string::npos) << r.output;
  if (ewa::io::built_with_pcl()) {
    EXPECT_NE(r.output.find("face.obj: face 1 refers to vertex 9 of 3"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("fields.pcd: PCD fields are 'a b c'; expected fields x, y and z"), std::string::npos) << r.output;
  }

  // The converted dense model predicts the same probabilities as the RupMoE checkpoint (its eval
  // mode uses the experts' mean, which is what conversion folds in).
  r = run_command(kEwa + " convert " + ckpt + " -o " + (dir / "dense.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto top_of = [&](const std::string& weights) {
    auto out = run_command(kEwa + " predict " + weights + " " + (dir / "in/a_sphere.txt") + " --json -k 8");
    EXPECT_EQ(out.exit_code, 0) << out.output;
    return json::parse(out.output)["top"];
  };
  const auto moe_top = top_of(ckpt), dense_top = top_of(dir / "dense.pt");
  ASSERT_EQ(moe_top.size(), 8u);
  ASSERT_EQ(dense_top.size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(moe_top[i]["class"], dense_top[i]["class"]);
    EXPECT_NEAR(moe_top[i]["probability"].get<double>(), dense_top[i]["probability"].get<double>(), 1e-5);
  }

  // --upsample: 20 points are filled up to 64 (and labelled); 5 points (fewer than the 8 groups)
  // are still refused.
  ewa::io::write_npy(dir / "bad/tiny.npy", torch::randn({5, 3}));
  r = run_command(kEwa + " predict " + ckpt + " " + (dir / "bad/few.npy") + " --upsample");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(upsampled from 20 points)"), std::string::npos) << r.output;
  r = run_command(kEwa + " predict " + ckpt + " " + (dir / "bad/tiny.npy") + " --upsample");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("tiny.npy: 5 usable points, the model needs 64 (data.num_points), and upsampling needs at least "
                          "model.num_groups = 8"),
            std::string::npos)
      << r.output;
}

}  // namespace
