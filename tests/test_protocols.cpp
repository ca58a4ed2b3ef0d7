// The official protocols (docs/protocols.md): per-step resampling against a naive shuffle + FPS,
// the vote against a naive loop, timm's schedule against timm itself, the few-shot reader against
// pickles numpy wrote in the released layout, the cache and drop_last.
#include <gtest/gtest.h>

#include "config/datasets.h"

#include <cmath>
#include <fstream>
#include <set>

#include "common/random.h"
#include "datasets/point_datasets.h"
#include "datasets/hdf5.h"
#include "io/point_io.h"
#include "data/point_sampling.h"
#include "io/torch_pickle.h"
#include "models/registry.h"
#include "test_util.h"
#include "eval/protocols.h"
#include "infer/predict.h"
#include "train/checkpoint.h"
#include "train/schedule.h"
#include "eval/svm_probe.h"

namespace {
using ewa::testing::TempDir;
using ewa::testing::error_of;
using ewa::testing::run_command;
using ewa::testing::write_file;
using ewa::testing::cloud_text;
namespace fs = std::filesystem;
const std::string kPython = EWA_PYTHON;
const std::string kFixtures = std::string(EWA_SOURCE_DIR) + "/tests/fixtures/protocol_fixtures.py";

// Farthest point sampling as the plain loop: start at `start`, then the point farthest from the
// chosen ones; with `pointnet2` (pointnet2_ops' furthest_point_sample, start 0) never a point with
// x^2 + y^2 + z^2 <= 1e-3. No ties in random data, so the tie rules do not matter.
std::vector<int64_t> naive_fps(const torch::Tensor& cloud, int64_t s, int64_t start, bool pointnet2) {
  const int64_t n = cloud.size(0);
  auto a = cloud.accessor<float, 2>();
  std::vector<double> dist(n, 1e10);
  std::vector<int64_t> out = {start};
  while (static_cast<int64_t>(out.size()) < s) {
    const int64_t last = out.back();
    int64_t best = 0;
    double best_d = -1;
    for (int64_t i = 0; i < n; ++i) {
      const double x = a[i][0], y = a[i][1], z = a[i][2];
      if (pointnet2 && x * x + y * y + z * z <= 1e-3) continue;
      double d = 0;
      for (int k = 0; k < 3; ++k) d += double(a[i][k] - a[last][k]) * double(a[i][k] - a[last][k]);
      dist[i] = std::min(dist[i], d);
      if (dist[i] > best_d) {
        best_d = dist[i];
        best = i;
      }
    }
    out.push_back(best);
  }
  return out;
}
std::vector<int64_t> naive_pointnet2_fps(const torch::Tensor& cloud, int64_t s) { return naive_fps(cloud, s, 0, true); }

bool same_row(const torch::Tensor& a, const torch::Tensor& b) { return torch::equal(a, b); }

// The row of `cloud` [P, C] equal to `point`, or -1.
int64_t row_of(const torch::Tensor& cloud, const torch::Tensor& point) {
  auto hit = (cloud == point.unsqueeze(0)).all(1).nonzero();
  return hit.size(0) == 1 ? hit[0][0].item<int64_t>() : -1;
}

TEST(Sampling, OfficialFpsPointsTableAndItsError) {
  EXPECT_EQ(ewa::data::official_fps_points(1024), 1200);
  EXPECT_EQ(ewa::data::official_fps_points(2048), 2400);
  EXPECT_EQ(ewa::data::official_fps_points(4096), 4800);
  EXPECT_EQ(ewa::data::official_fps_points(8192), 8192);
  EXPECT_EQ(ewa::data::official_fps_points(512), 0);
  ewa::DataConfig cfg;
  cfg.num_points = 512;
  EXPECT_NE(error_of([&] { ewa::data::require_fps_points(cfg, "the vote"); })
                .find("data.fps_points: the vote draws data.num_points = 512"),
            std::string::npos);
  cfg.fps_points = 600;
  EXPECT_EQ(ewa::data::require_fps_points(cfg, "the vote"), 600);
}

// A training step: shuffle (as a random FPS start), pointnet2 FPS to P, one random subset of the
// P ranks for the batch. The oracle swaps the start to position 0 by hand and runs the plain FPS.
TEST(Sampling, TrainingStepIsAShuffleThenFpsThenOneSubsetForTheBatch) {
  torch::manual_seed(3);
  const int64_t B = 4, S = 500, n = 64, P = 100;
  auto clouds = torch::randn({B, S, 6});
  auto draw = ewa::data::draw_resample(B, S, n, P);
  ASSERT_EQ(draw.fps_points, P);
  ASSERT_EQ(draw.columns.sizes(), (std::vector<int64_t>{n}));
  auto out = ewa::data::apply_resample(clouds, draw);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{B, n, 6}));
  std::set<int64_t> columns;
  for (int64_t k = 0; k < n; ++k) columns.insert(draw.columns[k].item<int64_t>());
  EXPECT_EQ(columns.size(), size_t(n));  // without replacement
  EXPECT_LT(*columns.rbegin(), P);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = draw.starts[b].item<int64_t>();
    auto swapped = clouds[b].clone();
    swapped[0] = clouds[b][start];
    swapped[start] = clouds[b][0];
    const auto fps = naive_pointnet2_fps(swapped.narrow(1, 0, 3).contiguous(), P);
    EXPECT_EQ(fps[0], 0);
    for (int64_t k = 0; k < n; ++k)
      ASSERT_TRUE(same_row(out[b][k], swapped[fps[draw.columns[k].item<int64_t>()]])) << "cloud " << b << " point " << k;
  }
  // A fresh draw picks other starts and other columns.
  auto again = ewa::data::draw_resample(B, S, n, P);
  EXPECT_FALSE(torch::equal(again.columns, draw.columns) && torch::equal(again.starts, draw.starts));
}

TEST(Sampling, FpsOfEveryPointIsARandomOrderedSubsetOfEachCloud) {
  torch::manual_seed(4);
  auto clouds = torch::randn({3, 50, 3});
  for (int64_t n : {50, 20}) {
    auto out = ewa::data::resample_for_training(clouds, n, /*fps_points=*/8192);  // P clamps to S = 50
    ASSERT_EQ(out.size(1), n);
    for (int64_t b = 0; b < 3; ++b) {
      std::set<int64_t> rows;
      for (int64_t k = 0; k < n; ++k) rows.insert(row_of(clouds[b], out[b][k]));
      EXPECT_EQ(rows.size(), size_t(n));
      EXPECT_GE(*rows.begin(), 0);
    }
    if (n == 50) {
      EXPECT_FALSE(torch::equal(out, clouds));  // a new order
    }
  }
}

