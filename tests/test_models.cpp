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
  const auto x = torch::randn({2, 2, 16, 16});
  model->forward(x);
  auto aux = model->aux_loss();
  ASSERT_TRUE(aux.defined());
  // Each layer's N * sum_i f_i P_i lies in (0, N]: the sum of 4 layers of 3 experts in (0, 12].
  EXPECT_GT(aux.item<double>(), 0.0);
  EXPECT_LE(aux.item<double>(), 12.0 + 1e-6);
  // With every gate at zero each layer's probabilities are uniform and its loss exactly 1: the
  // model's loss is the sum over its 4 MoE layers (the per-layer formula: tests/test_moe.cpp).
  {
    torch::NoGradGuard guard;
    for (auto& p : model->named_parameters())
      if (p.key().find(".mlp.gate.") != std::string::npos) p.value().zero_();
  }
  model->forward(x);
  EXPECT_NEAR(model->aux_loss().item<double>(), 4.0, 1e-5);
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

// timm 0.4.5's trunc_normal_(t, std=.02) cuts at the absolute values -2 and 2 (100 sd): in effect
// N(0, 0.02^2). With explicit bounds (a, b) = (-1, 1) and std 1 it is the normal cut at 1 sd, whose
// standard deviation is 0.5379 (hand value: sqrt(1 - 2 phi(1) / (2 Phi(1) - 1))).
TEST(Vit, TruncNormalCutsAtTimmsAbsoluteBounds) {
  auto t = torch::empty({200000});
  ewa::nn::trunc_normal_(t, 0.02);
  EXPECT_NEAR(t.mean().item<double>(), 0.0, 5e-4);
  EXPECT_NEAR(t.std().item<double>(), 0.02, 2e-4);  // sample sd spread 0.02 / sqrt(2n) = 3e-5
  EXPECT_GT(t.abs().max().item<double>(), 0.08);      // 4 sd and beyond occur in 200000 draws
  EXPECT_NEAR(t.abs().gt(0.04).to(torch::kDouble).mean().item<double>(), 0.0455, 0.003);  // beyond 2 sd: 4.55%
  ewa::nn::trunc_normal_(t, 1.0, -1.0, 1.0);
  EXPECT_LE(t.abs().max().item<double>(), 1.0);
  EXPECT_NEAR(t.std().item<double>(), 0.5379, 3e-3);
}

}  // namespace

#include "models/point_transformer.h"
#include "kernels/fps/fps.h"
#include "kernels/knn/knn.h"

