// `ewa predict` on files of the formats the point reader takes, good and bad: per-file results
// and errors, the exit code, JSON output, class names from the checkpoint.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "datasets/point_io.h"
#include "datasets/synthetic.h"
#include "test_util.h"

namespace {
using nlohmann::json;
using ewa::testing::TempDir;
using ewa::testing::run_command;
namespace fs = std::filesystem;
const std::string kEwa = EWA_BINARY;

TEST(Predict, ClassifiesFilesOfEveryFormatAndReportsEachBadFile) {
  TempDir dir;
  // A small model trained for one epoch on synthetic shapes (its checkpoint carries class names).
  auto r = run_command(kEwa + " data synth -o " + (dir / "synth") + " --train-per-class 6 --test-per-class 2 --points 256");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ewa::testing::write_file(dir / "c.json", R"({"name": "p", "model": {"name": "point_transformer", "embed_dim": 32, "depth": 2,
    "num_heads": 2, "num_groups": 8, "group_size": 8, "head_hidden": 32},
    "moe": {"kind": "rup", "blocks": [1], "num_experts": 2},
    "data": {"dataset": "modelnet_h5", "root": ")" + (dir / "synth") + R"(", "num_points": 64, "batch_size": 16},
    "train": {"epochs": 1, "runs_dir": ")" + (dir / "runs") + R"(", "log_every": 100}})");
  r = run_command(kEwa + " train --config " + (dir / "c.json"));
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
  ewa::data::write_npy(dir / "in/b_sphere.npy", with_nan);
  ewa::data::write_ply_points(dir / "in/sub/c_sphere.ply", sphere);
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
  int good = 6;
  if (ewa::data::built_with_pcl()) {
    std::ofstream pcd(dir / "in/e_scan.pcd");
    pcd << "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 81\nHEIGHT 5\n"
           "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 405\nDATA ascii\n";
    for (int64_t i = 0; i < 400; ++i)
      pcd << sphere[i][0].item<float>() << " " << sphere[i][1].item<float>() << " " << sphere[i][2].item<float>() << "\n";
    pcd << "nan nan nan\nnan nan nan\nnan nan nan\nnan nan nan\nnan nan nan\n";
    ++good;
  }
  if (ewa::data::built_with_open3d()) {
    std::ofstream ply(dir / "in/f_sphere_double.ply");
    ply << "ply\nformat ascii 1.0\nelement vertex 400\nproperty double x\nproperty double y\nproperty double z\nend_header\n";
    for (int64_t i = 0; i < 400; ++i)
      ply << sphere[i][0].item<double>() << " " << sphere[i][1].item<double>() << " " << sphere[i][2].item<double>() << "\n";
    ++good;
  }
  // Bad files: empty, all-NaN, too few points, garbage, 2 columns.
  fs::create_directories(dir / "bad");
  ewa::testing::write_file(dir / "bad/empty.txt", "");
  ewa::data::write_npy(dir / "bad/nan.npy", torch::full({100, 3}, NAN));
  ewa::data::write_npy(dir / "bad/few.npy", torch::randn({20, 3}));
  ewa::testing::write_file(dir / "bad/garbage.npy", "not numpy at all");
  ewa::testing::write_file(dir / "bad/flat.xyz", "1 2\n3 4\n");

  // Folder of good files: every file predicted, exit 0, class names from the checkpoint.
  r = run_command(kEwa + " predict " + ckpt + " " + (dir / "in") + " -k 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string n = std::to_string(good);
  EXPECT_NE(r.output.find(n + " of " + n + " files predicted (single pass, no voting)"), std::string::npos) << r.output;
  if (ewa::data::built_with_pcl()) EXPECT_NE(r.output.find("(5 non-finite points dropped)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("b_sphere.npy:"), std::string::npos);
  EXPECT_NE(r.output.find("(7 non-finite points dropped)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sphere 0."), std::string::npos) << r.output;  // a class name, not class_0

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
    EXPECT_EQ(j["evaluation"], "voting over 3 passes");
  }
  EXPECT_EQ(objects, 2);

  // Bad files among good ones: each gets its own one-line error, the good one is still predicted,
  // the exit code is non-zero.
  r = run_command(kEwa + " predict " + ckpt + " " + (dir / "in/a_sphere.txt") + " " + (dir / "bad") + " " + (dir / "missing.ply"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("a_sphere.txt:"), std::string::npos) << r.output;
  for (const char* needle : {"empty.txt: empty point cloud", "nan.npy: no finite points", "few.npy: 20 usable points, the model needs 64",
                             "garbage.npy: not a NumPy .npy file", "flat.xyz:1: expected at least 3 coordinates", "missing.ply",
                             "6 of 7 files could not be predicted"})
    EXPECT_NE(r.output.find(needle), std::string::npos) << needle << "\n" << r.output;
}

}  // namespace