TEST(Sampling, VoteViewTakesOneSubsetOfTheFpsPrefixForTheBatch) {
  torch::manual_seed(5);
  auto prefix = torch::randn({3, 40, 3});
  auto view = ewa::data::vote_view(prefix, 16, 30);
  ASSERT_EQ(view.sizes(), (std::vector<int64_t>{3, 16, 3}));
  std::vector<int64_t> cols;
  for (int64_t k = 0; k < 16; ++k) cols.push_back(row_of(prefix[0], view[0][k]));
  std::set<int64_t> distinct(cols.begin(), cols.end());
  EXPECT_EQ(distinct.size(), 16u);
  EXPECT_GE(*distinct.begin(), 0);
  EXPECT_LT(*distinct.rbegin(), 30);  // never beyond the first fps_points
  for (int64_t b = 1; b < 3; ++b)
    for (int64_t k = 0; k < 16; ++k) EXPECT_EQ(row_of(prefix[b], view[b][k]), cols[k]);  // the same columns
}

// ModelNet40 normal_resampled layout: 2 classes, `points` points per file.
void write_resampled(const std::string& root, int64_t points) {
  write_file(root + "/modelnet40_shape_names.txt", "airplane\nbathtub\n");
  write_file(root + "/modelnet40_train.txt", "airplane_0001\nairplane_0002\nbathtub_0001\nbathtub_0002\n");
  write_file(root + "/modelnet40_test.txt", "airplane_0003\nbathtub_0003\n");
  for (const std::string cls : {"airplane", "bathtub"}) {
    fs::create_directories(root + "/" + cls);
    for (int i = 1; i <= 3; ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "%s/%s/%s_%04d.txt", root.c_str(), cls.c_str(), cls.c_str(), i);
      write_file(name, cloud_text(torch::randn({points, 6}) * 3 + 1, ","));
    }
  }
}

ewa::DataConfig resample_cfg(const std::string& root) {
  ewa::DataConfig cfg;
  cfg.dataset = "modelnet40_resampled";
  cfg.root = root;
  cfg.pipeline = "resample";
  cfg.num_points = 64;
  cfg.fps_points = 100;
  cfg.batch_size = 2;
  return cfg;
}

TEST(PointPipeline, ResampleKeepsSourceResolutionAndTestCloudsInFpsOrder) {
  TempDir dir;
  torch::manual_seed(6);
  write_resampled(dir.path(), 300);
  auto cfg = resample_cfg(dir.path());
  cfg.source_points = 200;  // as the official .dat: 8192 of each file's 10000 points
  auto s = ewa::datasets::load_point_splits(cfg, 0);
  ASSERT_EQ(s.train.points.sizes(), (std::vector<int64_t>{4, 200, 3}));
  ASSERT_EQ(s.test.points.sizes(), (std::vector<int64_t>{2, 100, 3}));  // eval_points = max(64, 100)
  for (const auto& split : {s.train.points, s.test.points}) {
    // Normalised (pc_normalize of the reduced cloud: centroid 0, farthest point at radius 1).
    for (int64_t i = 0; i < split.size(0); ++i) EXPECT_NEAR(split[i].norm(2, 1).max().item<double>(), 1.0, 1e-5);
  }
  for (int64_t i = 0; i < 4; ++i) EXPECT_LT(s.train.points[i].mean(0).abs().max().item<double>(), 1e-5);
  // The test clouds are in pointnet2 FPS order from point 0: the FPS of the stored prefix
  // reproduces it (the official validate() takes misc.fps(points, 1024) = this prefix).
  for (int64_t i = 0; i < 2; ++i) {
    const auto fps = naive_pointnet2_fps(s.test.points[i].contiguous(), 64);
    for (int64_t k = 0; k < 64; ++k) EXPECT_EQ(fps[k], k) << "test cloud " << i;
  }
  // Notes say what the cache did.
  ASSERT_FALSE(s.notes.empty());
  EXPECT_NE(s.notes.back().find("data cache: written"), std::string::npos) << s.notes.back();
  auto again = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_NE(again.notes.back().find("data cache: read"), std::string::npos);
  EXPECT_TRUE(torch::equal(again.train.points, s.train.points));
  // Another training seed reads the same clouds (fixed reduction seeds, as the fixed .dat files).
  auto other_seed = ewa::datasets::load_point_splits(cfg, 5);
  EXPECT_TRUE(torch::equal(other_seed.train.points, s.train.points));

  // Without normalisation the stored train cloud is the file's points themselves: 200 distinct
  // rows of the file in the order of an exact FPS from a random start (the .dat preprocessing).
  cfg.normalize = false;
  auto plain = ewa::datasets::load_point_splits(cfg, 0);
  auto raw = ewa::io::read_text_points(dir / "airplane/airplane_0001.txt").narrow(1, 0, 3).contiguous();
  auto stored = plain.train.points[0];
  std::vector<int64_t> rows;
  for (int64_t k = 0; k < 200; ++k) rows.push_back(row_of(raw, stored[k]));
  EXPECT_EQ(std::set<int64_t>(rows.begin(), rows.end()).size(), 200u);
  EXPECT_GE(*std::min_element(rows.begin(), rows.end()), 0);
  EXPECT_EQ(naive_fps(raw, 200, rows[0], false), rows);
  std::set<int64_t> starts;  // random starts, not point 0 (of 300) every time
  const char* files[4] = {"airplane/airplane_0001.txt", "airplane/airplane_0002.txt", "bathtub/bathtub_0001.txt",
                          "bathtub/bathtub_0002.txt"};
  for (int64_t i = 0; i < 4; ++i)
    starts.insert(row_of(ewa::io::read_text_points(dir / files[i]).narrow(1, 0, 3).contiguous(), plain.train.points[i][0]));
  EXPECT_GT(starts.size(), 1u);
  EXPECT_EQ(starts.count(-1), 0u);
}

TEST(PointPipeline, ReadsPointMaesDatFilesAsTheOfficialRunsDo) {
  if (kPython.empty()) GTEST_SKIP() << "no Python with torch found at configure time";
  TempDir dir;
  auto r = run_command(kPython + " " + kFixtures + " dat " + (dir / "mn") + " 256");
  if (r.output.find("No module named 'numpy'") != std::string::npos) GTEST_SKIP() << "numpy is not installed";
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto cfg = resample_cfg(dir / "mn");
  cfg.source_points = 256;  // the .dat's point count: read them (there are no .txt clouds at all)
  auto s = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_TRUE(torch::equal(s.train.labels, torch::tensor({0, 1, 1}, torch::kLong)));
  const auto test_raw = ewa::io::read_npy(dir / "mn/test_points.npy");
  const auto train_raw = ewa::io::read_npy(dir / "mn/train_points.npy");
  for (int64_t i = 0; i < 2; ++i) {
    // pc_normalize of the .dat cloud (xyz), then validate()'s misc.fps: pointnet2 FPS from its point 0.
    auto xyz = test_raw[i].narrow(1, 0, 3);
    xyz = (xyz - xyz.mean(0, true));
    xyz = (xyz / xyz.norm(2, 1).max()).contiguous();
    const auto fps = naive_pointnet2_fps(xyz, 100);
    for (int64_t k = 0; k < 100; ++k) EXPECT_LT((s.test.points[i][k] - xyz[fps[k]]).abs().max().item<double>(), 1e-6);
  }
  // Training clouds: the .dat's points as they are (in its order), normalised.
  auto xyz = train_raw[2].narrow(1, 0, 3);
  xyz = (xyz - xyz.mean(0, true));
  xyz = xyz / xyz.norm(2, 1).max();
  EXPECT_LT((s.train.points[2] - xyz).abs().max().item<double>(), 1e-6);
  // A .dat whose labels disagree with the lists is a one-line error.
  r = run_command(kPython + " " + kFixtures + " dat " + (dir / "bad") + " 256 --wrong-label");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  cfg.root = dir / "bad";
  EXPECT_NE(error_of([&] { ewa::datasets::load_point_splits(cfg, 0); })
                .find("modelnet40_test_256pts_fps.dat: cloud 0 has label 1, the split's list says 0"),
            std::string::npos);
}