namespace {
ewa::Config point_cfg(const std::string& variant, const std::string& kind, int64_t depth = 2) {
  json j = {{"model", {{"name", "point_transformer"}, {"variant", variant}, {"in_chans", 3}, {"num_classes", 7},
                       {"embed_dim", 32}, {"depth", depth}, {"num_heads", 2}, {"num_groups", 8}, {"group_size", 16},
                       {"qkv_bias", false}}},
            {"moe", {{"kind", kind}, {"num_experts", 2}}},
            {"data", {{"dataset", "modelnet_h5"}, {"root", "/nonexistent"}, {"num_points", 128}}}};
  return ewa::parse_config(ewa::resolve_config(j, "test"), "test");
}

TEST(PointTransformer, PointMaeParameterNamesAndShapes) {
  auto model = ewa::models::build_model(point_cfg("point_mae", "rup"));
  auto n = names(*model);
  for (const char* key : {"encoder.first_conv.0.weight", "encoder.first_conv.1.weight", "encoder.first_conv.1.running_mean",
                          "encoder.first_conv.3.weight", "encoder.second_conv.0.weight", "encoder.second_conv.3.bias",
                          "cls_token", "cls_pos", "pos_embed.0.weight", "pos_embed.2.weight", "blocks.blocks.0.norm1.weight",
                          "blocks.blocks.0.attn.qkv.weight", "blocks.blocks.0.mlp.fc1.weight", "blocks.blocks.1.mlp.w1",
                          "norm.weight", "cls_head_finetune.0.weight", "cls_head_finetune.1.running_var",
                          "cls_head_finetune.4.weight", "cls_head_finetune.5.weight", "cls_head_finetune.8.weight"}) {
    bool found = n.count(key) > 0;
    for (const auto& b : model->named_buffers()) found = found || b.key() == key;
    EXPECT_TRUE(found) << key;
  }
  EXPECT_FALSE(n.count("blocks.blocks.0.attn.qkv.bias"));  // Point-MAE: no qkv bias
  EXPECT_FALSE(n.count("reduce_dim.weight"));
  EXPECT_EQ(model->named_parameters()["encoder.second_conv.3.weight"].sizes(), (std::vector<int64_t>{32, 512}));
  EXPECT_EQ(model->named_parameters()["cls_head_finetune.0.weight"].sizes(), (std::vector<int64_t>{256, 64}));
  model->eval();
  EXPECT_EQ(model->forward(torch::randn({3, 128, 3})).sizes(), (std::vector<int64_t>{3, 7}));
}

TEST(PointTransformer, PointBertVariant) {
  auto model = ewa::models::build_model(point_cfg("point_bert", "dense"));
  auto n = names(*model);
  EXPECT_TRUE(n.count("reduce_dim.weight"));
  EXPECT_EQ(model->named_parameters()["reduce_dim.weight"].sizes(), (std::vector<int64_t>{32, 256}));
  EXPECT_TRUE(n.count("cls_head_finetune.3.weight"));
  EXPECT_FALSE(n.count("cls_head_finetune.1.weight"));  // no BatchNorm in Point-BERT's head
  model->train();
  EXPECT_EQ(model->forward(torch::randn({4, 128, 3})).sizes(), (std::vector<int64_t>{4, 7}));
}

// Both upstream classifiers keep PyTorch's own initialisation in the official runs (neither calls
// an init function: docs/protocols.md section 10): U(-1/sqrt(in), 1/sqrt(in)) for every weight and
// bias, stacked experts expert by expert; Point-BERT's cls_token 0 and cls_pos N(0, 1), Point-MAE's
// N(0, 0.02^2). model.init = trunc_normal is Point-MAE's _init_weights. Statistics on fresh draws
// (tests/test_init.cpp compares every tensor with the official modules').
TEST(PointTransformer, EachVariantStartsAsItsUpstreamInitialisesIt) {
  auto expect_uniform = [](const torch::Tensor& t, int64_t fan_in, const std::string& what) {
    const double bound = 1.0 / std::sqrt(double(fan_in));
    EXPECT_LE(t.abs().max().item<double>(), bound + 1e-7) << what;
    // U(-b, b) has std b / sqrt(3); the sample std of n draws has a relative spread of
    // sqrt((kurtosis - 1) / 4n) = sqrt(0.2 / n): allow 6 of them.
    const double sd = t.std().item<double>(), want = bound / std::sqrt(3.0);
    EXPECT_NEAR(sd, want, 6.0 * std::sqrt(0.2 / double(t.numel())) * want) << what;
  };
  for (const char* variant : {"point_bert", "point_mae"}) {
    SCOPED_TRACE(variant);
    auto model = ewa::models::build_model(point_cfg(variant, "rup"));
    auto p = model->named_parameters();
    expect_uniform(p["pos_embed.0.weight"], 3, "pos_embed.0.weight");
    expect_uniform(p["pos_embed.0.bias"], 3, "pos_embed.0.bias");
    expect_uniform(p["encoder.first_conv.0.weight"], 3, "encoder.first_conv.0.weight");
    expect_uniform(p["encoder.second_conv.0.weight"], 512, "encoder.second_conv.0.weight");
    expect_uniform(p["blocks.blocks.0.attn.qkv.weight"], 32, "blocks.blocks.0.attn.qkv.weight");
    expect_uniform(p["blocks.blocks.0.mlp.fc1.bias"], 32, "blocks.blocks.0.mlp.fc1.bias");
    expect_uniform(p["cls_head_finetune.0.weight"], 64, "cls_head_finetune.0.weight");
    auto w1 = p["blocks.blocks.1.mlp.w1"], w2 = p["blocks.blocks.1.mlp.w2"];  // [2, 128, 32], [2, 32, 128]
    for (int64_t e = 0; e < 2; ++e) {
      expect_uniform(w1[e], 32, "expert w1");
      expect_uniform(w2[e], 128, "expert w2");
    }
    EXPECT_FALSE(torch::equal(w1[0], w1[1]));  // experts drawn independently
  }
  auto bert = ewa::models::build_model(point_cfg("point_bert", "rup"))->named_parameters();
  expect_uniform(bert["reduce_dim.weight"], 256, "reduce_dim.weight");
  EXPECT_EQ(bert["cls_token"].abs().max().item<double>(), 0.0);
  EXPECT_NEAR(bert["cls_pos"].std().item<double>(), 1.0, 0.6);  // 32 draws: spread 0.125
  EXPECT_GT(bert["cls_pos"].abs().max().item<double>(), 0.5);
  auto mae = ewa::models::build_model(point_cfg("point_mae", "rup"))->named_parameters();
  EXPECT_NEAR(mae["cls_pos"].std().item<double>(), 0.02, 0.012);
  EXPECT_GT(mae["cls_token"].abs().max().item<double>(), 0.0);

  // Point-MAE's _init_weights (model.init = trunc_normal): N(0, 0.02^2) weights, zero biases.
  auto cfg = point_cfg("point_mae", "rup");
  cfg = cfg.with({{"model.init", "trunc_normal"}});
  auto tn = ewa::models::build_model(cfg)->named_parameters();
  for (const char* key : {"pos_embed.0.weight", "encoder.second_conv.0.weight", "blocks.blocks.1.mlp.w1"}) {
    EXPECT_NEAR(tn[key].std().item<double>(), 0.02, 0.003) << key;  // 384 draws at least: spread 0.0007
    EXPECT_GT(tn[key].abs().max().item<double>(), 0.04) << key;  // not cut at 2 sd
  }
  EXPECT_EQ(tn["pos_embed.0.bias"].abs().max().item<double>(), 0.0);
  EXPECT_EQ(tn["blocks.blocks.1.mlp.b1"].abs().max().item<double>(), 0.0);
}

TEST(PointTransformer, GroupingUsesFpsCentersAndKnnNeighbourhoods) {
  auto pts = torch::randn({2, 100, 3});
  auto g = ewa::models::group_point_cloud(pts, 10, 8);
  auto idx = ewa::kernels::farthest_point_sample(pts, 10, 0, ewa::kernels::FpsRule::Pointnet2);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_TRUE(torch::equal(g.centers[b], pts[b].index_select(0, idx[b])));
    // Every neighbourhood point, shifted back, is one of the cloud's 8 nearest points to the center.
    auto nn = std::get<0>(ewa::kernels::knn(g.centers[b].unsqueeze(0).contiguous(), pts[b].unsqueeze(0).contiguous(), 8))[0];
    for (int64_t s = 0; s < 10; ++s)
      EXPECT_TRUE(torch::allclose(g.neighborhoods[b][s] + g.centers[b][s], pts[b].index_select(0, nn[s]), 1e-6, 1e-6));
  }
}

