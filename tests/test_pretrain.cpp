// Point-MAE pretraining (masking, model, loss, the pretraining run) and fine-tuning from its
// checkpoints (features reproduced, EWA experts equal to the pretrained FFN, layer decay,
// linear probing); the .npy reader and the ShapeNet-55 layout.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "datasets/registry.h"
#include "config/config.h"
#include "datasets/point_datasets.h"
#include "io/point_io.h"
#include "datasets/synthetic.h"
#include "kernels/chamfer/chamfer.h"
#include "models/point_mae.h"
#include "models/point_transformer.h"
#include "models/registry.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "eval/mae_views.h"
#include "tasks/run_task.h"
#include "tasks/classify.h"

namespace {
using nlohmann::json;
using ewa::testing::TempDir;
namespace fs = std::filesystem;

ewa::Config mae_config(const json& extra = json::object()) {
  json j = {{"name", "pre"},
            {"model", {{"name", "point_mae"}, {"embed_dim", 32}, {"depth", 2}, {"num_heads", 2}, {"num_groups", 16},
                       {"group_size", 8}, {"qkv_bias", false}, {"drop_path_rate", 0.0}}},
            {"moe", {{"kind", "dense"}}},
            {"pretrain", {{"decoder_depth", 1}, {"decoder_num_heads", 2}, {"reconstructions", 3}}},
            {"data", {{"dataset", ewa::testing::synth_dataset()}, {"root", "unused"}, {"num_points", 128}, {"batch_size", 16},
                      {"eval_batch_size", 20}}},
            {"optim", {{"lr", 2e-3}, {"warmup_epochs", 0.5}, {"label_smoothing", 0.0}}},
            {"train", {{"epochs", 1}, {"log_every", 5}, {"device", "cpu"}}}};
  j.merge_patch(extra);
  auto r = ewa::resolve_config(j, "test");
  r["model"]["in_chans"] = 3;
  return ewa::parse_config(r, "test");
}

TEST(Mask, RandomMasksExactlyTheRatioPerCloudAndDiffersBetweenClouds) {
  torch::manual_seed(3);
  auto centers = torch::randn({6, 64, 3});
  auto mask = ewa::models::make_group_mask(centers, 0.6, "rand");
  ASSERT_EQ(mask.scalar_type(), torch::kBool);
  for (int64_t b = 0; b < 6; ++b) EXPECT_EQ(mask[b].sum().item<int64_t>(), 38);  // int(0.6 * 64)
  EXPECT_FALSE(torch::equal(mask[0], mask[1]));
  // Over many draws every group is masked about 60% of the time (uniform).
  auto many = ewa::models::make_group_mask(torch::randn({2000, 10, 3}), 0.5, "rand").to(torch::kFloat).mean(0);
  EXPECT_LT((many - 0.5).abs().max().item<float>(), 0.06);
  EXPECT_EQ(ewa::models::make_group_mask(centers, 0.0, "rand").sum().item<int64_t>(), 0);
}

TEST(Mask, BlockMasksTheGroupsNearestToOneCenter) {
  torch::manual_seed(4);
  auto centers = torch::randn({5, 40, 3});
  auto mask = ewa::models::make_group_mask(centers, 0.25, "block");
  for (int64_t b = 0; b < 5; ++b) {
    ASSERT_EQ(mask[b].sum().item<int64_t>(), 10);
    // Some masked center c has every masked center at least as near as every visible one.
    bool found = false;
    for (int64_t c = 0; c < 40 && !found; ++c) {
      if (!mask[b][c].item<bool>()) continue;
      auto d = (centers[b] - centers[b][c]).norm(2, 1);
      found = d.masked_select(mask[b]).max().item<float>() <= d.masked_select(~mask[b]).min().item<float>();
    }
    EXPECT_TRUE(found) << "cloud " << b;
  }
}

TEST(PointMae, OfficialNamesShapesAndTheChamferLossOfTheMaskedGroups) {
  auto cfg = mae_config();
  torch::manual_seed(0);
  ewa::models::PointMae model(cfg);
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  for (const char* k : {"MAE_encoder.encoder.first_conv.0.weight", "MAE_encoder.encoder.second_conv.3.bias",
                        "MAE_encoder.pos_embed.2.weight", "MAE_encoder.blocks.blocks.1.attn.qkv.weight",
                        "MAE_encoder.blocks.blocks.0.mlp.fc2.weight", "MAE_encoder.norm.weight", "mask_token",
                        "decoder_pos_embed.0.weight", "MAE_decoder.blocks.0.attn.proj.bias", "MAE_decoder.norm.bias",
                        "increase_dim.0.weight"})
    EXPECT_TRUE(names.count(k)) << k;
  EXPECT_EQ(model->named_parameters()["increase_dim.0.weight"].sizes(), (std::vector<int64_t>{24, 32}));
  // It is not a classifier: building one from its config says what to do instead.
  auto as_classifier = cfg.with({{"model.num_classes", 8}});
  EXPECT_NE(ewa::testing::error_of([&] { ewa::models::build_model(as_classifier); }).find("ewa finetune --init"),
            std::string::npos);

  auto points = torch::randn({4, 128, 3});
  auto out = model->forward(points);
  const int64_t M = 9;  // int(0.6 * 16)
  EXPECT_EQ(out.predicted.sizes(), (std::vector<int64_t>{4, M, 8, 3}));
  EXPECT_EQ(out.masked_index.sizes(), (std::vector<int64_t>{4, M}));
  for (int64_t b = 0; b < 4; ++b) {
    // masked_index lists exactly the masked groups, ascending; visible and masked are disjoint
    // and cover every group.
    EXPECT_TRUE(torch::equal(out.masked_index[b], out.mask[b].nonzero().squeeze(1)));
    auto visible = (~out.mask[b]).nonzero().squeeze(1);
    EXPECT_EQ(visible.size(0) + M, 16);
    EXPECT_TRUE(torch::equal(std::get<0>(torch::cat({visible, out.masked_index[b]}).sort()), torch::arange(16)));
  }
  // The loss is the Chamfer-L2 between predictions and the true masked groups (brute force here).
  auto truth = out.neighborhoods.gather(1, out.masked_index.view({4, M, 1, 1}).expand({4, M, 8, 3})).reshape({4 * M, 8, 3});
  auto pred = out.predicted.reshape({4 * M, 8, 3});
  auto d = (pred.unsqueeze(2) - truth.unsqueeze(1)).pow(2).sum(-1);
  auto ref = std::get<0>(d.min(2)).mean() + std::get<0>(d.min(1)).mean();
  EXPECT_NEAR(out.loss.item<double>(), ref.item<double>(), 1e-5);
  // Gradients reach the encoder, the decoder, the mask token and the head.
  out.loss.backward();
  for (const char* k : {"MAE_encoder.encoder.first_conv.0.weight", "MAE_encoder.blocks.blocks.0.mlp.fc1.weight", "mask_token",
                        "MAE_decoder.blocks.0.mlp.fc1.weight", "increase_dim.0.weight", "decoder_pos_embed.0.weight"})
    EXPECT_GT(model->named_parameters()[k].grad().abs().sum().item<double>(), 0) << k;
  // A given mask is used as it is; a mask with nothing visible is refused.
  model->eval();
  auto mask = out.mask.clone();
  torch::NoGradGuard guard;
  const auto shifted = mask.roll(1, 1);  // another mask, still M groups per cloud
  ASSERT_FALSE(torch::equal(shifted, mask));
  const auto given = model->forward(points, shifted);
  EXPECT_TRUE(torch::equal(given.mask, shifted));
  for (int64_t b = 0; b < 4; ++b) EXPECT_TRUE(torch::equal(given.masked_index[b], shifted[b].nonzero().squeeze(1)));
  // The prediction follows the mask: other groups hidden, other groups predicted.
  EXPECT_FALSE(torch::allclose(given.predicted, model->forward(points, mask).predicted));
  EXPECT_NE(ewa::testing::error_of([&] { model->forward(points, torch::ones({4, 16}, torch::kBool)); }).find("mask_ratio"),
            std::string::npos);
}

// One shared pretraining run on a tiny synthetic set (a few seconds).
class PretrainRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ewa::datasets::SynthOptions o;
    o.train_per_class = 8;
    o.test_per_class = 3;
    o.points = 256;
    ewa::datasets::write_synthetic_dataset(*dir_ / "synth", o);
    cfg_ = new ewa::Config(mae_config({{"data", {{"root", *dir_ / "synth"}}},
                                       {"train", {{"epochs", 4}, {"runs_dir", *dir_ / "runs"}}},
                                       {"moe", {{"kind", "rup"}, {"blocks", json::array({1})}, {"num_experts", 2}}}}));
    lines_ = new std::vector<std::string>();
    result_ = ewa::tasks::run_task(*cfg_, ewa::datasets::load_task, {}, [](const std::string& l) { lines_->push_back(l); });
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete cfg_;
    delete lines_;
  }
  static TempDir* dir_;
  static ewa::Config* cfg_;
  static std::vector<std::string>* lines_;
  static ewa::tasks::RunResult result_;
};
TempDir* PretrainRun::dir_ = nullptr;
ewa::Config* PretrainRun::cfg_ = nullptr;
std::vector<std::string>* PretrainRun::lines_ = nullptr;
ewa::tasks::RunResult PretrainRun::result_;