TEST(PointPipeline, TrainingBatchesAreDrawnFromTheFpsSetAndDifferBetweenEpochs) {
  TempDir dir;
  torch::manual_seed(7);
  write_resampled(dir.path(), 300);
  auto cfg = resample_cfg(dir.path());
  cfg.scale_low = cfg.scale_high = 1.0;  // augmentation off: the points themselves reach the model
  cfg.translate = 0;
  auto splits = ewa::datasets::load_point_splits(cfg, 0);
  ewa::datasets::PointBatcher batcher(splits.train, cfg, 4, /*shuffle=*/false, 0);
  std::vector<torch::Tensor> epochs;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    batcher.start_epoch(epoch);
    auto [x, y] = batcher.batch(0, ewa::data::View::Training);
    ASSERT_EQ(x.sizes(), (std::vector<int64_t>{4, 64, 3}));
    for (int64_t b = 0; b < 4; ++b) {
      // Each point is a stored point, and all of them lie in the FPS-100 set of the cloud's start.
      const auto cloud = splits.train.points[b];
      const int64_t first = row_of(cloud, x[b][0]);
      ASSERT_GE(first, 0);
      std::set<int64_t> in_batch;
      for (int64_t k = 0; k < 64; ++k) in_batch.insert(row_of(cloud, x[b][k]));
      EXPECT_EQ(in_batch.size(), 64u);
      // Some start s gives an FPS-100 set holding every drawn point: try the drawn points' own
      // rows as starts (the start is in the set only if it was drawn; else check every point).
      bool explained = false;
      for (int64_t s = 0; s < cloud.size(0) && !explained; ++s) {
        auto swapped = cloud.clone();
        swapped[0] = cloud[s];
        swapped[s] = cloud[0];
        const auto fps = naive_pointnet2_fps(swapped.contiguous(), 100);
        std::set<int64_t> set;
        for (auto r : fps) set.insert(r == 0 ? s : r == s ? 0 : r);
        explained = std::includes(set.begin(), set.end(), in_batch.begin(), in_batch.end());
      }
      EXPECT_TRUE(explained) << "cloud " << b << ": no FPS-100 set holds the drawn points";
    }
    epochs.push_back(x);
  }
  EXPECT_FALSE(torch::equal(epochs[0], epochs[1]));  // a new subset every step
  // Plain batches of the test split are the first num_points of the stored FPS order.
  ewa::datasets::PointBatcher test(splits.test, cfg, 2, false, 0);
  EXPECT_TRUE(torch::equal(test.batch(0, ewa::data::View::Plain).first, splits.test.points.narrow(1, 0, 64)));
  // Plain batches of training clouds kept at source resolution: misc.fps of each (pointnet2 FPS
  // from its stored point 0), as the SVM probe and a gallery of the training split read them.
  ewa::datasets::PointBatcher train_plain(splits.train, cfg, 4, false, 0, false, /*fps_ordered=*/false);
  const auto plain = train_plain.batch(0, ewa::data::View::Plain).first;
  for (int64_t b = 0; b < 4; ++b) {
    const auto fps = naive_pointnet2_fps(splits.train.points[b].contiguous(), 64);
    for (int64_t k = 0; k < 64; ++k) ASSERT_TRUE(torch::equal(plain[b][k], splits.train.points[b][fps[k]])) << b << " " << k;
  }
}

TEST(PointPipeline, ScanObjectNNCoordinatesReachTheModelUnchanged) {
  if (!ewa::datasets::built_with_hdf5()) GTEST_SKIP() << "built without HDF5";
  TempDir dir;
  fs::create_directories(dir / "main_split");
  torch::manual_seed(8);
  auto points = torch::randn({4, 150, 3}) * 0.4 + 0.3;  // not centred, not in the unit sphere
  auto labels = torch::tensor({0, 14, 3, 7}, torch::kLong);
  ewa::datasets::write_h5_clouds(dir / "main_split/training_objectdataset_augmentedrot_scale75.h5", points, labels);
  ewa::datasets::write_h5_clouds(dir / "main_split/test_objectdataset_augmentedrot_scale75.h5", points, labels);
  ewa::DataConfig cfg;
  cfg.dataset = "scanobjectnn";
  cfg.variant = "pb_t50_rs";
  cfg.root = dir.path();
  cfg.pipeline = "resample";
  cfg.normalize = false;
  cfg.num_points = 64;
  cfg.fps_points = 80;
  auto s = ewa::datasets::load_point_splits(cfg, 0);
  // Stored as in the file, every point (in FPS order from a random start: a permutation of the rows).
  for (int64_t b = 0; b < 4; ++b) {
    std::set<int64_t> rows;
    for (int64_t k = 0; k < 150; ++k) rows.insert(row_of(points[b], s.train.points[b][k]));
    EXPECT_EQ(rows.size(), 150u);
    EXPECT_EQ(rows.count(-1), 0u);
  }
  // A training batch with the augmentation at identity: rows of the file, unchanged.
  cfg.scale_low = cfg.scale_high = 1.0;
  cfg.translate = 0;
  ewa::datasets::PointBatcher batcher(s.train, cfg, 4, false, 0);
  auto x = batcher.batch(0, ewa::data::View::Training).first;
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t k = 0; k < 64; k += 7) EXPECT_GE(row_of(points[b], x[b][k]), 0);
  // With the official augmentation: x = raw * scale + shift per cloud and axis, raw the file's.
  cfg.scale_low = 2.0 / 3.0;
  cfg.scale_high = 1.5;
  cfg.translate = 0.2;
  ewa::datasets::PointBatcher augmented(s.train, cfg, 4, false, 0);
  torch::manual_seed(9);
  auto draw = ewa::data::draw_resample(4, 150, 64, 80);
  auto expected_raw = ewa::data::apply_resample(s.train.points, draw);
  auto scale = torch::rand({4, 1, 3}) * (1.5 - 2.0 / 3.0) + 2.0 / 3.0;
  auto shift = (torch::rand({4, 1, 3}) * 2 - 1) * 0.2;
  torch::manual_seed(9);
  auto got = augmented.batch(0, ewa::data::View::Training).first;
  EXPECT_TRUE(torch::allclose(got, expected_raw * scale + shift, 1e-6, 1e-6));
  // The test clouds: the first 80 of pointnet2_ops' FPS from the file's point 0 (validate()'s misc.fps).
  for (int64_t b = 0; b < 4; ++b) {
    const auto fps = naive_pointnet2_fps(points[b].contiguous(), 80);
    for (int64_t k = 0; k < 80; ++k) ASSERT_TRUE(torch::equal(s.test.points[b][k], points[b][fps[k]])) << b << " " << k;
  }
}

