#include "models/point_mae.h"

#include "common/device_copy.h"
#include "common/error.h"
#include "kernels/chamfer/chamfer.h"
#include "models/registry.h"

namespace ewa::models {
namespace {

// Rows of `x` [B, G, ...] at idx [B, S] -> [B, S, ...].
torch::Tensor gather_rows(const torch::Tensor& x, const torch::Tensor& idx) {
  auto shape = x.sizes().vec();
  shape[1] = idx.size(1);
  auto index = idx;
  for (int64_t d = 2; d < x.dim(); ++d) index = index.unsqueeze(-1);
  std::vector<int64_t> expand(shape.begin(), shape.end());
  return x.gather(1, index.expand(expand));
}

}  // namespace

torch::Tensor make_group_mask(const torch::Tensor& centers, double ratio, const std::string& type) {
  const int64_t B = centers.size(0), G = centers.size(1);
  const int64_t M = masked_group_count(ratio, G);
  auto mask = torch::zeros({B, G}, torch::TensorOptions().dtype(torch::kBool).device(centers.device()));
  if (M == 0) return mask;
  torch::Tensor order;  // [B, G]: the first M of each row are masked
  if (type == "rand") {
    order = to_device(torch::rand({B, G}).argsort(/*stable=*/false, /*dim=*/1), centers.device());
  } else if (type == "block") {
    auto pick = to_device(torch::randint(G, {B}, torch::kLong), centers.device());
    auto seed = centers.gather(1, pick.view({B, 1, 1}).expand({B, 1, 3}));  // [B, 1, 3]
    order = (centers - seed).norm(2, 2).argsort(/*stable=*/false, /*dim=*/1);
  } else {
    fail("pretrain.mask_type: unknown mask type '" + type + "' (expected rand or block)");
  }
  mask.scatter_(1, order.narrow(1, 0, M), true);
  return mask;
}

PointMaeEncoderImpl::PointMaeEncoderImpl(const Config& cfg) {
  const int64_t d = cfg.model.embed_dim;
  encoder = register_module("encoder", MiniPointNet(3, d));
  pos_embed = register_module("pos_embed", position_mlp(d));
  blocks = register_module("blocks", PointBlocks(cfg));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5)));
  // PM:models/Point_MAE.py MaskTransformer.__init__: self.apply(self._init_weights), trunc_normal
  // 0.02 and zero biases for every Linear and Conv1d (the patch encoder's included).
  nn::apply_init(*this, nn::InitRule::TruncNormal);
}

torch::Tensor PointMaeEncoderImpl::forward(const torch::Tensor& tokens, const torch::Tensor& centers) {
  return norm(blocks(tokens, pos_embed->forward(centers)));
}

PointMaeDecoderImpl::PointMaeDecoderImpl(int64_t dim, int64_t depth, int64_t num_heads, double drop_path_rate) {
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i) {
    const double dpr = depth > 1 ? drop_path_rate * double(i) / double(depth - 1) : 0.0;
    blocks->push_back(nn::Block(nn::BlockOptions(dim, num_heads).qkv_bias(false).drop_path(dpr).norm_eps(1e-5),
                                std::make_shared<nn::MlpImpl>(nn::MlpOptions(dim, 4 * dim))));
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
  // PM:models/Point_MAE.py TransformerDecoder.__init__: self.apply(self._init_weights), xavier_uniform_
  // weights and zero biases for every Linear.
  nn::apply_init(*this, nn::InitRule::Xavier);
}

torch::Tensor PointMaeDecoderImpl::forward(torch::Tensor x, const torch::Tensor& pos) {
  for (const auto& b : *blocks) x = b->as<nn::Block>()->forward(x + pos);
  return norm(x);
}

PointMaeImpl::PointMaeImpl(const Config& cfg)
    : num_groups_(cfg.model.num_groups),
      group_size_(cfg.model.group_size),
      mask_ratio_(cfg.pretrain.mask_ratio),
      mask_type_(cfg.pretrain.mask_type),
      loss_(cfg.pretrain.loss) {
  const int64_t d = cfg.model.embed_dim;
  MAE_encoder = register_module("MAE_encoder", PointMaeEncoder(cfg));
  mask_token = register_parameter("mask_token", torch::zeros({1, 1, d}));
  decoder_pos_embed = register_module("decoder_pos_embed", position_mlp(d));
  MAE_decoder = register_module(
      "MAE_decoder", PointMaeDecoder(d, cfg.pretrain.decoder_depth, cfg.pretrain.decoder_num_heads, cfg.model.drop_path_rate));
  // decoder_pos_embed and increase_dim keep PyTorch's initialisation: Point_MAE.__init__ applies no
  // init function of its own, only trunc_normal_(self.mask_token, std=.02).
  increase_dim = register_module("increase_dim", torch::nn::Sequential(torch::nn::Linear(d, 3 * group_size_)));
  nn::trunc_normal_(mask_token, 0.02);
}

MaeOutput PointMaeImpl::forward(const torch::Tensor& points, torch::Tensor mask) {
  MaeOutput out;
  auto groups = group_point_cloud(points.narrow(2, 0, 3), num_groups_, group_size_);
  out.centers = groups.centers;
  out.neighborhoods = groups.neighborhoods;
  const int64_t B = points.size(0), G = num_groups_, K = group_size_;
  int64_t M = 0;
  if (!mask.defined()) {  // a training step: the count is known without reading the mask back from the GPU
    mask = make_group_mask(groups.centers, mask_ratio_, mask_type_);
    M = masked_group_count(mask_ratio_, G);
  } else {
    if (mask.sizes() != torch::IntArrayRef({B, G}) || mask.scalar_type() != torch::kBool)
      fail("point_mae: mask must be bool [B, G]");
    M = mask[0].sum().item<int64_t>();
  }
  if (M == 0 || M == G) fail("pretrain.mask_ratio: masks " + std::to_string(M) + " of " + std::to_string(G) +
                             " groups; pretraining needs at least one masked and one visible group");
  out.mask = mask;
  // Ascending group indices of the visible and the masked groups (the order of the official
  // boolean indexing). Sorting the mask (false first, stable) separates them.
  auto order = std::get<1>(mask.to(torch::kInt).sort(/*stable=*/true, /*dim=*/1, /*descending=*/false));
  auto visible_index = order.narrow(1, 0, G - M), masked_index = order.narrow(1, G - M, M);
  out.masked_index = masked_index;

  auto tokens = MAE_encoder->encoder(groups.neighborhoods);  // every group, as the official code
  auto x_vis = MAE_encoder->forward(gather_rows(tokens, visible_index), gather_rows(groups.centers, visible_index));
  const int64_t D = x_vis.size(2);
  auto pos = decoder_pos_embed->forward(torch::cat({gather_rows(groups.centers, visible_index), gather_rows(groups.centers, masked_index)}, 1));
  auto x = torch::cat({x_vis, mask_token.expand({B, M, D})}, 1);
  auto rec = MAE_decoder(x, pos).narrow(1, G - M, M);  // the mask tokens' outputs
  // Float32 points whatever the autocast (the Chamfer loss is a float32 kernel, as the official one).
  out.predicted = increase_dim->forward(rec).view({B, M, K, 3}).to(torch::kFloat);
  auto truth = gather_rows(groups.neighborhoods, masked_index);  // [B, M, K, 3]
  auto a = out.predicted.reshape({B * M, K, 3}), b = truth.reshape({B * M, K, 3});
  out.loss = loss_ == "cdl1" ? kernels::chamfer_distance_l1(a, b) : kernels::chamfer_distance_l2(a, b);
  return out;
}

}  // namespace ewa::models