TEST_F(PretrainRun, LossFallsAndTheRunDirectoryHasCheckpointAndReconstructions) {
  const std::string run = *dir_ / "runs/pre";
  for (const char* f : {"config.json", "log.jsonl", "metrics.json", "last.pt", "reconstructions/0_predicted.ply"})
    EXPECT_TRUE(fs::exists(run + "/" + f)) << f;
  std::vector<double> test_losses;
  std::ifstream log(run + "/log.jsonl");
  for (std::string line; std::getline(log, line);) {
    auto j = json::parse(line);
    if (j["type"] == "epoch") test_losses.push_back(j["test"]["chamfer"].get<double>());
  }
  ASSERT_EQ(test_losses.size(), 4u);
  // Against the same model untrained (same seed, same fixed masks): the loss fell clearly.
  auto task = ewa::datasets::load_task(*cfg_);
  torch::manual_seed(static_cast<uint64_t>(cfg_->train.seed));
  ewa::models::PointMae untrained(*cfg_);
  EXPECT_LT(test_losses.back(), 0.85 * ewa::eval::reconstruction_loss(*untrained, *task.test, torch::kCPU));
  EXPECT_DOUBLE_EQ(result_.test.json["chamfer"].get<double>(), test_losses.back());
  EXPECT_EQ(result_.steps, 4 * 4);  // 64 clouds / 16 per batch
  // Reconstructions: predicted = M groups of K points, visible = the rest, combined both.
  const auto pred = ewa::io::read_point_file(run + "/reconstructions/0_predicted.ply", 0, 0);
  const auto vis = ewa::io::read_point_file(run + "/reconstructions/0_visible.ply", 0, 0);
  const auto comb = ewa::io::read_point_file(run + "/reconstructions/2_combined.ply", 0, 0);
  EXPECT_EQ(pred.size(0), 9 * 8);
  EXPECT_EQ(vis.size(0), 7 * 8);
  EXPECT_EQ(comb.size(0), 16 * 8);
  EXPECT_FALSE(fs::exists(run + "/reconstructions/3_input.ply"));
  // Evaluation uses fixed masks: the loss of the checkpoint is reproducible.
  auto ckpt = ewa::train::read_checkpoint(run + "/last.pt");
  ewa::models::PointMae model(*cfg_);
  ewa::train::load_model_state(*model, ckpt, "last.pt");
  EXPECT_NEAR(ewa::eval::reconstruction_loss(*model, *task.test, torch::kCPU), result_.test.json["chamfer"].get<double>(), 1e-6);
}