TEST(PointPipeline, CacheIsKeyedOnTheSeedWhereItDrawsAndSaysWhatItDid) {
  TempDir dir;
  for (const std::string cls : {"cube", "blob"})
    for (const std::string split : {"train", "test"}) fs::create_directories(dir / ("data/" + cls + "/" + split));
  std::string off = "OFF\n8 6 0\n";
  for (int i = 0; i < 8; ++i)
    off += std::to_string((i & 1) - 0.5) + " " + std::to_string(((i >> 1) & 1) - 0.5) + " " + std::to_string(((i >> 2) & 1) - 0.5) + "\n";
  off += "4 0 1 3 2\n4 4 5 7 6\n4 0 1 5 4\n4 2 3 7 6\n4 0 2 6 4\n4 1 3 7 5\n";
  for (const std::string split : {"train", "test"}) {
    write_file(dir / ("data/cube/" + split + "/c.off"), off);
    write_file(dir / ("data/blob/" + split + "/b.xyz"), cloud_text(torch::randn({3000, 3}), " "));
  }
  ewa::DataConfig cfg;
  cfg.dataset = "modelnet_folder";
  cfg.root = dir / "data";
  cfg.cache_dir = dir / "cache";
  cfg.num_points = 128;
  auto a = ewa::datasets::load_point_splits(cfg, 0);
  auto b = ewa::datasets::load_point_splits(cfg, 1);  // another mesh-sampling seed: another cache file
  EXPECT_NE(a.notes.back().find("written"), std::string::npos);
  EXPECT_NE(b.notes.back().find("written"), std::string::npos) << b.notes.back();
  EXPECT_FALSE(torch::equal(a.train.points, b.train.points));
  auto a2 = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_NE(a2.notes.back().find("read"), std::string::npos);
  EXPECT_TRUE(torch::equal(a2.train.points, a.train.points));
  // The pipeline and the eval prefix are part of the key too.
  cfg.fps_points = 200;
  EXPECT_NE(ewa::datasets::load_point_splits(cfg, 0).notes.back().find("written"), std::string::npos);
  // A damaged cache file is reported and parsed again; an unwritable cache is reported.
  for (const auto& e : fs::directory_iterator(dir / "cache")) write_file(e.path().string(), "not a cache");
  auto damaged = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_NE(damaged.notes.front().find("cannot be read"), std::string::npos) << damaged.notes.front();
  EXPECT_NE(damaged.notes.back().find("written"), std::string::npos);
  write_file(dir / "blocker", "a file where the cache folder should be");
  cfg.cache_dir = dir / "blocker/cache";
  auto unwritable = ewa::datasets::load_point_splits(cfg, 0);
  EXPECT_NE(unwritable.notes.back().find("cannot write"), std::string::npos) << unwritable.notes.back();
  EXPECT_TRUE(torch::equal(unwritable.train.points, damaged.train.points));
}

ewa::OptimConfig timm_cfg(double warmup) {
  ewa::OptimConfig o;
  o.schedule = "timm_epoch";
  o.lr = 5e-4;
  o.min_lr = 1e-6;
  o.warmup_lr_init = 1e-6;
  o.warmup_epochs = warmup;
  return o;
}

TEST(Schedule, TimmEpochByHand) {
  // The official recipe: 301 epochs (0..300), t_initial 300, warmup 10 from 1e-6, lr 5e-4.
  auto o = timm_cfg(10);
  o.cosine_epochs = 300;
  const int64_t spe = 7, epochs = 301, total = spe * epochs;
  auto lr = [&](int64_t epoch, int64_t k = 0) { return ewa::train::lr_at(o, epoch * spe + k, spe, total, epochs); };
  EXPECT_DOUBLE_EQ(lr(0), 1e-6);  // the constructor's warmup_lr_init
  EXPECT_DOUBLE_EQ(lr(1), 1e-6);  // f(0)
  EXPECT_DOUBLE_EQ(lr(2, 6), 1e-6 + 1 * (5e-4 - 1e-6) / 10);  // constant within an epoch
  EXPECT_DOUBLE_EQ(lr(11), 1e-6 + 0.5 * (5e-4 - 1e-6) * (1 + std::cos(M_PI * 10 / 300)));
  EXPECT_DOUBLE_EQ(lr(151), 1e-6 + 0.5 * (5e-4 - 1e-6) * (1 + std::cos(M_PI * 150 / 300)));
  EXPECT_DOUBLE_EQ(lr(300), 1e-6 + 0.5 * (5e-4 - 1e-6) * (1 + std::cos(M_PI * 299 / 300)));
  // A group at half the rate: timm scales the peak only.
  EXPECT_DOUBLE_EQ(ewa::train::lr_at(o, 5 * spe, spe, total, epochs, 0.5), 1e-6 + 4 * (2.5e-4 - 1e-6) / 10);
  o.cosine_epochs = 5;  // past t_initial: lr_min
  o.warmup_epochs = 2;
  EXPECT_DOUBLE_EQ(ewa::train::lr_at(o, 7 * spe, spe, total, epochs), 1e-6);
}

TEST(Schedule, TimmEpochMatchesTimmsOwnScheduler) {
  if (kPython.empty()) GTEST_SKIP() << "no Python with torch found at configure time";
  for (const auto& [epochs, t_initial, warmup] : std::vector<std::tuple<int, int, int>>{{301, 300, 10}, {151, 150, 10}, {12, 5, 0}}) {
    auto r = run_command(kPython + " " + kFixtures + " timm_lr " + std::to_string(epochs) + " " + std::to_string(t_initial) +
                         " " + std::to_string(warmup) + " 5e-4 1e-6 1e-6 0.65");
    if (r.exit_code == 3) GTEST_SKIP() << "timm is not installed in " << kPython << " (scripts/install-deps.sh installs it)";
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto o = timm_cfg(warmup);
    o.cosine_epochs = t_initial;
    std::istringstream lines(r.output);
    int64_t epoch = 0;
    for (std::string line; std::getline(lines, line); ++epoch) {
      const auto both = nlohmann::json::parse(line);
      for (int g = 0; g < 2; ++g) {
        const double scale = g == 0 ? 1.0 : 0.65;
        for (int64_t k : {0, 4}) {
          const double ours = ewa::train::lr_at(o, epoch * 5 + k, 5, 5 * epochs, epochs, scale);
          EXPECT_NEAR(ours, both[g].get<double>(), 1e-15) << "epoch " << epoch << " group " << g;
        }
      }
    }
    EXPECT_EQ(epoch, epochs);
  }
}

