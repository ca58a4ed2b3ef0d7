// Part segmentation: our point_seg against a PyTorch model laid out like Point-MAE's segmentation
// network (tests/fixtures/official_point_seg.py: same weights, log-probabilities within 1e-4,
// both ways), the metrics against hand-computed cases, the ShapeNetPart readers against files in
// each released layout, and one-line errors for bad files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "common/error.h"
#include "config/config.h"
#include "datasets/hdf5.h"
#include "datasets/shapenet_part.h"
#include "io/point_io.h"
#include "io/pretrained.h"
#include "io/state_dict.h"
#include "models/point_mae.h"
#include "models/point_seg.h"
#include "moe/ewa.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "tasks/segmentation.h"
#include "eval/parts.h"

namespace {
using nlohmann::json;
using ewa::testing::TempDir;
namespace fs = std::filesystem;

const std::string kPython = EWA_PYTHON;
const std::string kScript = std::string(EWA_SOURCE_DIR) + "/tests/fixtures/official_point_seg.py";

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ewa::Error& e) {
    return e.what();
  }
  return "";
}

// The fixture's sizes: D 48, depth 3 (features of blocks 1, 2, 3), 3 heads, 16 groups of 8,
// propagation 64 -> 96, head 64 -> 32 -> 50 parts, 16 categories.
ewa::Config seg_config(const json& extra = json::object()) {
  json j = {{"model", {{"name", "point_seg"}, {"embed_dim", 48}, {"depth", 3}, {"num_heads", 3}, {"num_groups", 16},
                       {"group_size", 8}, {"qkv_bias", false}, {"in_chans", 3}, {"num_classes", 50},
                       {"num_categories", 16}, {"seg_fp_hidden", 64}, {"seg_fp_dim", 96}, {"seg_head_hidden", 64}}},
            {"moe", {{"kind", "dense"}}},
            {"data", {{"dataset", "shapenetpart"}, {"root", "unused"}, {"num_points", 256}}}};
  j.merge_patch(extra);
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

class OfficialSegmentation : public ewa::testing::PythonFixtureSuite<OfficialSegmentation> {
 public:
  static std::string script() { return kScript; }
  static std::string prefix() { return "seg"; }

 protected:
  static torch::Tensor logprob(ewa::models::PointSegImpl& model) {
    torch::NoGradGuard guard;
    model.eval();
    auto points = npy("points");
    auto category = npy("category").to(torch::kLong);
    return torch::log_softmax(model.forward(points, category), 2);
  }
};

TEST_F(OfficialSegmentation, ImportedCheckpointGivesTheOfficialLogProbabilities) {
  ewa::models::PointSeg model(seg_config());
  const auto report = ewa::io::load_pretrained(*model, ewa::io::read_state_dict(file("seg.pth")), {}, file("seg.pth"));
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.fresh.empty()) << report.table();
  const auto expected = ewa::io::read_npy(file("logprob.npy"));
  const auto got = logprob(*model);
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_LT((got - expected).abs().max().item<double>(), 1e-4);
}

// Training mode as upstream trains: BatchNorm on the batch's statistics, drop path (0.1 over the
// blocks) and dp1's dropout, each drawn from the default generator seeded as the fixture seeded it.
TEST_F(OfficialSegmentation, TrainingModePassWithDropPathAndDropoutGivesTheOfficialLogProbabilities) {
  ewa::models::PointSeg model(seg_config());
  ewa::io::load_pretrained(*model, ewa::io::read_state_dict(file("seg.pth")), {}, file("seg.pth"));
  model->train();
  torch::manual_seed(5);  // the fixture's --seed 0 + 5
  torch::NoGradGuard guard;
  const auto got = torch::log_softmax(model->forward(npy("points"), npy("category").to(torch::kLong)), 2);
  const auto expected = npy("logprob_train");
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_LT((got - expected).abs().max().item<double>(), 1e-4);
  // The pass differs from the eval-mode one (the test can see a dropped path or unit).
  EXPECT_GT((expected - npy("logprob")).abs().max().item<double>(), 1e-2);
}

