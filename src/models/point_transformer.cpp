#include "models/point_transformer.h"

#include "kernels/fps/fps.h"
#include "kernels/group/group.h"
#include "kernels/knn/knn.h"
#include "models/registry.h"
#include "moe/experts.h"
#include "moe/routed_moe.h"

namespace ewa::models {

PointGroups group_point_cloud(const torch::Tensor& points, int64_t num_groups, int64_t group_size) {
  torch::NoGradGuard guard;
  auto xyz = points.narrow(2, 0, 3).contiguous();
  // pointnet2_ops' rules, as Point-MAE / Point-BERT group: official checkpoints see the same centers.
  auto center_idx = kernels::farthest_point_sample(xyz, num_groups, 0, kernels::FpsRule::Pointnet2);  // [B, G]
  auto centers = xyz.gather(1, center_idx.unsqueeze(2).expand({-1, -1, 3}));
  auto idx = std::get<0>(kernels::knn(centers, xyz, group_size));
  return {centers, kernels::group_points(points.contiguous(), idx, centers), idx};
}

MiniPointNetImpl::MiniPointNetImpl(int64_t in_channels, int64_t out_channels) {
  // ReLU in place, as Point-MAE's ReLU(inplace=True): BatchNorm's backward does not need its output.
  // PyTorch's initialisation (Conv1d's, which equals Linear's); the model applies its rule.
  first_conv = register_module("first_conv", torch::nn::Sequential(torch::nn::Linear(in_channels, 128), torch::nn::BatchNorm1d(128),
                                                                    torch::nn::ReLU(true), torch::nn::Linear(128, 256)));
  second_conv = register_module("second_conv", torch::nn::Sequential(torch::nn::Linear(512, 512), torch::nn::BatchNorm1d(512),
                                                                      torch::nn::ReLU(true), torch::nn::Linear(512, out_channels)));
}

torch::Tensor MiniPointNetImpl::forward(const torch::Tensor& groups) {
  const int64_t B = groups.size(0), G = groups.size(1), K = groups.size(2), C = groups.size(3);
  auto f = first_conv->forward(groups.reshape({B * G * K, C}));                    // [BGK, 256]
  auto global = std::get<0>(f.view({B * G, K, 256}).max(1));                      // [BG, 256]
  auto* fc = second_conv[0]->as<torch::nn::Linear>();
  const auto& w = fc->weight;                                                     // [512, 512]: [out, (g, f)]
  auto per_group = torch::addmm(fc->bias, global, w.narrow(1, 0, 256).t());       // [BG, 512]
  auto h = torch::mm(f, w.narrow(1, 256, 256).t()).view({B * G, K, -1}).add_(per_group.unsqueeze(1));
  h = second_conv[1]->as<torch::nn::BatchNorm1d>()->forward(h.view({B * G * K, -1})).relu_();
  h = second_conv[3]->as<torch::nn::Linear>()->forward(h);
  return std::get<0>(h.view({B * G, K, -1}).max(1)).view({B, G, -1});
}

torch::Tensor MiniPointNetImpl::forward_concat(const torch::Tensor& groups) {
  const int64_t B = groups.size(0), G = groups.size(1), K = groups.size(2), C = groups.size(3);
  auto f = first_conv->forward(groups.reshape({B * G * K, C})).view({B * G, K, 256});
  auto global = std::get<0>(f.max(1, true)).expand({B * G, K, 256});
  auto h = second_conv->forward(torch::cat({global, f}, 2).view({B * G * K, 512}));
  return std::get<0>(h.view({B * G, K, -1}).max(1)).view({B, G, -1});
}

torch::nn::Sequential position_mlp(int64_t dim) {
  return torch::nn::Sequential(torch::nn::Linear(3, 128), torch::nn::GELU(), torch::nn::Linear(128, dim));
}

PointBlocksImpl::PointBlocksImpl(const Config& cfg) {
  const auto& m = cfg.model;
  blocks = register_module("blocks", torch::nn::ModuleList());
  const int64_t hidden = static_cast<int64_t>(m.embed_dim * m.mlp_ratio);
  for (int64_t i = 0; i < m.depth; ++i) {
    const double dpr = m.depth > 1 ? m.drop_path_rate * double(i) / double(m.depth - 1) : 0.0;
    blocks->push_back(nn::Block(nn::BlockOptions(m.embed_dim, m.num_heads)
                                    .qkv_bias(m.qkv_bias)
                                    .drop(m.drop_rate)
                                    .attn_drop(m.attn_drop_rate)
                                    .drop_path(dpr)
                                    .norm_eps(1e-5),
                                make_feed_forward(cfg, i, m.embed_dim, hidden, m.drop_rate)));
  }
}

torch::Tensor PointBlocksImpl::forward(torch::Tensor x, const torch::Tensor& pos) {
  for (const auto& b : *blocks) x = b->as<nn::Block>()->forward(x + pos);
  return x;
}

PointTransformerImpl::PointTransformerImpl(const Config& cfg)
    : num_groups_(cfg.model.num_groups), group_size_(cfg.model.group_size), depth_(cfg.model.depth) {
  const auto& m = cfg.model;
  const bool bert = m.variant == "point_bert";
  const int64_t d = m.embed_dim;
  const int64_t e = m.encoder_dims > 0 ? m.encoder_dims : (bert ? 256 : d);
  encoder = register_module("encoder", MiniPointNet(m.in_chans, e));
  if (bert || e != d) reduce_dim = register_module("reduce_dim", torch::nn::Linear(e, d));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, d}));
  cls_pos = register_parameter("cls_pos", torch::zeros({1, 1, d}));
  pos_embed = register_module("pos_embed", position_mlp(d));
  blocks = register_module("blocks", PointBlocks(cfg));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5)));
  const int64_t h = m.head_hidden;
  const double p = m.head_dropout;
  if (bert) {
    cls_head_finetune = register_module(
        "cls_head_finetune", torch::nn::Sequential(torch::nn::Linear(2 * d, h), torch::nn::ReLU(), torch::nn::Dropout(p),
                                                   torch::nn::Linear(h, m.num_classes)));
  } else {
    cls_head_finetune = register_module(
        "cls_head_finetune",
        torch::nn::Sequential(torch::nn::Linear(2 * d, h), torch::nn::BatchNorm1d(h), torch::nn::ReLU(),
                              torch::nn::Dropout(p), torch::nn::Linear(h, h), torch::nn::BatchNorm1d(h), torch::nn::ReLU(),
                              torch::nn::Dropout(p), torch::nn::Linear(h, m.num_classes)));
  }
  // Every layer starts at PyTorch's initialisation (stacked experts expert by expert): neither
  // upstream classifier calls an init function in the official runs. Point-MAE's
  // (PM:models/Point_MAE.py PointTransformer.__init__) draws cls_token and cls_pos with timm's
  // trunc_normal_(std=.02); its _init_weights is applied only by load_model_from_ckpt(None),
  // which PM:tools/runner_finetune.py never calls (model.init = "trunc_normal" applies it).
  // Point-BERT's (PB:models/Point_BERT.py PointTransformer.__init__) leaves cls_token at zeros
  // and cls_pos at torch.randn.
  if (m.init == "trunc_normal") nn::apply_init(*this, nn::InitRule::TruncNormal);
  torch::NoGradGuard guard;
  if (bert) {
    cls_pos.normal_();
  } else {
    nn::trunc_normal_(cls_token, 0.02);
    nn::trunc_normal_(cls_pos, 0.02);
  }
}