TEST(Batcher, DropLastLeavesOutThePartialTrainingBatch) {
  ewa::datasets::PointCloudSet set{torch::randn({10, 8, 3}), torch::arange(10)};
  ewa::DataConfig cfg;
  cfg.num_points = 8;
  ewa::datasets::PointBatcher keep(set, cfg, 4, true, 0, /*drop_last=*/false), drop(set, cfg, 4, true, 0, /*drop_last=*/true);
  EXPECT_EQ(keep.num_batches(), 3);
  EXPECT_EQ(drop.num_batches(), 2);
  EXPECT_EQ(keep.global_batch_size(2), 2);
  // Two ranks share a global batch: rank 1 takes the second half.
  drop.start_epoch(3);
  auto whole = drop.batch(1, ewa::data::View::Plain).second;
  drop.place(torch::kCPU, 1, 2);
  EXPECT_TRUE(torch::equal(drop.batch(1, ewa::data::View::Plain).second, whole.narrow(0, 2, 2)));
}

// A tiny point classifier with random weights (the protocols do not need a trained one).
ewa::Config tiny_point_cfg() {
  nlohmann::json j = {{"model", {{"name", "point_transformer"}, {"embed_dim", 16}, {"depth", 1}, {"num_heads", 2},
                                 {"num_groups", 4}, {"group_size", 8}, {"head_hidden", 8}, {"num_classes", 3}, {"in_chans", 3}}},
                      {"moe", {{"kind", "dense"}}},
                      {"data", {{"dataset", "modelnet_h5"}, {"root", "unused"}, {"num_points", 32}, {"fps_points", 48}}},
                      {"eval", {{"vote_views", 3}, {"vote_repeats", 4}}},
                      {"train", {{"seed", 11}}}};
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

TEST(Protocols, SingleAndVoteMatchANaiveLoop) {
  torch::manual_seed(10);
  auto cfg = tiny_point_cfg();
  auto model = ewa::models::build_model(cfg);
  model->eval();
  ewa::datasets::PointCloudSet test{torch::randn({10, 48, 3}), torch::tensor({0, 1, 2, 0, 1, 2, 0, 1, 2, 0})};
  ewa::datasets::PointBatcher source(test, cfg.data, 4, false, 0);
  torch::NoGradGuard guard;
  // single: the first num_points of each stored cloud, one pass.
  auto single = ewa::eval::evaluate_protocol(*model, source, 3, torch::kCPU, {});
  auto logits = model->forward(test.points.narrow(1, 0, 32).contiguous());
  const double expect_single = logits.argmax(1).eq(test.labels).sum().item<double>() / 10.0;
  EXPECT_DOUBLE_EQ(single.metrics.overall_accuracy, expect_single);
  EXPECT_EQ(single.protocol.label(), "single pass, no voting");
  // vote: per repeat, per batch of 4, 3 views of one random 32 of the first 48 with the
  // augmentation, logits averaged; the repeats' maximum is reported.
  const auto protocol = ewa::eval::protocol_named("vote", cfg, "--protocol");
  auto vote = ewa::eval::evaluate_protocol(*model, source, 3, torch::kCPU, protocol);
  ASSERT_EQ(vote.repeat_accuracy.size(), 4u);
  std::vector<double> naive;
  ewa::with_cpu_seed(protocol.seed * 1000003ULL + 17, [&] {
    for (int r = 0; r < 4; ++r) {
      int64_t correct = 0;
      for (int64_t start = 0; start < 10; start += 4) {
        const int64_t n = std::min<int64_t>(4, 10 - start);
        auto stored = test.points.narrow(0, start, n);
        torch::Tensor sum;
        for (int v = 0; v < 3; ++v) {
          auto cols = torch::randperm(48, torch::kLong).narrow(0, 0, 32);
          auto x = stored.index_select(1, cols);
          auto scale = torch::rand({n, 1, 3}) * (1.5 - 2.0 / 3.0) + 2.0 / 3.0;
          auto shift = (torch::rand({n, 1, 3}) * 2 - 1) * 0.2;
          auto out = model->forward(x * scale + shift);
          sum = sum.defined() ? sum + out : out;
        }
        correct += sum.argmax(1).eq(test.labels.narrow(0, start, n)).sum().item<int64_t>();
      }
      naive.push_back(double(correct) / 10.0);
    }
    return 0;
  });
  for (int r = 0; r < 4; ++r) EXPECT_NEAR(vote.repeat_accuracy[r], naive[r], 1e-12) << "repeat " << r;
  EXPECT_DOUBLE_EQ(vote.max, *std::max_element(naive.begin(), naive.end()));
  double mean = 0;
  for (double a : naive) mean += a / 4;
  double var = 0;
  for (double a : naive) var += (a - mean) * (a - mean) / 3;  // sample variance (ddof 1)
  EXPECT_NEAR(vote.mean, mean, 1e-12);
  EXPECT_NEAR(vote.std, std::sqrt(var), 1e-12);
  EXPECT_NE(vote.text().find("max"), std::string::npos);
  // Seeded: the same figures again.
  auto again = ewa::eval::evaluate_protocol(*model, source, 3, torch::kCPU, protocol);
  EXPECT_EQ(again.repeat_accuracy, vote.repeat_accuracy);
  // Images have no vote; a vote count of 0 is refused by the config.
  EXPECT_NE(error_of([&] { ewa::eval::protocol_named("best", cfg, "--protocol"); }).find("--protocol: 'best' is not"),
            std::string::npos);
  nlohmann::json j = {{"eval", {{"vote_views", 0}}}};
  EXPECT_NE(error_of([&] { ewa::resolve_config(j, "config x.json"); }).find("key 'eval.vote_views': expected an integer in [1, 1000], got 0"),
            std::string::npos);
}

// ewa predict's vote: softmax of the logits averaged over views of the file's FPS prefix.
TEST(Protocols, PredictVotesOverViewsOfTheFilesFpsPrefix) {
  TempDir dir;
  torch::manual_seed(13);
  auto cfg = tiny_point_cfg();
  auto model = ewa::models::build_model(cfg);
  model->eval();
  write_file(dir / "a.xyz", cloud_text(torch::randn({300, 3}), " "));
  ewa::infer::PredictOptions o;
  o.top_k = 3;
  o.protocol = ewa::eval::protocol_named("vote", cfg, "--protocol");
  torch::manual_seed(21);
  const auto preds = ewa::infer::predict_point_files(*model, cfg, {dir / "a.xyz"}, o, torch::kCPU);
  ASSERT_TRUE(preds[0].error.empty()) << preds[0].error;
  // The oracle: the file's first 48 FPS points (eval_points), 3 views, logits averaged.
  torch::NoGradGuard guard;
  ewa::infer::FilePrediction info;
  const auto stored = ewa::infer::load_point_input(dir / "a.xyz", cfg, false, info, 48).unsqueeze(0);
  torch::manual_seed(21);
  torch::Tensor sum;
  for (int v = 0; v < 3; ++v) {
    auto cols = torch::randperm(48, torch::kLong).narrow(0, 0, 32);
    auto x = stored.index_select(1, cols);
    auto scale = torch::rand({1, 1, 3}) * (1.5 - 2.0 / 3.0) + 2.0 / 3.0;
    auto shift = (torch::rand({1, 1, 3}) * 2 - 1) * 0.2;
    auto out = model->forward(x * scale + shift);
    sum = sum.defined() ? sum + out : out;
  }
  const auto prob = torch::softmax(sum / 3.0, 1)[0];
  ASSERT_EQ(preds[0].top.size(), 3u);
  for (const auto& [cls, p] : preds[0].top) EXPECT_NEAR(p, prob[cls].item<double>(), 1e-6);
}

TEST(Pickle, NumpyArraysOfEveryLayoutAndProtocol) {
  if (kPython.empty()) GTEST_SKIP() << "no Python with torch found at configure time";
  TempDir dir;
  for (int protocol : {2, 3, 4, 5}) {
    const std::string out = dir / ("a" + std::to_string(protocol) + ".pkl");
    auto r = run_command(kPython + " " + kFixtures + " arrays " + out + " --protocol " + std::to_string(protocol));
    if (r.output.find("No module named 'numpy'") != std::string::npos) GTEST_SKIP() << "numpy is not installed";
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto root = ewa::io::read_pickle_file(out);
    for (const char* key : {"f32", "f64_fortran", "i32_big", "i64", "u8", "f16", "bool", "empty", "vector"}) {
      const auto v = root->get(key);
      ASSERT_TRUE(v && v->kind == ewa::io::PyValue::Kind::Tensor) << key << " protocol " << protocol;
      const auto expected = ewa::io::read_npy(out + "." + key + ".npy");
      EXPECT_EQ(v->tensor.sizes(), expected.sizes()) << key;
      // read_npy gives float32: compare at that precision
      EXPECT_TRUE(torch::equal(v->tensor.to(torch::kFloat), expected)) << key << " protocol " << protocol;
    }
    EXPECT_EQ(root->get("f32")->tensor.scalar_type(), torch::kFloat);
    EXPECT_EQ(root->get("i64")->tensor.scalar_type(), torch::kLong);
    EXPECT_EQ(root->get("scalar_i32")->i, -12);
    EXPECT_EQ(root->get("scalar_f64")->f, 2.5);
    const auto plain = root->get("plain");
    ASSERT_EQ(plain->items.size(), 4u);
    EXPECT_EQ(plain->items[2]->s, "three");
    const auto shared = root->get("shared");
    EXPECT_EQ(shared->items[0], shared->items[1]);  // one object, memoised
  }
  write_file(dir / "text.pkl", "(lp0\nI1\na.");  // protocol 0
  EXPECT_NE(error_of([&] { ewa::io::read_pickle_file(dir / "text.pkl"); }).find("not a pickle file of protocol 2 to 5"),
            std::string::npos);
}

ewa::DataConfig fewshot_cfg(const std::string& root, int64_t way, int64_t shot, int64_t fold) {
  ewa::DataConfig cfg;
  cfg.dataset = "modelnet_fewshot";
  cfg.root = root;
  cfg.way = way;
  cfg.shot = shot;
  cfg.fold = fold;
  cfg.num_points = 64;
  cfg.fps_points = 100;
  cfg.pipeline = "resample";
  return cfg;
}

TEST(FewShot, ReadsTheReleasedPicklesInBothSpellings) {
  if (kPython.empty()) GTEST_SKIP() << "no Python with torch found at configure time";
  TempDir dir;
  auto r = run_command(kPython + " " + kFixtures + " fewshot " + dir.path() + " 5 10 3");
  if (r.output.find("No module named 'numpy'") != std::string::npos) GTEST_SKIP() << "numpy is not installed";
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kPython + " " + kFixtures + " fewshot " + dir.path() + " 10 20 0 --dir 10way20shot --protocol 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto& [way, shot, fold, folder] : std::vector<std::tuple<int, int, int, std::string>>{
           {5, 10, 3, "5way_10shot"}, {10, 20, 0, "10way20shot"}}) {
    auto cfg = fewshot_cfg(dir.path(), way, shot, fold);
    auto s = ewa::datasets::load_point_splits(cfg, 0);
    const std::string stem = dir / (folder + "/" + std::to_string(fold));
    for (const char* split : {"train", "test"}) {
      const auto& set = std::string(split) == "train" ? s.train : s.test;
      const auto points = ewa::io::read_npy(stem + "_" + split + "_points.npy");
      const auto labels = ewa::io::read_npy(stem + "_" + split + "_labels.npy").to(torch::kLong);
      ASSERT_EQ(set.size(), points.size(0)) << split;
      EXPECT_EQ(set.size(), way * (std::string(split) == "train" ? shot : 3));
      EXPECT_TRUE(torch::equal(set.labels, labels)) << split;
      // pc_normalize on xyz, normals dropped (USE_NORMALS false), as ModelNetFewShot.__getitem__.
      for (int64_t i = 0; i < set.size(); i += 7) {
        auto xyz = points[i].narrow(1, 0, 3);
        xyz = xyz - xyz.mean(0, true);
        xyz = xyz / xyz.norm(2, 1).max();
        const auto stored = set.points[i];
        EXPECT_EQ(stored.size(1), 3);
        // Train keeps the 300 source points (resampled every step); test the first 100 of its FPS order.
        EXPECT_EQ(stored.size(0), std::string(split) == "train" ? 300 : 100);
        auto nearest = (stored.unsqueeze(1) - xyz.to(torch::kFloat).unsqueeze(0)).norm(2, 2).amin(1);
        EXPECT_LT(nearest.max().item<double>(), 1e-5) << split << " " << i;
      }
    }
    // Class names from the original ModelNet40 class of each label.
    const auto classes = ewa::io::read_npy(stem + "_train_classes.npy").to(torch::kLong);
    const auto labels = ewa::io::read_npy(stem + "_train_labels.npy").to(torch::kLong);
    ASSERT_EQ(s.class_names.size(), size_t(way));
    for (int64_t i = 0; i < labels.size(0); ++i)
      EXPECT_EQ(s.class_names[labels[i].item<int64_t>()], ewa::datasets::kModelNet40Classes[classes[i].item<int64_t>()]);
  }
}