TEST_F(PretrainRun, FineTuningReproducesThePretrainedEncoderAndStartsExpertsAsItsFfn) {
  const std::string ckpt_path = *dir_ / "runs/pre/last.pt";
  auto ckpt = ewa::train::read_checkpoint(ckpt_path);
  ewa::models::PointMae mae(*cfg_);
  ewa::train::load_model_state(*mae, ckpt, ckpt_path);
  json j = cfg_->json;
  j["model"]["name"] = "point_transformer";
  j["model"]["num_classes"] = 8;
  j["moe"].merge_patch({{"kind", "rup"}, {"blocks", json::array({0, 1})}, {"num_experts", 3}});
  j["finetune"]["init"] = ckpt_path;
  auto cfg = ewa::parse_config(j, "test");
  auto model = ewa::models::build_model(cfg);
  auto report = ewa::tasks::init_from_pretrained(*model, cfg);
  // Block 0 was dense in pretraining: its FFN is copied into 3 experts; block 1 had 2 experts:
  // their mean starts each of the 3. The head is new; the decoder is not used.
  EXPECT_EQ(report.expanded.size(), 8u) << report.table();
  EXPECT_TRUE(report.missing.empty()) << report.table();
  EXPECT_TRUE(report.mismatched.empty()) << report.table();
  for (const auto& k : report.fresh)
    EXPECT_TRUE(k.rfind("cls_head_finetune.", 0) == 0 || k == "cls_token" || k == "cls_pos") << k;
  EXPECT_NE(report.table().find("MAE_decoder.blocks.*"), std::string::npos) << report.table();
  auto mp = mae->named_parameters();
  auto cp = model->named_parameters();
  for (int64_t e = 0; e < 3; ++e) {
    EXPECT_TRUE(torch::equal(cp["blocks.blocks.0.mlp.w1"][e], mp["MAE_encoder.blocks.blocks.0.mlp.fc1.weight"]));
    EXPECT_TRUE(torch::equal(cp["blocks.blocks.0.mlp.b2"][e], mp["MAE_encoder.blocks.blocks.0.mlp.fc2.bias"]));
    EXPECT_TRUE(torch::allclose(cp["blocks.blocks.1.mlp.w2"][e], mp["MAE_encoder.blocks.blocks.1.mlp.w2"].mean(0)));
  }
  // The fine-tuning model's backbone computes the pretrained encoder's features.
  torch::NoGradGuard guard;
  model->eval();
  mae->eval();
  auto* pt = dynamic_cast<ewa::models::PointTransformerImpl*>(model.get());
  ASSERT_NE(pt, nullptr);
  auto groups = ewa::models::group_point_cloud(torch::randn({3, 128, 3}), 16, 8);
  auto tokens = pt->encoder(groups.neighborhoods);
  EXPECT_TRUE(torch::allclose(tokens, mae->MAE_encoder->encoder(groups.neighborhoods), 1e-5, 1e-6));
  auto pos = pt->pos_embed->forward(groups.centers);
  EXPECT_TRUE(torch::allclose(pos, mae->MAE_encoder->pos_embed->forward(groups.centers), 1e-5, 1e-6));
  EXPECT_LT((pt->norm(pt->blocks(tokens, pos)) - mae->MAE_encoder->forward(tokens, groups.centers)).abs().max().item<double>(),
            1e-4);
}

