// Point-BERT's masked point modelling (stage 2) against a PyTorch model laid out like the official
// Point_BERT module (tests/fixtures/official_point_bert.py: the same weights, inputs and random
// draws; masks, tokens, the three losses, the keys, the momentum update and the queue within 1e-4,
// and our checkpoint loading strictly in the official layout); the block-masking rule's invariants
// on fresh random inputs; the queue's contents after steps.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "io/point_io.h"
#include "io/pretrained.h"
#include "io/state_dict.h"
#include "models/point_bert.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "viz/plot.h"
#include "viz/render.h"

namespace {
using ewa::testing::max_abs_diff;
using ewa::testing::TempDir;
using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kPython = EWA_PYTHON;
const std::string kScript = std::string(EWA_SOURCE_DIR) + "/tests/fixtures/official_point_bert.py";

// The fixture's sizes: D 48, depth 2, 4 heads, 16 groups of 8, encoder 32, 64 tokens of 24,
// decoder 32, cls_dim 40, queue 16, momentum 0.9, T 0.07, all three losses.
ewa::Config bert_config(const json& extra = json::object()) {
  json j = {{"model", {{"name", "point_bert"}, {"variant", "point_bert"}, {"embed_dim", 48}, {"depth", 2}, {"num_heads", 4},
                       {"num_groups", 16}, {"group_size", 8}, {"encoder_dims", 32}, {"qkv_bias", false},
                       {"drop_path_rate", 0.1}, {"in_chans", 3}}},
            {"moe", {{"kind", "dense"}}},
            {"pretrain", {{"tokenizer", "unused"}, {"num_tokens", 64}, {"tokens_dims", 24}, {"decoder_dims", 32},
                          {"cls_dim", 40}, {"queue_size", 16}, {"momentum", 0.9}, {"contrast_temperature", 0.07},
                          {"moco_loss", true}}},
            {"data", {{"dataset", "shapenet55"}, {"root", "unused"}, {"num_points", 256}}}};
  j.merge_patch(extra);
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

ewa::models::DvaeOptions dvae_sizes() {
  ewa::models::DvaeOptions o;
  o.num_groups = 16, o.group_size = 8, o.encoder_dims = 32, o.num_tokens = 64, o.tokens_dims = 24, o.decoder_dims = 32;
  return o;
}

class OfficialPointBert : public ewa::testing::PythonFixtureSuite<OfficialPointBert> {
 public:
  static std::string script() { return kScript; }
  static std::string prefix() { return "point_bert"; }

 protected:
  // The fixture's model, loaded from its point_bert.pth in the official layout.
  static ewa::models::PointBert load() {
    ewa::models::PointBert model(bert_config(), dvae_sizes());
    ewa::io::LoadOptions own;
    own.own_layout = true;
    const auto report = ewa::io::load_pretrained(*model, ewa::io::read_state_dict(file("point_bert.pth")), own, file("point_bert.pth"));
    EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.fresh.empty()) << report.table();
    return model;
  }
  // The fixture's draws: each mask's ratio and centre per cloud (the forward builds the masks on
  // the centres each pass sees), the mixing ratios and choices.
  static ewa::models::BertDraws draws() {
    ewa::models::BertDraws d;
    auto draw_of = [&](const std::string& name) {
      auto rs = npy(name);  // [2, B]: ratio, seed
      return ewa::models::MaskDraw{rs[0].to(torch::kDouble), rs[1].to(torch::kLong)};
    };
    d.mask = draw_of("mask_q");
    d.mix_mask = draw_of("mask_mix");
    d.key_mask = draw_of("mask_k");
    d.mix_ratio = npy("mix_ratio");
    d.mix_keep = npy("mix_keep").gt(0.5);
    return d;
  }
};

TEST_F(OfficialPointBert, OneTrainingForwardGivesTheOfficialMasksTokensLossesKeysAndQueue) {
  auto model = load();
  model->train();  // as upstream: BatchNorm on batch statistics, drop path 0.1 over the blocks
  const auto points = npy("points");
  torch::manual_seed(5);  // drop path's draws, seeded as the fixture seeded them
  auto out = model->forward(points, draws());
  // The masks: the online and key passes on the clouds' centres, the mixed pass on the mixed
  // centres (a mask built on the original centres differs from upstream's here).
  const auto masks = npy("masks").gt(0.5);
  EXPECT_TRUE(torch::equal(out.masks.online, masks[0]));
  EXPECT_TRUE(torch::equal(out.masks.mixed, masks[1]));
  EXPECT_TRUE(torch::equal(out.masks.key, masks[2]));
  const auto& mixed_draw = out.draws.mix_mask;
  EXPECT_FALSE(torch::equal(ewa::models::block_mask(out.centers, mixed_draw.ratio, mixed_draw.seed), masks[1]))
      << "the fixture's mixing must move the masked centres for this test to see the rule";
  EXPECT_TRUE(torch::equal(out.tokens, npy("tokens").to(torch::kLong)));
  const auto losses = npy("losses");
  EXPECT_NEAR(out.token_loss.item<double>(), losses[0].item<double>(), 1e-4);
  EXPECT_NEAR(out.mix_loss.item<double>(), losses[1].item<double>(), 1e-4);
  EXPECT_NEAR(out.moco_loss.item<double>(), losses[2].item<double>(), 1e-4);
  EXPECT_NEAR(out.loss.item<double>(), losses.sum().item<double>(), 3e-4);
  EXPECT_LT(max_abs_diff(out.keys, npy("keys")), 1e-4);
  EXPECT_EQ(out.token_count, masks[0].sum().item<int64_t>() + masks[1].sum().item<int64_t>());
  EXPECT_LT(max_abs_diff(model->transformer_k->lm_head->weight, npy("k_lm_head")), 1e-6);  // k = 0.9 k + 0.1 q
  model->enqueue(out.keys);
  EXPECT_LT(max_abs_diff(model->queue, npy("queue")), 1e-4);
  EXPECT_EQ(model->queue_ptr.item<int64_t>(), npy("queue_ptr").item<int64_t>());
  // The loss reaches the online transformer only.
  out.loss.backward();
  EXPECT_TRUE(model->transformer_q->lm_head->weight.grad().defined());
  EXPECT_GT(model->transformer_q->cls_head[0]->as<torch::nn::Linear>()->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_FALSE(model->transformer_k->lm_head->weight.grad().defined());
  EXPECT_FALSE(model->dvae->codebook.grad().defined());
}

// Files as the official runners write them (dvae.pth and Point-BERT.pth: 'module.' keys, tensors
// tagged cuda:0, the optimizer, numpy float64 metrics) in every command that takes a checkpoint:
// each resolves what the file holds, and none suggests a setting it then ignores.
TEST_F(OfficialPointBert, OfficialFilesWorkInEveryCommand) {
  TempDir tmp;
  const std::string ewa = EWA_BINARY, configs = std::string(EWA_SOURCE_DIR) + "/configs/";
  const std::string sizes =
      " --set model.embed_dim=48 --set model.depth=2 --set model.num_heads=4 --set model.num_groups=16"
      " --set model.group_size=8 --set model.encoder_dims=32 --set pretrain.num_tokens=64 --set pretrain.tokens_dims=24"
      " --set pretrain.decoder_dims=32 --set pretrain.cls_dim=40 --set pretrain.queue_size=16 --set data.num_points=256";
  const std::string dvae = file("dvae_official.pth"), bert = file("Point-BERT.pth");
  // export without --config: the message names the tokenizer and a tokenizer config.
  auto r = ewa::testing::run_command(ewa + " export " + dvae + " -o " + (tmp / "x.pth"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("only Point-BERT's dVAE tokenizer (model.name point_bert_dvae): pass --config with its sizes, e.g. "
                          "--config configs/shapenet55_pointbert_dvae.json"),
            std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("modelnet40"), std::string::npos) << r.output;
  // export with its config: the same tensors, Point-BERT's layout.
  r = ewa::testing::run_command(ewa + " export " + dvae + " -c " + configs + "shapenet55_pointbert_dvae.json" + sizes + " -o " +
                                (tmp / "dvae.pth"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto official = ewa::io::normalize_keys(ewa::io::read_state_dict(dvae).tensors);
  const auto exported = ewa::io::read_state_dict(tmp / "dvae.pth").tensors;
  EXPECT_EQ(exported.size(), official.size());
  for (const auto& item : official) {
    const auto* t = exported.find(item.key());
    ASSERT_NE(t, nullptr) << item.key();
    EXPECT_TRUE(torch::equal(*t, item.value())) << item.key();
  }
  // convert / eval of the pretraining module with a classifier config: one line naming what the
  // file holds and the command that makes a classifier of it; with the head's sizes and
  // finetune.allow_missing set, the same (no setting suggested that these commands ignore).
  for (const char* extra : {"", " --set model.num_classes=40 --set model.in_chans=3 --set finetune.allow_missing=true"}) {
    for (const std::string& cmd : {" convert " + bert + " -o " + (tmp / "x.pt"), " eval " + bert}) {
      r = ewa::testing::run_command(ewa + cmd + " --config " + configs + "finetune_modelnet40_1k_pointbert_dense.json" + extra);
      EXPECT_EQ(r.exit_code, 1) << cmd;
      EXPECT_NE(r.output.find("holds Point-BERT's pretraining module (transformer_q, transformer_k, dvae) (model.name "
                              "point_bert), but config"),
                std::string::npos) << r.output;
      EXPECT_NE(r.output.find("ewa finetune --init " + bert), std::string::npos) << r.output;
      EXPECT_EQ(r.output.find("allow_missing"), std::string::npos) << r.output;
      EXPECT_EQ(r.output.find("exceeds dimension"), std::string::npos) << r.output;
    }
  }
  EXPECT_FALSE(fs::exists(tmp / "x.pt"));
  // show of both files with their configs: channels resolved from the file (no LibTorch error).
  const auto pts = npy("points")[0];
  ewa::testing::write_file(tmp / "cloud.xyz", ewa::testing::cloud_text(pts, " "));
  for (const auto& [weights, config] : {std::pair{dvae, std::string("shapenet55_pointbert_dvae.json")},
                                        std::pair{bert, std::string("shapenet55_pointbert.json")}}) {
    r = ewa::testing::run_command(ewa + " show " + weights + " " + (tmp / "cloud.xyz") + " -c " + configs + config + sizes +
                                  " --png " + (tmp / (config + ".png")));
    EXPECT_EQ(r.output.find("exceeds dimension"), std::string::npos) << r.output;
    if (ewa::viz::built_with_rendering() && ewa::viz::built_with_cairo() &&
        ((std::getenv("DISPLAY") && *std::getenv("DISPLAY")) || std::system("command -v Xvfb >/dev/null 2>&1") == 0)) {
      EXPECT_EQ(r.exit_code, 0) << r.output;
      EXPECT_TRUE(fs::exists(tmp / (config + ".png")));
    } else {  // the scene was built (captions printed); only the rendering is missing
      EXPECT_NE(r.output.find("cloud.xyz:"), std::string::npos) << r.output;
    }
  }
}

TEST_F(OfficialPointBert, OurCheckpointLoadsStrictlyInTheOfficialModel) {
  auto model = load();
  TempDir tmp;
  ewa::io::write_torch_state_dict(tmp / "ours.pth", ewa::io::to_official_layout(ewa::train::state_dict(*model)), 3);
  auto r = ewa::testing::run_command(kPython + " " + kScript + " check " + tmp.path() + " " + (tmp / "ours.pth"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT(max_abs_diff(ewa::io::read_npy(tmp / "check_losses.npy"), npy("losses")), 1e-4);
}

TEST_F(OfficialPointBert, FineTuningKeepsTheOnlineTransformerMinusItsContrastiveHead) {
  // Upstream's key rule (PB:models/Point_BERT.py load_model_from_ckpt) on the fixture's file.
  std::vector<std::string> dropped;
  const auto keys = ewa::io::normalize_keys(ewa::io::read_state_dict(file("point_bert.pth")).tensors, &dropped);
  EXPECT_NE(keys.find("reduce_dim.weight"), nullptr);
  EXPECT_NE(keys.find("lm_head.weight"), nullptr);  // unexpected for the classifier, as upstream
  EXPECT_EQ(keys.find("cls_head.0.weight"), nullptr);
  for (const auto& k : keys.keys()) EXPECT_EQ(k.find("transformer_k"), std::string::npos) << k;
  EXPECT_EQ(std::count(dropped.begin(), dropped.end(), "queue"), 1);
}

TEST(BlockMask, CountInRangeAndMaskedPatchesNearestToOneCentre) {
  torch::manual_seed(3);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t B = 4, G = 5 + trial * 3;
    auto centers = torch::randn({B, G, 3});
    auto mask = ewa::models::draw_block_mask(centers, 0.25, 0.45);
    ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{B, G}));
    for (int64_t b = 0; b < B; ++b) {
      const auto m = mask[b];
      const int64_t count = m.sum().item<int64_t>();
      EXPECT_GE(count, static_cast<int64_t>(0.25 * double(G))) << G;
      EXPECT_LE(count, static_cast<int64_t>(0.45 * double(G))) << G;
      if (count == 0) continue;
      // Contiguous around a centre: some masked centre c has every masked patch nearer to c than
      // every visible one (a ball around c holds exactly the masked patches).
      bool found = false;
      for (int64_t c = 0; c < G && !found; ++c) {
        if (!m[c].item<bool>()) continue;
        auto dist = (centers[b] - centers[b][c]).norm(2, 1);
        const double inner = dist.index({m}).max().item<double>();
        const double outer = (~m).any().item<bool>() ? dist.index({~m}).min().item<double>() : 1e30;
        found = inner <= outer;
      }
      EXPECT_TRUE(found) << "masked patches of cloud " << b << " are not a ball around one of them";
    }
  }
  // Hand-made case: centres on a line 0..5, seed 2, ratio 0.5 -> the 3 nearest to x = 2: 1, 2, 3
  // (tie between 1 and 3 at distance 1, both in; 0 and 4 at distance 2 out).
  auto line = torch::zeros({1, 6, 3});
  for (int i = 0; i < 6; ++i) line[0][i][0] = i;
  auto m = ewa::models::block_mask(line, torch::tensor({0.5}, torch::kDouble), torch::tensor({2}, torch::kLong));
  EXPECT_TRUE(torch::equal(m[0], torch::tensor({false, true, true, true, false, false})));
}

TEST(PointBertQueue, HoldsTheLastKeysInOrderAndWraps) {
  ewa::models::PointBert model(bert_config(), dvae_sizes());
  const auto initial = model->queue.clone();
  auto keys = [](float v) { return torch::full({4, 40}, v); };
  model->enqueue(keys(1));
  model->enqueue(keys(2));
  EXPECT_EQ(model->queue_ptr.item<int64_t>(), 8);
  EXPECT_TRUE(torch::equal(model->queue.narrow(1, 0, 4), torch::ones({40, 4})));
  EXPECT_TRUE(torch::equal(model->queue.narrow(1, 4, 4), torch::full({40, 4}, 2.0)));
  EXPECT_TRUE(torch::equal(model->queue.narrow(1, 8, 8), initial.narrow(1, 8, 8)));
  // The initial keys are unit columns.
  EXPECT_LT((initial.norm(2, 0) - 1).abs().max().item<double>(), 1e-5);
  model->enqueue(keys(3));
  model->enqueue(keys(4));
  model->enqueue(keys(5));  // wraps to the front
  EXPECT_EQ(model->queue_ptr.item<int64_t>(), 4);
  EXPECT_TRUE(torch::equal(model->queue.narrow(1, 0, 4), torch::full({40, 4}, 5.0)));
  EXPECT_TRUE(torch::equal(model->queue.narrow(1, 12, 4), torch::full({40, 4}, 4.0)));
  // A batch that does not divide the queue is refused with the key to change.
  EXPECT_NE(ewa::testing::error_of([&] { model->enqueue(torch::zeros({3, 40})); }).find("pretrain.queue_size"), std::string::npos);
}

TEST(PointBertModel, StartsFromTheTokenizerAndOnlyTheOnlineTransformerTrains) {
  ewa::models::PointBert model(bert_config(), dvae_sizes());
  torch::NoGradGuard guard;
  for (auto& p : model->dvae->encoder->parameters()) p.uniform_();
  model->start_from_tokenizer();
  EXPECT_TRUE(torch::equal(model->transformer_q->encoder->second_conv[3]->as<torch::nn::Linear>()->weight,
                           model->dvae->encoder->second_conv[3]->as<torch::nn::Linear>()->weight));
  auto q = model->transformer_q->parameters(), k = model->transformer_k->parameters();
  ASSERT_EQ(q.size(), k.size());
  for (size_t i = 0; i < q.size(); ++i) {
    EXPECT_TRUE(torch::equal(q[i], k[i]));
    EXPECT_TRUE(q[i].requires_grad());
    EXPECT_FALSE(k[i].requires_grad());
  }
  for (const auto& p : model->dvae->parameters()) EXPECT_FALSE(p.requires_grad());
  // Official names of the online transformer's own parts.
  const auto names = model->named_parameters();
  EXPECT_EQ(names.find("transformer_q.lm_head.weight")->sizes(), (std::vector<int64_t>{64, 48}));
  EXPECT_EQ(names.find("transformer_q.cls_head.2.weight")->sizes(), (std::vector<int64_t>{40, 40}));
  EXPECT_EQ(names.find("transformer_q.mask_token")->sizes(), (std::vector<int64_t>{1, 1, 48}));
  EXPECT_EQ(names.find("transformer_q.reduce_dim.weight")->sizes(), (std::vector<int64_t>{48, 32}));
  EXPECT_EQ(model->named_buffers().find("queue")->sizes(), (std::vector<int64_t>{40, 16}));
}

}  // namespace

#include <fstream>

#include "eval/svm_probe.h"
#include "viz/plot.h"
#include "viz/render.h"

namespace {
// Both stages and what follows them from the command line: stage 1, stage 2 with EWA-MoE FFNs in
// the online transformer and the SVM monitor, the batch/queue check, fine-tuning a Point-BERT
// classifier from stage 2, and the export in the official layout.
TEST(PointBertCli, PretrainsOnTheTokenizerMonitorsFineTunesAndExports) {
  TempDir dir;
  const std::string ewa = EWA_BINARY;
  auto r = ewa::testing::run_command(ewa + " data synth -o " + (dir / "synth") + " --train-per-class 8 --test-per-class 2 --points 256");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string data = R"("data": {"dataset": ")" + ewa::testing::synth_dataset() + R"(", "root": ")" + (dir / "synth") +
                           R"(", "num_points": 128, "batch_size": 16, "eval_batch_size": 32})";
  const std::string train = R"("train": {"epochs": 2, "runs_dir": ")" + (dir / "runs") + R"(", "log_every": 100})";
  ewa::testing::write_file(dir / "dvae.json", R"({"base": ")" + std::string(EWA_SOURCE_DIR) + R"(/configs/synth_dvae.json",
    "name": "dvae", "model": {"num_groups": 8, "group_size": 8, "encoder_dims": 32},
    "pretrain": {"num_tokens": 32, "tokens_dims": 16, "decoder_dims": 16}, )" + data + ", " + train + "}");
  r = ewa::testing::run_command(ewa + " pretrain -c " + (dir / "dvae.json") + " --set train.epochs=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const bool svm = ewa::eval::built_with_liblinear();
  ewa::testing::write_file(dir / "bert.json", R"({"base": ")" + std::string(EWA_SOURCE_DIR) + R"(/configs/synth_pointbert.json",
    "name": "bert", "model": {"embed_dim": 32, "depth": 2, "num_heads": 2, "num_groups": 8, "group_size": 8, "encoder_dims": 32},
    "moe": {"kind": "rup", "blocks": "all", "num_experts": 2}, "ewa": {"enabled": true, "share_rate": 0.5},
    "pretrain": {"tokenizer": ")" + (dir / "runs/dvae/last.pt") + R"(", "num_tokens": 32, "tokens_dims": 16, "decoder_dims": 16,
                 "cls_dim": 16, "queue_size": 32, "svm_dataset": ")" + (svm ? ewa::testing::synth_dataset() : std::string()) +
                                     R"(", "svm_root": ")" + (svm ? (dir / "synth") : std::string()) + R"("}, )" +
                                     data + ", " + train + "}");
  // A global batch that does not divide the queue is refused before anything is written.
  r = ewa::testing::run_command(ewa + " pretrain -c " + (dir / "bert.json") + " --set data.batch_size=12");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("pretrain.queue_size: 32 is not a multiple of the global batch of 12 clouds"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "runs/bert"));

  r = ewa::testing::run_command(ewa + " pretrain -c " + (dir / "bert.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("point_bert D=32 depth=2 heads=2 groups=8x8, 32 tokens; block masks 0.25-0.45"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("loaded      "), std::string::npos) << r.output;  // the tokenizer's table
  std::ifstream log(dir / "runs/bert/log.jsonl");
  std::vector<json> epochs;
  for (std::string line; std::getline(log, line);) {
    auto j = json::parse(line);
    if (j["type"] == "epoch") epochs.push_back(j);
  }
  ASSERT_EQ(epochs.size(), 2u);
  for (const auto& e : epochs) {
    EXPECT_GE(e["test"]["token_acc"].get<double>(), 0.0);
    EXPECT_GT(e["test"]["masked"].get<int64_t>(), 0);
    EXPECT_GT(e["test"]["train_token_loss"].get<double>(), 0.0);
    EXPECT_GT(e["test"]["train_mix_loss"].get<double>(), 0.0);
    if (svm) {
      EXPECT_GT(e["val"]["svm_acc"].get<double>(), 0.0);
    }
  }
  EXPECT_EQ(fs::exists(dir / "runs/bert/best.pt"), svm);
  if (svm) {
    // The monitor reads its clouds as `ewa svm` does (Point-BERT's protocol config, its feature by
    // default): the probe of best.pt gives the monitor's best figure.
    std::ifstream metrics_in(dir / "runs/bert/metrics.json");
    const double monitored = json::parse(metrics_in)["best_val_score"].get<double>();
    r = ewa::testing::run_command(ewa + " svm " + (dir / "runs/bert/best.pt") + " -c " + std::string(EWA_SOURCE_DIR) +
                                  "/configs/svm_modelnet40_pointbert.json --set model.embed_dim=32 --set model.depth=2"
                                  " --set model.num_heads=2 --set model.num_groups=8 --set model.group_size=8"
                                  " --set model.encoder_dims=32 --set data.dataset=" + ewa::testing::synth_dataset() +
                                  " --set data.root=" + (dir / "synth") + " --set data.num_points=128");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("frozen pb_cls_head features"), std::string::npos) << r.output;
    const auto at = r.output.find("SVM test accuracy ");
    ASSERT_NE(at, std::string::npos) << r.output;
    EXPECT_NEAR(std::stod(r.output.substr(at + 18, 6)), monitored, 1e-4) << r.output;
  }
  if (ewa::viz::built_with_cairo()) {
    EXPECT_TRUE(fs::exists(dir / "runs/bert/plots/tokens.png"));
  }
  const auto ckpt = ewa::train::read_checkpoint(dir / "runs/bert/last.pt");
  // 8 steps of 16 keys through a queue of 32.
  EXPECT_EQ(ckpt.model.find("queue_ptr")->item<int64_t>(), (8 * 16) % 32);
  // EWA at share rate (N - 1) / N = 0.5 makes the online transformer's experts equal after every step; the
  // momentum copy is not averaged (its experts started apart and stay apart).
  const auto q = *ckpt.model.find("transformer_q.blocks.blocks.1.mlp.w1");
  const auto k = *ckpt.model.find("transformer_k.blocks.blocks.1.mlp.w1");
  EXPECT_LT((q[0] - q[1]).abs().max().item<double>(), 1e-6);
  EXPECT_GT((k[0] - k[1]).abs().max().item<double>(), 1e-3);

  // Fine-tuning a Point-BERT classifier from it: upstream's key rule, the experts averaged into the dense FFN.
  r = ewa::testing::run_command(ewa + " train -c " + std::string(EWA_SOURCE_DIR) +
                                "/configs/synth_points_pointbert_dense.json --name ft --init " + (dir / "runs/bert/last.pt") +
                                " --set model.embed_dim=32 --set model.depth=2 --set model.num_heads=2 --set model.num_groups=8"
                                " --set model.group_size=8 --set model.encoder_dims=32 --set data.root=" + (dir / "synth") +
                                " --set data.dataset=" + ewa::testing::synth_dataset() + " --set data.num_points=128"
                                " --set data.batch_size=16 --set train.epochs=1 --set train.runs_dir=" + (dir / "runs"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("averaged    8"), std::string::npos) << r.output;  // w1, b1, w2, b2 of 2 blocks
  EXPECT_NE(r.output.find("missing     0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("lm_head"), std::string::npos) << r.output;  // unused, as upstream's unexpected keys

  // Exported in Point-BERT's layout: the whole module, MoE collapsed, Conv1d encoder weights.
  r = ewa::testing::run_command(ewa + " export " + (dir / "runs/bert/last.pt") + " -o " + (dir / "pb.pth"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto exported = ewa::io::read_state_dict(dir / "pb.pth");
  EXPECT_NE(exported.tensors.find("transformer_q.blocks.blocks.1.mlp.fc1.weight"), nullptr);
  EXPECT_EQ(exported.tensors.find("transformer_q.blocks.blocks.1.mlp.w1"), nullptr);
  EXPECT_NE(exported.tensors.find("transformer_k.lm_head.weight"), nullptr);
  EXPECT_NE(exported.tensors.find("dvae.codebook"), nullptr);
  EXPECT_EQ(exported.tensors.find("transformer_q.encoder.first_conv.0.weight")->dim(), 3);
  EXPECT_TRUE(torch::allclose(*exported.tensors.find("transformer_q.blocks.blocks.1.mlp.fc1.weight"), q.mean(0)));

  // `ewa show` of both stages (off-screen): the tokenizer's reconstruction, stage 2's masks and tokens.
  const char* display = std::getenv("DISPLAY");
  if (!ewa::viz::built_with_rendering() || !ewa::viz::built_with_cairo() ||
      (!(display && *display) && std::system("command -v Xvfb >/dev/null 2>&1") != 0))
    return;
  const std::string cloud = (dir / "synth") + "/cloud.xyz";
  {
    std::ofstream xyz(cloud);
    auto pts = torch::rand({300, 3}) * 2 - 1;
    for (int64_t i = 0; i < pts.size(0); ++i) xyz << pts[i][0].item<float>() << " " << pts[i][1].item<float>() << " " << pts[i][2].item<float>() << "\n";
  }
  r = ewa::testing::run_command(ewa + " show " + (dir / "runs/dvae/last.pt") + " " + cloud + " --png " + (dir / "dvae.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("input patches (grey) | reconstruction (green): CD-L1 x1000"), std::string::npos) << r.output;
  r = ewa::testing::run_command(ewa + " show " + (dir / "runs/bert/last.pt") + " " + cloud + " --png " + (dir / "bert.png"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("masked patches: token predicted (green) or not (orange)"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir / "dvae.png") && fs::exists(dir / "bert.png"));
}
}  // namespace