TEST(FewShot, BadPicklesAndMissingFoldsAreOneLineErrors) {
  if (kPython.empty()) GTEST_SKIP() << "no Python with torch found at configure time";
  TempDir dir;
  fs::create_directories(dir / "5way_10shot");
  auto r = run_command(kPython + " " + kFixtures + " bad " + (dir / "5way_10shot/0.pkl") + " list");
  if (r.output.find("No module named 'numpy'") != std::string::npos) GTEST_SKIP() << "numpy is not installed";
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto cfg = fewshot_cfg(dir.path(), 5, 10, 0);
  cfg.test_limit = 1;
  auto expect_error = [&](const std::string& kind, const std::string& message) {
    if (!kind.empty()) {
      auto w = run_command(kPython + " " + kFixtures + " bad " + (dir / "5way_10shot/0.pkl") + " " + kind);
      ASSERT_EQ(w.exit_code, 0) << w.output;
      fs::remove_all(dir / ".ewa_cache");
    }
    const auto e = error_of([&] { ewa::datasets::load_point_splits(cfg, 0); });
    EXPECT_NE(e.find(message), std::string::npos) << kind << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  };
  expect_error("list", "0.pkl: top level: expected a dict with keys 'train' and 'test', got a list of 2");
  expect_error("short_item", "0.pkl: field 'train' item 0: expected a tuple (points, label, class), got a tuple of 2");
  expect_error("no_test", "0.pkl: has no key 'test'");
  expect_error("label", "0.pkl: field 'train' item 0 label: 7 is outside [0, data.way = 5)");
  cfg.fold = 4;
  expect_error("", "data.fold: " + (dir / "5way_10shot/4.pkl") + " does not exist (the folds there: 0.pkl)");
  cfg.way = 10;
  expect_error("", "(no 10way_10shot/ folder of .pkl folds in " + dir.path() + ")");
}