TEST_F(PretrainRun, LinearProbingTrainsOnlyTheHeadAndLayerDecayScalesBlocks) {
  const std::string ckpt_path = *dir_ / "runs/pre/last.pt";
  json j = cfg_->json;
  j["name"] = "probe";
  j["model"]["name"] = "point_transformer";
  j["moe"]["kind"] = "dense";
  j["finetune"].merge_patch({{"init", ckpt_path}, {"freeze_encoder", true}});
  j["train"]["epochs"] = 1;
  auto cfg = ewa::parse_config(j, "test");
  std::vector<std::string> lines;
  ewa::tasks::run_task(cfg, ewa::datasets::load_task, {}, [&](const std::string& l) { lines.push_back(l); });
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  EXPECT_NE(all.find("init       " + ckpt_path), std::string::npos) << all;
  EXPECT_NE(all.find("linear probe"), std::string::npos) << all;
  auto after = ewa::train::read_checkpoint(*dir_ / "runs/probe/last.pt").model;
  auto before = ewa::train::read_checkpoint(ckpt_path).model;
  for (const char* k : {"encoder.first_conv.0.weight", "blocks.blocks.0.attn.qkv.weight", "norm.weight",
                        "encoder.first_conv.1.running_mean"})
    EXPECT_TRUE(torch::equal(after[k], before[std::string("MAE_encoder.") + k])) << k;
  // The head moved from its initialisation (same seed, same init as a fresh model).
  torch::manual_seed(static_cast<uint64_t>(cfg.train.seed));
  auto fresh_cfg = cfg.with({{"model.in_chans", 3}, {"model.num_classes", 8}});
  auto fresh = ewa::models::build_model(fresh_cfg);
  EXPECT_FALSE(torch::equal(after["cls_head_finetune.8.weight"], fresh->named_parameters()["cls_head_finetune.8.weight"]));

  // Layer decay: block i trains at decay^(L - i - 1) of the lr, the embedding at decay^L, head at 1.
  auto model = ewa::models::build_model(fresh_cfg);
  const double decay = 0.5;
  auto groups = ewa::train::layer_decay_groups(*model, decay, model->num_layers(),
                                               [&](const std::string& n) { return model->layer_of(n); });
  auto scale_of = [&](const std::string& name) {
    const torch::Tensor t = model->named_parameters()[name];  // a copy: the dict is a temporary
    for (const auto& g : groups)
      for (const auto& p : g.params)
        if (p.is_same(t)) return g.lr_scale;
    return -1.0;
  };
  const int64_t L = model->num_layers();  // depth + 1 = 3
  EXPECT_DOUBLE_EQ(scale_of("encoder.first_conv.0.weight"), std::pow(decay, L));
  EXPECT_DOUBLE_EQ(scale_of("cls_pos"), std::pow(decay, L));
  EXPECT_DOUBLE_EQ(scale_of("blocks.blocks.0.mlp.fc1.weight"), std::pow(decay, L - 1));
  EXPECT_DOUBLE_EQ(scale_of("blocks.blocks.1.attn.qkv.weight"), std::pow(decay, L - 2));
  EXPECT_DOUBLE_EQ(scale_of("norm.weight"), 1.0);
  EXPECT_DOUBLE_EQ(scale_of("cls_head_finetune.0.weight"), 1.0);
  size_t total = 0;
  for (const auto& g : groups) total += g.params.size();
  EXPECT_EQ(total, model->parameters().size());
}