TEST_F(OfficialSegmentation, ExportLoadsStrictlyInTheOfficialModelWithOurLogProbabilities) {
  ewa::models::PointSeg model(seg_config());
  ewa::io::load_pretrained(*model, ewa::io::read_state_dict(file("seg.pth")), {}, file("seg.pth"));
  TempDir tmp;
  fs::copy(file("points.npy"), tmp / "points.npy");
  fs::copy(file("category.npy"), tmp / "category.npy");
  ewa::io::write_torch_state_dict(tmp / "ours.pth", ewa::io::to_official_layout(ewa::moe::collapse_to_dense(*model)), 0,
                                 "model_state_dict");  // as ewa export writes a point_seg
  auto r = ewa::testing::run_command(kPython + " " + kScript + " check " + tmp.path() + " " + (tmp / "ours.pth"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT((ewa::io::read_npy(tmp / "check_logprob.npy") - logprob(*model)).abs().max().item<double>(), 1e-4);
}

TEST_F(OfficialSegmentation, PretrainingCheckpointInitialisesTheBackboneExactlyWithEwaExperts) {
  // EWA fine-tuning: RupMoE FFNs in blocks 0 and 2 start as the pretrained FFN.
  auto cfg = seg_config({{"moe", {{"kind", "rup"}, {"blocks", {0, 2}}, {"num_experts", 4}}},
                         {"finetune", {{"init", file("pretrain.pth")}}}});
  ewa::models::PointSeg model(cfg);
  const auto report = ewa::tasks::init_segmentation(*model, cfg);
  EXPECT_TRUE(report.missing.empty()) << report.table();
  EXPECT_FALSE(report.fresh.empty());  // the head, label embedding and propagation
  EXPECT_FALSE(report.expanded.empty());
  const auto file_sd = ewa::io::normalize_keys(ewa::io::read_state_dict(file("seg.pth")).tensors);
  ewa::models::PointSeg dense(seg_config());
  ewa::io::load_pretrained(*dense, ewa::io::read_state_dict(file("seg.pth")), {}, file("seg.pth"));
  // Backbone outputs equal the official weights' (experts equal the FFN: the MoE computes the FFN).
  auto points = ewa::io::read_npy(file("points.npy"));
  torch::NoGradGuard guard;
  model->eval();
  dense->eval();
  EXPECT_LT((model->backbone(points).first - dense->backbone(points).first).abs().max().item<double>(), 1e-5);
  // Head tensors are not the file's.
  EXPECT_FALSE(torch::allclose(model->convs3->weight, file_sd.find("convs3.weight")->squeeze(-1)));
}

// Our own `ewa pretrain` checkpoint (a point_mae model, ewa-checkpoint-2) gives point_seg its
// backbone tensor for tensor; the decoder and mask token are not used, the head starts fresh.
TEST(Segmentation, OurPointMaePretrainingCheckpointInitialisesTheBackbone) {
  json mae = {{"model", {{"name", "point_mae"}, {"embed_dim", 48}, {"depth", 3}, {"num_heads", 3}, {"num_groups", 16},
                         {"group_size", 8}, {"qkv_bias", false}}},
              {"moe", {{"kind", "dense"}}},
              {"pretrain", {{"decoder_depth", 1}, {"decoder_num_heads", 3}}},
              {"data", {{"dataset", "shapenet55"}, {"root", "unused"}, {"num_points", 256}}}};
  const auto mae_cfg = ewa::parse_config(ewa::resolve_config(mae, "test"), "test");
  torch::manual_seed(3);
  ewa::models::PointMae pretrained(mae_cfg);
  TempDir tmp;
  ewa::train::save_checkpoint(tmp / "last.pt", ewa::train::make_checkpoint(*pretrained, nullptr, mae_cfg.json, 10, 1));
  auto cfg = seg_config({{"finetune", {{"init", tmp / "last.pt"}}}});
  ewa::models::PointSeg model(cfg);
  const auto report = ewa::tasks::init_segmentation(*model, cfg);
  EXPECT_TRUE(report.missing.empty()) << report.table();
  EXPECT_FALSE(report.unexpected.empty());  // the decoder, mask token, increase_dim
  const auto theirs = pretrained->MAE_encoder->named_parameters();
  int64_t compared = 0;
  for (const auto& p : model->named_parameters()) {
    const auto* t = theirs.find(p.key());
    if (!t) continue;  // label_conv, propagation, head
    EXPECT_TRUE(torch::equal(p.value(), *t)) << p.key();
    ++compared;
  }
  EXPECT_GT(compared, 3 * 12);  // encoder, pos_embed, 3 blocks, norm
}

TEST(FeaturePropagation, InterpolationWeightsByHand) {
  // Known points on the x axis at 0, 1, 3, 10; a target at 0.5 has squared distances 0.25, 0.25,
  // 6.25 to its three nearest: weights 4, 4, 0.16 normalised. A target on a known point takes it.
  auto known = torch::tensor({0.f, 0.f, 0.f, 1.f, 0.f, 0.f, 3.f, 0.f, 0.f, 10.f, 0.f, 0.f}).view({1, 4, 3});
  auto targets = torch::tensor({0.5f, 0.f, 0.f, 3.f, 0.f, 0.f}).view({1, 2, 3});
  auto m = ewa::models::FeaturePropagationImpl::interpolation(targets, known);
  const double s = 4 + 4 + 0.16;
  EXPECT_NEAR(m[0][0][0].item<double>(), 4 / s, 1e-5);
  EXPECT_NEAR(m[0][0][1].item<double>(), 4 / s, 1e-5);
  EXPECT_NEAR(m[0][0][2].item<double>(), 0.16 / s, 1e-5);
  EXPECT_EQ(m[0][0][3].item<double>(), 0.0);
  EXPECT_NEAR(m[0][1][2].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(m.sum(2).sub(1).abs().max().item<double>(), 0.0, 1e-6);
}

TEST(PartMetrics, HandComputedIoUsWithAbsentPartsAndRestriction) {
  // Two categories: A = parts {0, 1, 2}, B = parts {3, 4}.
  const std::vector<int64_t> part_category = {0, 0, 0, 1, 1};
  auto pc = torch::tensor(part_category, torch::kLong);
  // Shape 1 (A): gt 0 0 1 1, logits favour part 3 (B) at point 0: restricted, it becomes its best
  // A part.
  auto logits = torch::zeros({2, 4, 5});
  logits[0][0] = torch::tensor({1.f, 0.f, 0.f, 9.f, 0.f});
  logits[0][1] = torch::tensor({0.f, 2.f, 0.f, 0.f, 0.f});  // wrong: 1 for gt 0
  logits[0][2] = torch::tensor({0.f, 2.f, 0.f, 0.f, 0.f});
  logits[0][3] = torch::tensor({0.f, 2.f, 0.f, 0.f, 0.f});
  // Shape 2 (B): gt 3 3 3 3, predicted 3 3 3 4.
  for (int i = 0; i < 3; ++i) logits[1][i] = torch::tensor({0.f, 0.f, 0.f, 1.f, 0.f});
  logits[1][3] = torch::tensor({5.f, 0.f, 0.f, 0.f, 1.f});  // part 0 is not B's: restricted to 4
  auto labels = torch::tensor({0, 0, 1, 1, 3, 3, 3, 3}, torch::kLong).view({2, 4});
  auto category = ewa::eval::shape_categories(labels, pc);
  EXPECT_EQ(category[0].item<int64_t>(), 0);
  EXPECT_EQ(category[1].item<int64_t>(), 1);
  auto pred = ewa::eval::restricted_prediction(logits, category, pc);
  EXPECT_TRUE(torch::equal(pred, torch::tensor({0, 1, 1, 1, 3, 3, 3, 4}, torch::kLong).view({2, 4})));
  ewa::eval::PartMetrics m(part_category, {"A", "B"});
  m.add(pred, labels);
  // Shape 1: part 0 IoU 1/2, part 1 IoU 2/3, part 2 absent from both: 1 -> (1/2 + 2/3 + 1) / 3.
  const double s1 = (0.5 + 2.0 / 3.0 + 1.0) / 3.0;
  // Shape 2: part 3 IoU 3/4, part 4 IoU 0/1 -> 3/8.
  const double s2 = 0.375;
  EXPECT_NEAR(m.instance_miou(), (s1 + s2) / 2, 1e-12);
  EXPECT_NEAR(m.class_miou(), (s1 + s2) / 2, 1e-12);
  EXPECT_NEAR(m.accuracy(), 6.0 / 8.0, 1e-12);
  // A second A shape, perfect: instance mean over 3 shapes, class mean over 2 categories.
  m.add(torch::tensor({0, 1, 2, 2}, torch::kLong).view({1, 4}), torch::tensor({0, 1, 2, 2}, torch::kLong).view({1, 4}));
  EXPECT_NEAR(m.instance_miou(), (s1 + s2 + 1.0) / 3, 1e-12);
  EXPECT_NEAR(m.class_miou(), ((s1 + 1.0) / 2 + s2) / 2, 1e-12);
  EXPECT_EQ(m.per_category()["A"]["shapes"].get<int64_t>(), 2);
}

// ShapeNetPart readers.

std::string write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
  return path;
}

ewa::DataConfig part_data(const std::string& dataset, const std::string& root, const json& extra = json::object()) {
  json j = {{"model", {{"name", "point_seg"}}}, {"data", {{"dataset", dataset}, {"root", root}, {"num_points", 64}}}};
  j["data"].merge_patch(extra);
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test").data;
}

TEST(ShapeNetPart, SyntheticSetInTheReleasedLayoutReadsBack) {
  TempDir dir;
  ewa::datasets::SynthPartOptions o;
  o.train_per_category = 2;
  o.val_per_category = 1;
  o.test_per_category = 1;
  // Counts per category scaled by 1.5, 1, 0.5, 0.75, 0.5, 1.75 (rounded, at least 1): 13 + 8 + 8.
  EXPECT_EQ(ewa::datasets::write_synthetic_parts(dir.path(), o), 29);
  for (const char* f : {"synsetoffset2category.txt", "train_test_split/shuffled_train_file_list.json",
                        "train_test_split/shuffled_val_file_list.json", "train_test_split/shuffled_test_file_list.json"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  auto splits = ewa::datasets::load_part_splits(part_data("shapenetpart", dir.path()));
  EXPECT_EQ(splits.train.size(), 21);  // train + val
  EXPECT_EQ(splits.test.size(), 8);
  // Normalised into the unit sphere, every label a part of its shape's category.
  for (int64_t i = 0; i < splits.train.size(); ++i) {
    const int64_t a = splits.train.offsets[i].item<int64_t>(), b = splits.train.offsets[i + 1].item<int64_t>();
    EXPECT_GE(b - a, 2048);
    auto xyz = splits.train.points.slice(0, a, b).narrow(1, 0, 3);
    EXPECT_NEAR(xyz.norm(2, 1).max().item<double>(), 1.0, 1e-5);
    EXPECT_NEAR(xyz.mean(0).abs().max().item<double>(), 0.0, 1e-5);
  }
  // The task: 50 parts of 16 categories, batches [B, N] of labels that belong to the points drawn.
  auto task = ewa::datasets::load_part_task(part_data("shapenetpart", dir.path(), {{"batch_size", 4}}), 0);
  EXPECT_EQ(task.num_classes, 50);
  EXPECT_EQ(task.category_names.size(), 16u);
  EXPECT_EQ(task.class_names[1], "Airplane wing");
  EXPECT_EQ(task.class_names[4], "Bag 1");
  task.train->start_epoch(0);
  auto [x, y] = task.train->batch(0, ewa::data::View::Plain);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 64, 3}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{4, 64}));
  auto cats = torch::tensor(task.part_category, torch::kLong).index_select(0, y.view(-1)).view({4, 64});
  EXPECT_TRUE(torch::equal(cats, cats.select(1, 0).unsqueeze(1).expand_as(cats)));
}

TEST(ShapeNetPart, V0LayoutAndItsPerCategoryLabels) {
  TempDir dir;
  const std::string root = dir.path();
  write(root + "/synsetoffset2category.txt", "Mug\t03797390\nTable\t04379243\n");
  write(root + "/train_test_split/shuffled_train_file_list.json", "[\"shape_data/03797390/m1\", \"shape_data/04379243/t1\"]");
  write(root + "/train_test_split/shuffled_val_file_list.json", "[]");
  write(root + "/train_test_split/shuffled_test_file_list.json", "[\"shape_data/04379243/t2\"]");
  std::string pts, seg_mug, seg_table;
  for (int i = 0; i < 8; ++i) {
    pts += std::to_string(i) + " " + std::to_string(i % 3) + " 0.5\n";
    seg_mug += std::to_string(1 + i % 2) + "\n";
    seg_table += std::to_string(1 + i % 3) + "\n";
  }
  write(root + "/03797390/points/m1.pts", pts);
  write(root + "/03797390/points_label/m1.seg", seg_mug);
  write(root + "/04379243/points/t1.pts", pts);
  write(root + "/04379243/points_label/t1.seg", seg_table);
  write(root + "/04379243/points/t2.pts", pts);
  write(root + "/04379243/points_label/t2.seg", seg_table);
  auto splits = ewa::datasets::load_part_splits(part_data("shapenetpart_v0", root));
  ASSERT_EQ(splits.train.size(), 2);
  // Mug's parts are 36, 37; Table's 47, 48, 49.
  EXPECT_EQ(splits.train.labels[0].item<int64_t>(), 36);
  EXPECT_EQ(splits.train.labels[1].item<int64_t>(), 37);
  EXPECT_EQ(splits.train.labels[8 + 2].item<int64_t>(), 49);
  // A label beyond the category's parts, a ragged file, a missing file: one line naming it.
  write(root + "/03797390/points_label/m1.seg", "1\n2\n3\n1\n1\n1\n1\n1\n");
  EXPECT_NE(error_of([&] { ewa::datasets::load_part_splits(part_data("shapenetpart_v0", root)); })
                .find("m1.seg: part labels must lie in 1..2 for Mug"),
            std::string::npos);
  write(root + "/03797390/points_label/m1.seg", seg_mug);
  write(root + "/03797390/points/m1.pts", "0 0 0\n1 1\n");
  EXPECT_NE(error_of([&] { ewa::datasets::load_part_splits(part_data("shapenetpart_v0", root)); })
                .find("m1.pts:2: expected 3 values like line 1, got 2"),
            std::string::npos);
  fs::remove(root + "/03797390/points/m1.pts");
  EXPECT_NE(error_of([&] { ewa::datasets::load_part_splits(part_data("shapenetpart_v0", root)); })
                .find("m1.pts: named by the split list but missing"),
            std::string::npos);
}

TEST(ShapeNetPart, NormalLayoutErrorsNameTheFile) {
  TempDir dir;
  const std::string root = dir.path();
  write(root + "/synsetoffset2category.txt", "Laptop\t03642806\n");
  write(root + "/train_test_split/shuffled_train_file_list.json", "[\"shape_data/03642806/a\"]");
  write(root + "/train_test_split/shuffled_val_file_list.json", "[]");
  write(root + "/train_test_split/shuffled_test_file_list.json", "[\"shape_data/03642806/a\"]");
  write(root + "/03642806/a.txt", "0 0 0 0 0 1 28\n1 0 0 0 0 1 29\n0 1 0 0 0 1 12\n");
  EXPECT_NE(error_of([&] { ewa::datasets::load_part_splits(part_data("shapenetpart", root)); })
                .find("a.txt: part label 12 is outside the parts of Laptop (28..29)"),
            std::string::npos);
  write(root + "/03642806/a.txt", "0 0 0 0 0 1 28\n1 0 0 0 0 1\n");
  EXPECT_NE(error_of([&] { ewa::datasets::load_part_splits(part_data("shapenetpart", root)); }).find("a.txt:2: expected 7 values"),
            std::string::npos);
  write(root + "/synsetoffset2category.txt", "Sofa\t04256520\n");
  EXPECT_NE(error_of([&] { ewa::datasets::load_part_splits(part_data("shapenetpart", root)); })
                .find("synsetoffset2category.txt:1: 'Sofa' is not one of the 16 ShapeNetPart categories"),
            std::string::npos);
}

TEST(ShapeNetPart, Hdf5LayoutWithPartIds) {
  if (!ewa::datasets::built_with_hdf5()) GTEST_SKIP() << "built without HDF5";
  TempDir dir;
  auto points = torch::rand({3, 16, 3});
  auto labels = torch::tensor({0, 15, 0}, torch::kLong);
  auto pid = torch::zeros({3, 16}, torch::kLong);
  pid[1].fill_(48);
  pid[0].slice(0, 8).fill_(3);
  ewa::datasets::write_h5_clouds(dir / "ply_data_train0.h5", points, labels, pid);
  ewa::datasets::write_h5_clouds(dir / "ply_data_test0.h5", points, labels, pid);
  write(dir / "train_hdf5_file_list.txt", "ply_data_train0.h5\n");
  write(dir / "val_hdf5_file_list.txt", "");
  write(dir / "test_hdf5_file_list.txt", "ply_data_test0.h5\n");
  auto splits = ewa::datasets::load_part_splits(part_data("shapenetpart_h5", dir.path()));
  EXPECT_EQ(splits.train.size(), 3);
  EXPECT_TRUE(torch::equal(splits.test.labels.view({3, 16}), pid));
  pid[2][5] = 40;  // an Airplane with a Pistol part
  ewa::datasets::write_h5_clouds(dir / "ply_data_test0.h5", points, labels, pid);
  EXPECT_NE(error_of([&] { ewa::datasets::load_part_splits(part_data("shapenetpart_h5", dir.path())); })
                .find("ply_data_test0.h5: cloud 2: part label 40 is outside the parts of Airplane (0..3)"),
            std::string::npos);
}

}  // namespace