namespace svm_tests {
const std::string kEwa = EWA_BINARY;

// Predictions of liblinear's own command-line tools (Debian liblinear-tools) trained with
// LinearSVC()'s settings on the features in `train_txt`, for `test_txt`; empty when absent.
std::vector<int64_t> liblinear_tools_predict(const TempDir& dir, const std::string& train_txt, const std::string& test_txt) {
  if (run_command("command -v liblinear-train && command -v liblinear-predict").exit_code != 0) return {};
  auto r = run_command("liblinear-train -s 1 -c 1 -e 0.0001 -B 1 -q " + train_txt + " " + (dir / "model.txt"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run_command("liblinear-predict " + test_txt + " " + (dir / "model.txt") + " " + (dir / "predicted.txt"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "predicted.txt");
  std::vector<int64_t> out;
  for (int64_t v; in >> v;) out.push_back(v);
  return out;
}

TEST(Svm, MatchesLiblinearsOwnTools) {
  if (!ewa::eval::built_with_liblinear()) GTEST_SKIP() << "built without liblinear";
  TempDir dir;
  torch::manual_seed(12);
  auto centres = torch::randn({3, 8}) * 2;
  auto make = [&](int64_t n) {
    auto y = torch::arange(n) % 3;
    return std::make_pair(centres.index_select(0, y) + torch::randn({n, 8}) * 1.5, y);
  };
  auto [train_x, train_y] = make(90);
  auto [test_x, test_y] = make(45);
  const auto svm = ewa::eval::LinearSvm::fit(train_x, train_y, 1.0, 1e-4);
  const auto ours = svm.predict(test_x);
  ewa::eval::write_liblinear_text(dir / "train.txt", train_x, train_y);
  ewa::eval::write_liblinear_text(dir / "test.txt", test_x, test_y);
  const auto tools = liblinear_tools_predict(dir, dir / "train.txt", dir / "test.txt");
  if (tools.empty()) GTEST_SKIP() << "liblinear-train / liblinear-predict not installed (liblinear-tools)";
  ASSERT_EQ(tools.size(), 45u);
  int64_t agree = 0;
  for (int64_t i = 0; i < 45; ++i) agree += tools[i] == ours[i].item<int64_t>();
  EXPECT_EQ(agree, 45);
  const double acc = ours.eq(test_y).to(torch::kDouble).mean().item<double>();
  EXPECT_GT(acc, 0.6);  // the blobs are separable enough to be learnt at all
}

TEST(Svm, ProbeCommandAgreesWithLiblinearOnItsOwnFeatures) {
  if (!ewa::eval::built_with_liblinear()) GTEST_SKIP() << "built without liblinear";
  TempDir dir;
  auto r = ewa::testing::train_tiny_point_classifier(kEwa, dir.path(), "enc", R"({"kind": "dense"})");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string cfg = dir / "enc.json", ckpt = dir / "runs/enc/last.pt";
  r = run_command(kEwa + " svm " + ckpt + " -c " + cfg + " --write-features " + (dir / "f"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto at = r.output.find("SVM test accuracy ");
  ASSERT_NE(at, std::string::npos) << r.output;
  const double ours = std::stod(r.output.substr(at + 18, 6));
  EXPECT_NE(r.output.find("48 training, 16 test clouds, 64-d features"), std::string::npos) << r.output;
  const auto tools = liblinear_tools_predict(dir, dir / "f_train.txt", dir / "f_test.txt");
  if (tools.empty()) GTEST_SKIP() << "liblinear-train / liblinear-predict not installed (liblinear-tools)";
  std::ifstream in(dir / "f_test.txt");
  int64_t correct = 0, n = 0;
  for (std::string line; std::getline(in, line); ++n) correct += std::stoll(line) == tools[n];
  EXPECT_NEAR(ours, double(correct) / double(n), 1e-4);
  // max_mean features and a file without Point-BERT's cls_head.
  r = run_command(kEwa + " svm " + ckpt + " -c " + cfg + " --feature max_mean");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kEwa + " svm " + ckpt + " -c " + cfg + " --feature pb_cls_head");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--feature pb_cls_head needs transformer_q.cls_head.0.weight"), std::string::npos) << r.output;
}

// The resampled pipeline and timm's schedule resume exactly: 1 epoch, then --resume to 2, equals
// 2 epochs straight (the resampling draws from the generator the checkpoint stores).
TEST(ResampleRun, ResumeIsBitIdenticalAndTheLogShowsTimmsRates) {
  TempDir dir;
  auto r = run_command(kEwa + " data synth -o " + (dir / "synth") + " --train-per-class 4 --test-per-class 2 --points 256");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  write_file(dir / "r.json", R"({"name": "r", "model": {"name": "point_transformer", "embed_dim": 16, "depth": 1,
    "num_heads": 2, "num_groups": 8, "group_size": 8, "head_hidden": 8}, "moe": {"kind": "rup", "blocks": "all", "num_experts": 2},
    "data": {"dataset": ")" + ewa::testing::synth_dataset() + R"(", "root": ")" + (dir / "synth") + R"(", "pipeline": "resample", "num_points": 64,
    "fps_points": 80, "batch_size": 10},
    "optim": {"schedule": "timm_epoch", "lr": 0.01, "warmup_epochs": 1, "cosine_epochs": 2, "min_lr": 0.001},
    "train": {"epochs": 2, "log_every": 1, "runs_dir": ")" + (dir / "runs") + R"("}})");
  r = run_command(kEwa + " train --config " + (dir / "r.json") + " --name straight");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // 32 clouds, batches of 10 with drop_last: 3 steps an epoch; epoch 1 at 1e-6, epoch 2 at f(0) = 1e-6.
  EXPECT_NE(r.output.find("2 epochs x 3 steps, batch 10 (last partial batch dropped)"), std::string::npos) << r.output;
  const auto at = r.output.find("epoch 2/2 step 4/6 loss");
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::string line = r.output.substr(at, r.output.find('\n', at) - at);
  EXPECT_NE(line.find(" lr 1.00e-06 "), std::string::npos) << line;  // timm: epoch 1 runs at f(0) = warmup_lr_init
  EXPECT_NE(r.output.find("best on test: OA"), std::string::npos) << r.output;
  r = run_command(kEwa + " train --config " + (dir / "r.json") + " --name split --set train.epochs=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kEwa + " train --config " + (dir / "r.json") + " --name split --resume " + (dir / "runs/split/last.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto a = ewa::train::read_checkpoint(dir / "runs/straight/last.pt");
  auto b = ewa::train::read_checkpoint(dir / "runs/split/last.pt");
  EXPECT_EQ(a.step, 6);
  EXPECT_EQ(b.step, 6);
  for (const auto& item : a.model) EXPECT_TRUE(torch::equal(item.value(), *b.model.find(item.key()))) << item.key();
}

TEST(FewShotCli, RunsTheFoldsAndReportsMeanAndSampleSd) {
  if (kPython.empty()) GTEST_SKIP() << "no Python with torch found at configure time";
  TempDir dir;
  for (int fold : {0, 1}) {
    auto r = run_command(kPython + " " + kFixtures + " fewshot " + (dir / "fs") + " 5 10 " + std::to_string(fold));
    if (r.output.find("No module named 'numpy'") != std::string::npos) GTEST_SKIP() << "numpy is not installed";
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  write_file(dir / "fs.json", R"({"name": "fs", "model": {"name": "point_transformer", "embed_dim": 16, "depth": 1,
    "num_heads": 2, "num_groups": 8, "group_size": 8, "head_hidden": 8, "num_classes": 40},
    "moe": {"kind": "dense"}, "data": {"dataset": "modelnet_fewshot", "root": ")" + (dir / "fs") + R"(",
    "pipeline": "resample", "num_points": 64, "fps_points": 100, "batch_size": 16},
    "optim": {"schedule": "timm_epoch", "warmup_epochs": 1, "cosine_epochs": 2},
    "train": {"epochs": 3, "runs_dir": ")" + (dir / "runs") + R"(", "log_every": 100}})");
  auto r = run_command(kEwa + " fewshot -c " + (dir / "fs.json") + " --way 5 --shot 10 --folds 0 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("head of 40 outputs for 5 classes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("5-way 10-shot over 2 folds"), std::string::npos) << r.output;
  // The summary is the mean and sample sd of the folds' own metrics.
  std::vector<double> final_oa;
  for (int fold : {0, 1}) {
    std::ifstream in(dir / ("runs/fs_5w10s_fold" + std::to_string(fold) + "/metrics.json"));
    final_oa.push_back(nlohmann::json::parse(in)["protocols"]["final"]["test"]["oa"].get<double>());
  }
  std::ifstream in(dir / "runs/fs_5w10s_summary.json");
  const auto summary = nlohmann::json::parse(in);
  EXPECT_NEAR(summary["final"]["mean"].get<double>(), (final_oa[0] + final_oa[1]) / 2, 1e-12);
  EXPECT_NEAR(summary["final"]["sd"].get<double>(), std::abs(final_oa[0] - final_oa[1]) / std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(summary["final"]["sd_population"].get<double>(), std::abs(final_oa[0] - final_oa[1]) / 2, 1e-12);
  // Finished folds are read, not trained again (way and shot from the config this time); a fold
  // that does not exist is a one-line error.
  r = run_command(kEwa + " fewshot -c " + (dir / "fs.json") + " --set data.way=5 --set data.shot=10 --folds 0 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fold 1: finished before"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("epoch 1/3"), std::string::npos) << r.output;
  r = run_command(kEwa + " fewshot -c " + (dir / "fs.json") + " --way 5 --shot 10 --folds 7");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("ewa: error: data.fold: " + (dir / "fs/5way_10shot/7.pkl") + " does not exist (the folds there: "),
            std::string::npos)
      << r.output;
}
}  // namespace svm_tests

}  // namespace

namespace {
TEST(Configs, EveryShippedConfigParsesAndTheOfficialOnesNameTheirUpstreamFile) {
  int official = 0;
  for (const auto& e : fs::directory_iterator(std::string(EWA_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".json") continue;
    const std::string path = e.path().string(), stem = e.path().stem().string();
    ewa::Config cfg;
    ASSERT_NO_THROW(cfg = ewa::parse_config(ewa::load_config_file(path), path)) << path;
    const bool pointmae_or_bert_recipe = stem.rfind("finetune_", 0) == 0 || stem.rfind("fewshot_", 0) == 0;
    if (!pointmae_or_bert_recipe) continue;
    ++official;
    if (ewa::dataset_info(cfg.data.dataset).segmentation) {
      // Point-MAE's part segmentation (PM:segmentation/main.py): its own sampling (2048 points
      // drawn with replacement), timm's cosine with t_initial = --epoch over epochs 0..E-1.
      EXPECT_NE(cfg.description.find("PM:segmentation/main.py"), std::string::npos) << path;
      EXPECT_EQ(cfg.optim.schedule, "timm_epoch") << path;
      EXPECT_EQ(cfg.train.epochs, cfg.optim.cosine_epochs) << path;
      EXPECT_TRUE(cfg.data.drop_last) << path;
      EXPECT_EQ(cfg.data.num_points, 2048) << path;
      continue;
    }
    EXPECT_TRUE(cfg.description.find("PM:cfgs/") != std::string::npos || cfg.description.find("PB:cfgs/") != std::string::npos)
        << path << ": the description names no upstream config";
    // The official pipeline and schedule: per-step resampling, timm's per-epoch cosine over
    // epochs 0..E with t_initial E, drop_last.
    EXPECT_EQ(cfg.data.pipeline, "resample") << path;
    EXPECT_EQ(cfg.optim.schedule, "timm_epoch") << path;
    EXPECT_EQ(cfg.train.epochs, cfg.optim.cosine_epochs + 1) << path;
    EXPECT_TRUE(cfg.data.drop_last) << path;
    EXPECT_EQ(cfg.data.normalize, cfg.data.dataset != "scanobjectnn") << path;
  }
  EXPECT_GE(official, 20);
}
}  // namespace