TEST(Pretrain, ResumeReproducesAnUninterruptedRun) {
  TempDir dir;
  ewa::datasets::SynthOptions o;
  o.train_per_class = 4;
  o.test_per_class = 2;
  o.points = 160;
  ewa::datasets::write_synthetic_dataset(dir / "synth", o);
  auto cfg_for = [&](const std::string& runs, int64_t epochs) {
    return mae_config({{"data", {{"root", dir / "synth"}}}, {"pretrain", {{"reconstructions", 0}}},
                       {"train", {{"epochs", epochs}, {"runs_dir", dir / runs}}}});
  };
  auto quiet = [](const std::string&) {};
  ewa::tasks::run_task(cfg_for("full", 2), ewa::datasets::load_task, {}, quiet);
  ewa::tasks::run_task(cfg_for("half", 1), ewa::datasets::load_task, {}, quiet);
  ewa::tasks::run_task(cfg_for("half", 2), ewa::datasets::load_task, {dir / "half/pre/last.pt"}, quiet);
  auto a = ewa::train::read_checkpoint(dir / "full/pre/last.pt").model;
  auto b = ewa::train::read_checkpoint(dir / "half/pre/last.pt").model;
  ASSERT_EQ(a.size(), b.size());
  for (const auto& item : a) EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();
  // `ewa pretrain --reconstruct` on the checkpoint writes the files and the loss line.
  auto r = ewa::testing::run_command(std::string(EWA_BINARY) + " pretrain --reconstruct " + (dir / "full/pre/last.pt") +
                                     " -n 2 -o " + (dir / "rec"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote 2 reconstructions"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "rec/1_combined.ply"));
}

TEST(VitInit, TimmNamedWeightsInitialiseAViTWithEwaExpertsAndResampledPositions) {
  TempDir dir;
  // A "timm" ViT: 32 px images in 4 px patches (an 8 x 8 grid), 10 classes, dense.
  json src_j = {{"model", {{"img_size", 32}, {"in_chans", 3}, {"num_classes", 10}, {"patch_size", 4}, {"embed_dim", 24},
                           {"depth", 2}, {"num_heads", 2}}},
                {"moe", {{"kind", "dense"}}}};
  auto src_cfg = ewa::parse_config(ewa::resolve_config(src_j, "t"), "t");
  torch::manual_seed(1);
  auto src = ewa::models::build_model(src_cfg);
  {
    torch::NoGradGuard guard;
    auto pos = src->named_parameters()["pos_embed"];
    pos.fill_(0.7f);
    pos.narrow(1, 0, 1).fill_(0.1f);
  }
  const auto sd = ewa::train::state_dict(*src);
  ewa::io::write_safetensors(dir / "vit.safetensors", sd);
  ewa::io::write_torch_state_dict(dir / "vit.pth", sd);
  for (const char* file : {"vit.safetensors", "vit.pth"}) {
    // Fine-tune on 16 px images (a 4 x 4 grid), 5 classes, RupMoE with 3 experts in block 1.
    json j = {{"model", {{"img_size", 16}, {"in_chans", 3}, {"num_classes", 5}, {"patch_size", 4}, {"embed_dim", 24},
                         {"depth", 2}, {"num_heads", 2}}},
              {"moe", {{"kind", "rup"}, {"blocks", json::array({1})}, {"num_experts", 3}}},
              {"finetune", {{"init", dir / file}}}};
    auto cfg = ewa::parse_config(ewa::resolve_config(j, "t"), "t");
    auto model = ewa::models::build_model(cfg);
    auto report = ewa::tasks::init_from_pretrained(*model, cfg);
    EXPECT_EQ(report.resampled.size(), 1u) << report.table();
    EXPECT_EQ(report.expanded.size(), 4u) << report.table();
    EXPECT_EQ(report.fresh, (std::vector<std::string>{"head.weight", "head.bias"})) << report.table();
    auto p = model->named_parameters();
    auto pos = p["pos_embed"];
    EXPECT_EQ(pos.sizes(), (std::vector<int64_t>{1, 17, 24}));
    EXPECT_TRUE(torch::allclose(pos.narrow(1, 1, 16), torch::full({1, 16, 24}, 0.7f), 1e-5, 1e-6));  // a constant stays
    EXPECT_TRUE(torch::allclose(pos.narrow(1, 0, 1), torch::full({1, 1, 24}, 0.1f)));
    for (int64_t e = 0; e < 3; ++e) EXPECT_TRUE(torch::equal(p["blocks.1.mlp.w1"][e], sd["blocks.1.mlp.fc1.weight"]));
    EXPECT_TRUE(torch::equal(p["patch_embed.proj.weight"], sd["patch_embed.proj.weight"]));
    EXPECT_TRUE(torch::equal(p["blocks.0.mlp.fc2.bias"], sd["blocks.0.mlp.fc2.bias"]));
  }
  // Another patch size cannot be loaded: one line naming the tensor.
  json k = {{"model", {{"img_size", 16}, {"in_chans", 3}, {"num_classes", 5}, {"patch_size", 8}, {"embed_dim", 24},
                       {"depth", 2}, {"num_heads", 2}}},
            {"moe", {{"kind", "dense"}}},
            {"finetune", {{"init", dir / "vit.safetensors"}}}};
  auto bad = ewa::parse_config(ewa::resolve_config(k, "t"), "t");
  auto m2 = ewa::models::build_model(bad);
  auto msg = ewa::testing::error_of([&] { ewa::tasks::init_from_pretrained(*m2, bad); });
  EXPECT_NE(msg.find("patch_embed.proj.weight: file [24, 3, 4, 4], model [24, 3, 8, 8]"), std::string::npos) << msg;
}

// .npy bytes by hand: header dict padded to 64, then the data.
std::string npy_bytes(const std::string& descr, bool fortran, const std::string& shape, const std::string& data,
                      int version = 1) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape + ", }";
  const size_t pre = version == 1 ? 10 : 12;
  while ((pre + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string s = std::string("\x93NUMPY", 6) + char(version) + char(0);
  const size_t n = header.size();
  s += char(n & 0xff);
  s += char((n >> 8) & 0xff);
  if (version > 1) s += std::string(2, '\0');
  return s + header + data;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(Npy, ReadsFloat32And64InCAndFortranOrderAndBothByteOrders) {
  TempDir dir;
  auto expect = torch::tensor({0.f, 1.f, 2.f, 3.f, 4.f, 5.f}).view({2, 3});
  ewa::testing::write_file(dir / "c.npy", npy_bytes("<f4", false, "(2, 3)", raw(std::vector<float>{0, 1, 2, 3, 4, 5})));
  EXPECT_TRUE(torch::equal(ewa::io::read_npy(dir / "c.npy"), expect));
  // Fortran order: column-major bytes of the same array.
  ewa::testing::write_file(dir / "f.npy", npy_bytes("<f8", true, "(2, 3)", raw(std::vector<double>{0, 3, 1, 4, 2, 5})));
  EXPECT_TRUE(torch::equal(ewa::io::read_npy(dir / "f.npy"), expect));
  // Big-endian float32, format version 2.
  std::string be;
  for (float v : {0.f, 1.f, 2.f, 3.f, 4.f, 5.f}) {
    std::string b(reinterpret_cast<const char*>(&v), 4);
    be += std::string(b.rbegin(), b.rend());
  }
  ewa::testing::write_file(dir / "b.npy", npy_bytes(">f4", false, "(2, 3)", be, 2));
  EXPECT_TRUE(torch::equal(ewa::io::read_npy(dir / "b.npy"), expect));
  // 1-D and a round trip through write_npy.
  ewa::testing::write_file(dir / "v.npy", npy_bytes("<f4", false, "(3,)", raw(std::vector<float>{7, 8, 9})));
  EXPECT_EQ(ewa::io::read_npy(dir / "v.npy").sizes(), (std::vector<int64_t>{3}));
  auto r = torch::randn({5, 3});
  ewa::io::write_npy(dir / "r.npy", r);
  EXPECT_TRUE(torch::equal(ewa::io::read_npy(dir / "r.npy"), r));
  EXPECT_TRUE(torch::equal(ewa::io::read_point_file(dir / "r.npy", 0, 0), r));
}

TEST(Npy, ErrorsNameTheFileAndTheProblem) {
  TempDir dir;
  using ewa::testing::error_of;
  ewa::testing::write_file(dir / "i.npy", npy_bytes("<i8", false, "(2,)", raw(std::vector<int64_t>{1, 2})));
  EXPECT_NE(error_of([&] { ewa::io::read_npy(dir / "i.npy"); }).find("unsupported dtype '<i8'"), std::string::npos);
  ewa::testing::write_file(dir / "t.npy", npy_bytes("<f4", false, "(4, 3)", raw(std::vector<float>{1, 2, 3})));
  auto msg = error_of([&] { ewa::io::read_npy(dir / "t.npy"); });
  EXPECT_NE(msg.find("t.npy: truncated"), std::string::npos) << msg;
  ewa::testing::write_file(dir / "x.npy", "PK\x03\x04 not numpy");
  EXPECT_NE(error_of([&] { ewa::io::read_npy(dir / "x.npy"); }).find("not a NumPy .npy file"), std::string::npos);
  ewa::testing::write_file(dir / "o.npy", npy_bytes("|O", false, "(2,)", ""));
  EXPECT_NE(error_of([&] { ewa::io::read_npy(dir / "o.npy"); }).find("unsupported dtype"), std::string::npos);
  ewa::testing::write_file(dir / "s.npy", npy_bytes("<f4", false, "(4,)", raw(std::vector<float>{1, 2, 3, 4})));
  EXPECT_NE(error_of([&] { ewa::io::read_point_file(dir / "s.npy", 0, 0); }).find("expected a point array [P, C]"),
            std::string::npos);
}

TEST(ShapeNet55, ReadsPointMaesLayout) {
  TempDir dir;
  fs::create_directories(dir / "ShapeNet-55");
  fs::create_directories(dir / "shapenet_pc");
  std::ofstream train(dir / "ShapeNet-55/train.txt"), test(dir / "ShapeNet-55/test.txt");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const char* synsets[3] = {"02691156", "03001627", "04379243"};
  for (int i = 0; i < 9; ++i) {
    const std::string name = std::string(synsets[i % 3]) + "-model" + std::to_string(i) + ".npy";
    ewa::io::write_npy(dir / ("shapenet_pc/" + name), torch::randn({300, 3}, gen));
    (i < 6 ? train : test) << name << "\n";
  }
  train.close();
  test.close();
  ewa::DataConfig d;
  d.dataset = "shapenet55";
  d.root = dir.path();
  d.num_points = 128;
  auto s = ewa::datasets::load_point_splits(d, 0);
  EXPECT_EQ(s.train.points.sizes(), (std::vector<int64_t>{6, 128, 3}));
  EXPECT_EQ(s.test.size(), 3);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"02691156", "03001627", "04379243"}));
  EXPECT_TRUE(torch::equal(s.train.labels, torch::tensor({0, 1, 2, 0, 1, 2}, torch::kLong)));
  // A listed file that is not there.
  std::ofstream(dir / "ShapeNet-55/test.txt", std::ios::app) << "02691156-gone.npy\n";
  auto msg = ewa::testing::error_of([&] { ewa::datasets::load_point_splits(d, 0); });
  EXPECT_NE(msg.find("02691156-gone.npy"), std::string::npos) << msg;
}

}  // namespace