TEST(PointTransformer, MiniPointNetEqualsTheConv1dFormulation) {
  ewa::models::MiniPointNet enc(3, 24);
  enc->eval();
  {
    torch::NoGradGuard g;  // non-trivial BatchNorm statistics
    for (auto& b : enc->buffers())
      if (b.dim() == 1 && b.dtype() == torch::kFloat) b.uniform_(0.5, 1.5);
  }
  auto groups = torch::randn({2, 5, 16, 3});
  // Point-MAE's Encoder with Conv1d weights [out, in, 1] on [BG, C, K] tensors.
  auto conv = [](const torch::Tensor& x, torch::nn::Linear& l) {
    return torch::conv1d(x, l->weight.unsqueeze(2), l->bias);
  };
  auto bn = [](const torch::Tensor& x, torch::nn::BatchNorm1d& m) {
    return torch::batch_norm(x, m->weight, m->bias, m->running_mean, m->running_var, false, 0.1, 1e-5, false);
  };
  torch::nn::Linear fl0 = std::dynamic_pointer_cast<torch::nn::LinearImpl>(enc->first_conv->ptr(0));
  torch::nn::Linear fl3 = std::dynamic_pointer_cast<torch::nn::LinearImpl>(enc->first_conv->ptr(3));
  torch::nn::Linear sl0 = std::dynamic_pointer_cast<torch::nn::LinearImpl>(enc->second_conv->ptr(0));
  torch::nn::Linear sl3 = std::dynamic_pointer_cast<torch::nn::LinearImpl>(enc->second_conv->ptr(3));
  torch::nn::BatchNorm1d fb = std::dynamic_pointer_cast<torch::nn::BatchNorm1dImpl>(enc->first_conv->ptr(1));
  torch::nn::BatchNorm1d sb = std::dynamic_pointer_cast<torch::nn::BatchNorm1dImpl>(enc->second_conv->ptr(1));
  auto x = groups.reshape({10, 16, 3}).transpose(1, 2);  // [BG, 3, K]
  auto f = conv(torch::relu(bn(conv(x, fl0), fb)), fl3);  // [BG, 256, K]
  auto global = std::get<0>(f.max(2, true));
  auto h = conv(torch::relu(bn(conv(torch::cat({global.expand({10, 256, 16}), f}, 1), sl0), sb)), sl3);
  auto expected = std::get<0>(h.max(2)).view({2, 5, 24});
  EXPECT_TRUE(torch::allclose(enc->forward(groups), expected, 1e-4, 1e-5));
}

