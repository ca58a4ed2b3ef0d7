// ViT structure, parameter names, and the MoE -> dense collapse.
#include <gtest/gtest.h>

#include "config/config.h"
#include "models/registry.h"
#include "moe/ewa.h"
#include "train/checkpoint.h"

namespace {
using nlohmann::json;

ewa::Config small_vit(const std::string& kind, const json& extra_moe = json::object()) {
  json moe = {{"kind", kind}, {"num_experts", 3}};
  moe.update(extra_moe);
  json j = {{"model", {{"img_size", 16}, {"in_chans", 2}, {"num_classes", 5}, {"patch_size", 4}, {"embed_dim", 24},
                       {"depth", 4}, {"num_heads", 2}, {"drop_path_rate", 0.0}}},
            {"moe", moe}};
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

std::set<std::string> names(torch::nn::Module& m) {
  std::set<std::string> s;
  for (const auto& p : m.named_parameters()) s.insert(p.key());
  return s;
}

TEST(Vit, ShapesAndTimmParameterNames) {
  auto model = ewa::models::build_model(small_vit("rup"));
  auto x = torch::randn({3, 2, 16, 16});
  EXPECT_EQ(model->forward(x).sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(model->forward_features(x).sizes(), (std::vector<int64_t>{3, 24}));
  auto n = names(*model);
  for (const char* key : {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.norm1.weight",
                          "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.bias", "blocks.0.mlp.fc1.weight",
                          "blocks.0.mlp.fc2.bias", "blocks.1.mlp.w1", "blocks.1.mlp.b2", "blocks.3.mlp.w2", "norm.weight",
                          "head.weight"})
    EXPECT_TRUE(n.count(key)) << key;
  EXPECT_FALSE(n.count("blocks.1.mlp.fc1.weight"));
  EXPECT_EQ(model->named_parameters()["pos_embed"].sizes(), (std::vector<int64_t>{1, 17, 24}));
  EXPECT_EQ(model->named_parameters()["blocks.1.mlp.w1"].sizes(), (std::vector<int64_t>{3, 96, 24}));
  EXPECT_EQ(ewa::moe::moe_layers(*model).size(), 2u);  // blocks 1 and 3
}

TEST(Vit, RoutedModelHasAGateAndAnAuxLoss) {
  auto model = ewa::models::build_model(small_vit("routed", {{"blocks", "all"}}));
  EXPECT_TRUE(names(*model).count("blocks.2.mlp.gate.weight"));
  model->train();
  model->forward(torch::randn({2, 2, 16, 16}));
  auto aux = model->aux_loss();
  ASSERT_TRUE(aux.defined());
  EXPECT_GE(aux.item<double>(), 4.0 * (1.0 - 1e-6));  // sum over 4 layers, each >= 1 (Cauchy-Schwarz bound)
}

TEST(Vit, CollapsedDenseModelReproducesTheMoeModelInEval) {
  auto moe_cfg = small_vit("rup", {{"blocks", "all"}});
  auto moe_model = ewa::models::build_model(moe_cfg);
  {
    torch::NoGradGuard g;  // experts far apart, so a wrong collapse would show
    for (auto& layer : ewa::moe::moe_layers(*moe_model))
      for (auto p : layer->expert_parameters()) p.normal_(0, 0.3);
  }
  moe_model->eval();
  auto dense_model = ewa::models::build_model(small_vit("dense"));
  ewa::train::Checkpoint ckpt;
  ckpt.model = ewa::moe::collapse_to_dense(*moe_model);
  ewa::train::load_model_state(*dense_model, ckpt, "collapsed");
  dense_model->eval();
  auto x = torch::randn({4, 2, 16, 16});
  EXPECT_TRUE(torch::allclose(moe_model->forward(x), dense_model->forward(x), 1e-5, 1e-5));
  int64_t dense_params = 0;
  for (const auto& p : dense_model->parameters()) dense_params += p.numel();
  int64_t collapsed = 0;
  for (const auto& item : ckpt.model) collapsed += item.value().numel();
  EXPECT_EQ(collapsed, dense_params);
}

TEST(Vit, DropPathIsIdentityInEvalAndDropsWholeSamplesInTraining) {
  auto x = torch::randn({400, 3, 5}) + 3.0;
  EXPECT_TRUE(torch::equal(ewa::nn::drop_path(x, 0.3, false), x));
  auto y = ewa::nn::drop_path(x, 0.25, true);
  auto kept = (y != 0).all(2).all(1);
  auto dropped = (y == 0).all(2).all(1);
  EXPECT_TRUE((kept | dropped).all().item<bool>());  // each sample entirely kept or dropped
  EXPECT_TRUE(torch::allclose(y.index({kept}), x.index({kept}) / 0.75));
  const double rate = dropped.to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(rate, 0.25, 0.07);
}

TEST(Vit, TruncNormalStaysWithinTwoSigmaWithTheRightSpread) {
  auto t = torch::empty({200000});
  ewa::nn::trunc_normal_(t, 0.02);
  EXPECT_LE(t.abs().max().item<double>(), 0.04 + 1e-7);
  EXPECT_NEAR(t.mean().item<double>(), 0.0, 5e-4);
  // Std of a normal truncated at +-2 sigma is 0.8796 sigma.
  EXPECT_NEAR(t.std().item<double>(), 0.8796 * 0.02, 3e-4);
}

}  // namespace

#include "bench/train_step.h"

namespace {
TEST(TrainStepBench, MeasuresTheThreeVariantsOfOneModel) {
  auto cfg = small_vit("rup");  // MoE in blocks 1 and 3, N = 3, D = 24, hidden 96
  ewa::bench::TrainStepOptions o;
  o.warmup = 1;
  o.steps = 2;
  o.rounds = 1;
  o.batch_size = 4;
  auto rows = ewa::bench::bench_train_step(cfg, o);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].variant, "dense");
  EXPECT_EQ(rows[1].variant, "rup+ewa");
  EXPECT_EQ(rows[2].variant, "routed");
  const int64_t ffn = 2 * 24 * 96 + 96 + 24;  // one dense FFN
  EXPECT_EQ(rows[1].params - rows[0].params, 2 * (3 - 1) * ffn);          // two MoE blocks of 3 experts
  EXPECT_EQ(rows[2].params - rows[1].params, 2 * 3 * 24);                // plus two gates
  for (const auto& r : rows) EXPECT_GT(r.ms_median, 0.0);
  EXPECT_DOUBLE_EQ(rows[0].ratio_to_dense, 1.0);
  EXPECT_NE(ewa::bench::train_step_markdown(rows).find("| rup+ewa |"), std::string::npos);
}
}  // namespace