torch::Tensor PointTransformerImpl::forward_tokens(const torch::Tensor& points) {
  auto groups = group_point_cloud(points, num_groups_, group_size_);
  auto tokens = encoder(groups.neighborhoods);
  if (!reduce_dim.is_empty()) tokens = reduce_dim(tokens);
  const int64_t B = tokens.size(0);
  auto x = torch::cat({cls_token.expand({B, 1, -1}), tokens}, 1);
  auto pos = torch::cat({cls_pos.expand({B, 1, -1}), pos_embed->forward(groups.centers)}, 1);
  return norm(blocks(x, pos));
}

torch::Tensor PointTransformerImpl::forward_features(const torch::Tensor& points) {
  auto x = forward_tokens(points);
  return torch::cat({x.select(1, 0), std::get<0>(x.narrow(1, 1, x.size(1) - 1).max(1))}, 1);
}

PointInspection PointTransformerImpl::inspect(const torch::Tensor& points) {
  torch::NoGradGuard guard;
  auto groups = group_point_cloud(points, num_groups_, group_size_);
  auto tokens = encoder(groups.neighborhoods);
  if (!reduce_dim.is_empty()) tokens = reduce_dim(tokens);
  const int64_t B = tokens.size(0), G = tokens.size(1);
  auto x = torch::cat({cls_token.expand({B, 1, -1}), tokens}, 1);
  auto pos = torch::cat({cls_pos.expand({B, 1, -1}), pos_embed->forward(groups.centers)}, 1);
  PointInspection out{{}, groups.centers, groups.index, {}, {}, -1};
  const int64_t depth = static_cast<int64_t>(blocks->blocks->size());
  for (int64_t i = 0; i < depth; ++i) {  // PointBlocks::forward, block by block
    auto block = blocks->blocks[i]->as<nn::Block>();
    auto in = x + pos;
    if (i + 1 == depth) out.attention = block->attn->weights(block->norm1(in)).mean(1).select(1, 0).narrow(1, 1, G);
    x = block->forward(in);
    if (auto* routed = dynamic_cast<moe::RoutedMoEImpl*>(block->mlp.get())) {
      out.experts = routed->last_choice().narrow(1, 1, G).clone();
      out.experts_block = i;
    }
  }
  x = norm(x);
  out.logits = forward_head(torch::cat({x.select(1, 0), std::get<0>(x.narrow(1, 1, G).max(1))}, 1));
  return out;
}

int64_t PointTransformerImpl::layer_of(const std::string& name) const {
  const int64_t b = block_layer(name, "blocks.blocks.");
  if (b >= 0) return b;
  if (is_head(name) || name.rfind("norm.", 0) == 0) return depth_ + 1;
  return 0;  // encoder, reduce_dim, pos_embed, cls_token, cls_pos
}

torch::Tensor PointTransformerImpl::forward_head(const torch::Tensor& features) {
  return cls_head_finetune->forward(features);
}

}  // namespace ewa::models