// The split first layer of second_conv (per-group W_g g + b, per-point W_f f) against the
// straightforward concatenation, in training mode: outputs, every parameter's gradient, the input
// gradient and the BatchNorm running statistics.
TEST(PointTransformer, MiniPointNetSplitLayerMatchesTheConcatenationWithGradients) {
  for (int seed : {0, 1}) {
    torch::manual_seed(seed);
    ewa::models::MiniPointNet a(3, 24), b(3, 24);
    {
      torch::NoGradGuard g;
      for (size_t i = 0; i < a->parameters().size(); ++i) {
        a->parameters()[i].normal_(0, 0.3);
        b->parameters()[i].copy_(a->parameters()[i]);
      }
    }
    auto groups = torch::randn({3, 7, 16, 3});
    auto ga = groups.clone().requires_grad_(true), gb = groups.clone().requires_grad_(true);
    auto ya = a->forward(ga), yb = b->forward_concat(gb);
    EXPECT_TRUE(torch::allclose(ya, yb, 1e-4, 1e-5)) << (ya - yb).abs().max();
    auto w = torch::randn_like(ya);
    (ya * w).sum().backward();
    (yb * w).sum().backward();
    EXPECT_TRUE(torch::allclose(ga.grad(), gb.grad(), 1e-3, 1e-5)) << (ga.grad() - gb.grad()).abs().max();
    auto pa = a->named_parameters(), pb = b->named_parameters();
    for (const auto& item : pa) {
      const auto& gpa = item.value().grad();
      const auto& gpb = pb[item.key()].grad();
      ASSERT_TRUE(gpa.defined() && gpb.defined()) << item.key();
      // atol: a Linear's bias before BatchNorm has a true gradient of 0, so both are rounding noise
      EXPECT_TRUE(torch::allclose(gpa, gpb, 1e-3, 1e-4 * gpb.abs().max().item<double>() + 1e-4))
          << item.key() << " " << (gpa - gpb).abs().max();
    }
    auto ba = a->named_buffers(), bb = b->named_buffers();
    for (const auto& item : ba) EXPECT_TRUE(torch::allclose(item.value(), bb[item.key()], 1e-4, 1e-5)) << item.key();
  }
}

TEST(PointTransformer, CollapsedDenseModelReproducesTheMoeModel) {
  auto moe_model = ewa::models::build_model(point_cfg("point_mae", "rup", 4));
  {
    torch::NoGradGuard g;
    for (auto& layer : ewa::moe::moe_layers(*moe_model))
      for (auto p : layer->expert_parameters()) p.normal_(0, 0.3);
  }
  moe_model->eval();
  auto dense = ewa::models::build_model(point_cfg("point_mae", "dense", 4));
  ewa::train::Checkpoint ckpt;
  ckpt.model = ewa::moe::collapse_to_dense(*moe_model);
  ewa::train::load_model_state(*dense, ckpt, "collapsed");
  dense->eval();
  auto x = torch::randn({3, 128, 3});
  EXPECT_TRUE(torch::allclose(moe_model->forward(x), dense->forward(x), 1e-4, 1e-5));
}
}  // namespace
